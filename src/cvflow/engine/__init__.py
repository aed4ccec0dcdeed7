"""The training engine shared by every task (see :mod:`cvflow.engine.trainer`).

Import from the submodules: this package imports none of them, so code that uses one part runs
no other (and a DVC stage depends on the parts it runs only).
"""
