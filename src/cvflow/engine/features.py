"""Training a head on a frozen backbone's features (book 13.14), two ways.

* On the fly (the book): every batch of freshly augmented images goes through the backbone
  inside the training step (:class:`BackboneTask`), in every epoch. The backbone's forward
  pass is nearly all of the work, and it is repeated for each image in each epoch.
* Cached: :func:`extract_features` runs the backbone once per image and view (N augmented
  views of each training image, the test transform's view of each valid and test image);
  the head then trains on the stored features (:class:`ViewFeatures` draws one of an image's
  views per epoch), hundreds of times faster per epoch. The same view gives the same features
  both ways (``tests/test_kaggle_dogs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cvflow.engine.runtime import Precision, use_pin_memory
from cvflow.engine.trainer import ClassificationTask

__all__ = ["BackboneTask", "ViewFeatures", "extract_features"]


def _keys(batch_keys: Any) -> list:
    """A batch's second items (labels or ids) as Python values."""
    if isinstance(batch_keys, torch.Tensor):
        return batch_keys.tolist()
    return list(batch_keys)


@torch.inference_mode()
def extract_features(backbone: nn.Module, dataset: Dataset, *, batch_size: int = 256,
                     device: torch.device | str = "cpu", precision: Precision | str = "auto",
                     num_workers: int = 0) -> tuple[torch.Tensor, list]:
    """``backbone`` over every item ``(image, key)`` of ``dataset``, in order: ``(features, keys)``.

    ``features`` is a float32 CPU tensor ``(len(dataset), dim)``; ``keys`` the items' second
    elements (labels or ids). Batched, in inference mode and under the precision's autocast;
    the features of each batch stay on the device until one copy at the end.
    """
    device = torch.device(device)
    if not isinstance(precision, Precision):
        precision = Precision.resolve(device, precision)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=use_pin_memory(device), persistent_workers=False)
    backbone.to(device).eval()
    parts, keys = [], []
    with precision.autocast():
        for images, batch_keys in loader:
            parts.append(backbone(images.to(device, non_blocking=True)).float())
            keys += _keys(batch_keys)
    if not parts:
        return torch.empty(0, 0), keys
    return torch.cat(parts).cpu(), keys


@dataclass
class BackboneTask(ClassificationTask):
    """Cross-entropy classification of the features ``backbone`` computes from each batch of images.

    The model the engine trains is the head alone; the (frozen) backbone runs inside the step,
    under the engine's autocast, on the batch's device. This is the book's on-the-fly path.
    """

    backbone: nn.Module | None = None

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        if self.backbone is None:
            raise ValueError("BackboneTask needs a backbone")
        parameter = next(self.backbone.parameters(), None)
        if parameter is not None and parameter.device != images.device:
            self.backbone.to(images.device)
        return self.backbone(images)

    def train_step(self, model, batch):
        images, labels = batch
        return super().train_step(model, (self._features(images), labels))

    def eval_step(self, model, batch):
        images, labels = batch
        return super().eval_step(model, (self._features(images), labels))


class ViewFeatures(Dataset):
    """Cached features of ``views`` augmented views per image: item ``i`` is ``(features[i, v], labels[i])``
    with the view ``v`` drawn anew each time (torch's generator: seeded, checkpointed, resumed).

    ``features``: ``(N, V, D)``; one view (``V = 1``) gives every epoch the same features.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        if features.dim() != 3 or len(features) != len(labels):
            raise ValueError(f"features must be (N, views, dim) with N = {len(labels)} labels, got "
                             f"{tuple(features.shape)}")
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        views = self.features.shape[1]
        view = int(torch.randint(views, ())) if views > 1 else 0
        return self.features[index, view], self.labels[index]
