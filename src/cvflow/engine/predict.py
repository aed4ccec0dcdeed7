"""Batched test-set prediction: the Kaggle test sets are large (cifar-10: 300,000 images).

:func:`predict_labels` runs a model over a dataset of ``(image, id)`` items (e.g.
:class:`cvflow.data.readers.images.ImageIdFolder`) the way inference should run: in
inference mode, under the precision's autocast, whole batches copied to the device without
blocking, and each batch's predicted classes left on the device, so the host never waits on
the device until the single copy at the end. The loader keeps the dataset's order, so ids
and predictions stay paired.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cvflow.engine.runtime import Precision, use_pin_memory

__all__ = ["predict_labels"]


def _host_ids(batch_ids) -> list:
    """A batch's ids as Python values (default_collate makes ints a tensor, keeps strings a list)."""
    if isinstance(batch_ids, torch.Tensor):
        return batch_ids.tolist()
    return list(batch_ids)


def predict_labels(model: nn.Module, dataset: Dataset, *, batch_size: int = 256,
                   device: torch.device | str = "cpu", precision: Precision | str = "auto",
                   num_workers: int = 0) -> tuple[list, torch.Tensor]:
    """Predicted class index of every item of ``dataset`` (items ``(image, id)``): ``(ids, classes)``.

    ``ids`` is a list in the dataset's order; ``classes`` a CPU ``int64`` tensor of the same
    length (argmax of the logits). ``precision``: a :class:`~cvflow.engine.Precision` or its
    spec (``auto``: bf16 autocast on CUDA, fp32 elsewhere). The model is moved to ``device``
    and put in eval mode for the call (its previous mode is restored after).
    """
    device = torch.device(device)
    if not isinstance(precision, Precision):
        precision = Precision.resolve(device, precision)
    n = len(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=use_pin_memory(device), persistent_workers=False)
    predictions = torch.empty(n, dtype=torch.long, device=device)
    ids: list = []
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode(), precision.autocast():
            start = 0
            for images, batch_ids in loader:
                images = images.to(device, non_blocking=True)
                logits = model(images)
                predictions[start:start + len(images)] = logits.argmax(dim=1)
                start += len(images)
                ids += _host_ids(batch_ids)
    finally:
        model.train(was_training)
    if start != n:
        raise RuntimeError(f"the loader gave {start} items for a dataset of {n}")
    return ids, predictions.cpu()
