"""Test-set prediction: ids from file names in numeric order, batched predictions equal a per-image loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from cvflow.data.readers.images import ImageIdFolder
from cvflow.engine.predict import predict_labels
from cvflow.errors import DataError

TRANSFORM = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])


def _folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "test"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


@pytest.mark.parametrize("cache", ["none", "decoded"])
def test_ids_come_from_file_names_in_numeric_order(tmp_path, cache):
    folder = _folder(tmp_path, [str(i) for i in range(1, 13)])
    ds = ImageIdFolder(folder, TRANSFORM, cache=cache)
    assert ds.ids == list(range(1, 13))  # not 1, 10, 11, 12, 2, ... (the string order of the listing)
    assert [p.name for p in ds.paths] == [f"{i}.png" for i in range(1, 13)]
    image, image_id = ds[9]
    assert image_id == 10 and image.shape == (3, 8, 8) and image.dtype == torch.float32
    raw = torch.from_numpy(np.array(Image.open(folder / "10.png"))).permute(2, 0, 1)
    assert torch.equal(ds.image(9), raw)


def test_non_numeric_ids_sort_by_name_and_bad_folders_are_one_line(tmp_path):
    ds = ImageIdFolder(_folder(tmp_path, ["b", "a10", "a2"]))
    assert ds.ids == ["a10", "a2", "b"]
    with pytest.raises(DataError, match="no such folder"):
        ImageIdFolder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        ImageIdFolder(tmp_path / "empty")
    (tmp_path / "test" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="1 unreadable image"):
        ImageIdFolder(tmp_path / "test")


def test_batched_predictions_equal_a_per_image_loop(tmp_path):
    folder = _folder(tmp_path, [str(i) for i in range(1, 24)])
    ds = ImageIdFolder(folder, TRANSFORM)
    model = _tiny_model().train()
    ids, classes = predict_labels(model, ds, batch_size=5, device="cpu", precision="fp32")
    assert model.training  # the caller's mode is restored
    model.eval()
    with torch.no_grad():
        expected = [int(model(TRANSFORM(ds.image(i))[None]).argmax()) for i in range(len(ds))]
    assert ids == list(range(1, 24))
    assert classes.dtype == torch.long and classes.device.type == "cpu"
    assert classes.tolist() == expected
    # the same through worker processes
    again_ids, again = predict_labels(model, ds, batch_size=7, device="cpu", precision="fp32", num_workers=2)
    assert again_ids == ids and torch.equal(again, classes)
