"""The code of every model cvflow logs for serving (MLflow's models from code): an
:class:`~cvflow.serving.ImageModel`, configured by the logged ``model_config`` and loaded from its artifacts."""

import mlflow

from cvflow.serving import ImageModel

mlflow.models.set_model(ImageModel())
