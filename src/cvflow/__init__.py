"""cvflow: the Computer Vision chapter of Dive into Deep Learning as reproducible MLOps software.

The library knows nothing about DVC: it provides data (hub, readers, demo twins), models,
the training engine and MLflow tracking. The ``cvflow`` command (``cvflow.stages``) and the
per-task bindings (``cvflow.pipelines``) sit on top of it.
"""

__version__ = "0.1.0"
