"""The one packaging setting pyproject.toml cannot state: cvflow's packages, found rather than listed by hand.

Three folders install as one package: the library ``src/cvflow`` as ``cvflow``, the stage commands ``stages``
as ``cvflow.stages``, the task declarations ``pipelines`` as ``cvflow.pipelines`` (one role per folder, one
``cvflow`` command). setuptools' declarative discovery (``[tool.setuptools.packages.find]``) names a package by its
path below ``where`` and cannot put a folder's packages under another name (``pipelines/anchors`` would install as
``pipelines.anchors``), so the list was kept by hand, and a package left out of it was missing from every built
wheel while the editable install hid it. Here each root's subpackages are found with ``find_packages`` (a folder
with an ``__init__.py``) and prefixed with the name the root installs as. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

#: package name -> folder (setuptools' package_dir)
ROOTS = {"cvflow": "src/cvflow", "cvflow.stages": "stages", "cvflow.pipelines": "pipelines"}

setup(package_dir=ROOTS,
      packages=[".".join((name, sub)) if sub else name for name, folder in ROOTS.items()
                for sub in ("", *find_packages(folder))])
