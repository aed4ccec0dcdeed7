"""cvflow.data.readers.images: the image-folder reader, with cache none / decoded (capped), shared decodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from cvflow.data.readers.images import DecodedImageFolder, classification_transforms
from cvflow.data.readers.hotdog import CLASSES
from cvflow.twins.hotdog import generate_hotdog
from cvflow.errors import DataError
from cvflow.params import ImageTransforms
from cvflow.pipelines.hotdog import HotdogDemo


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hotdog")
    generate_hotdog(root, HotdogDemo(train_per_class=4, test_per_class=2, min_side=40, max_side=72, seed=1))
    return root / "train"


def _transform():
    train_tf, _ = classification_transforms(ImageTransforms(train_crop=32, test_resize=40, test_crop=32))
    return train_tf


def test_both_modes_give_identical_items(folder):
    none = DecodedImageFolder(folder, CLASSES, _transform(), cache="none")
    decoded = DecodedImageFolder(folder, CLASSES, _transform(), cache="decoded")
    assert none.paths == decoded.paths and torch.equal(none.targets, decoded.targets) and len(none) == 8
    assert none.cache_nbytes == 0 and decoded.cache_nbytes > 0
    for i in range(len(none)):
        assert torch.equal(none.image(i), decoded.image(i)) and none.image(i).dtype == torch.uint8
        torch.manual_seed(i)
        a, la = none[i]
        torch.manual_seed(i)
        b, lb = decoded[i]
        assert torch.equal(a, b) and la == lb
    # images: the same uint8 CHW tensors, as a sequence (the pipelines' grids index it)
    assert len(none.images) == 8 and all(torch.equal(x, y) for x, y in zip(none.images, decoded.images))


def test_the_cache_cap_is_respected_and_changes_nothing_seen(folder):
    full = DecodedImageFolder(folder, CLASSES, cache="decoded")
    sizes = [full.image(i).numel() for i in range(len(full))]
    cap = sum(sizes[:3]) + 1
    capped = DecodedImageFolder(folder, CLASSES, cache="decoded", cache_max_bytes=cap)
    assert 0 < capped.cache_nbytes <= cap
    assert sum(t is not None for t in capped._cached) < len(capped)
    for i in range(len(full)):  # images past the cap are decoded per item: full size, same pixels
        assert torch.equal(capped.image(i), full.image(i))
    zero = DecodedImageFolder(folder, CLASSES, cache="decoded", cache_max_bytes=0)
    assert zero.cache_nbytes == 0 and torch.equal(zero.image(0), full.image(0))


@pytest.mark.parametrize("cache", ["none", "decoded"])
def test_corrupt_files_are_reported_before_training_in_both_modes(tmp_path, folder, cache):
    import shutil

    root = tmp_path / "train"
    shutil.copytree(folder, root)
    (root / "hotdog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = sorted((root / "not-hotdog").iterdir())[0].read_bytes()
    (root / "not-hotdog" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    ds = DecodedImageFolder(root, CLASSES, cache=cache, on_corrupt="skip")
    assert len(ds) == 8 and not any(p.name in ("broken.jpg", "truncated.jpg") for p in ds.paths)
    with pytest.raises(DataError, match=r"2 unreadable image\(s\).*broken\.jpg.*truncated\.jpg"):
        DecodedImageFolder(root, CLASSES, cache=cache, on_corrupt="error")


def test_shared_files_are_decoded_once(tmp_path, folder):
    # Kaggle's train_valid is train + valid as hard links: one decode and one tensor per file.
    linked = tmp_path / "train_valid"
    for name in CLASSES:
        (linked / name).mkdir(parents=True)
        for f in (folder / name).iterdir():
            os.link(f, linked / name / f.name)
    first = DecodedImageFolder(folder, CLASSES, cache="decoded")
    second = DecodedImageFolder(linked, CLASSES, cache="decoded")
    assert second.decoded_now == 0 and len(second) == len(first)
    assert all(second.image(i) is first.image(i) for i in range(len(first)))
    again = DecodedImageFolder(folder, CLASSES, cache="decoded")  # the same paths once more
    assert again.decoded_now == 0


def test_no_cache_decodes_in_dataloader_workers(folder):
    ds = DecodedImageFolder(folder, CLASSES, _transform(), cache="none")
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(len(b[1]) for b in batches) == 8 and batches[0][0].shape == (4, 3, 32, 32)


def test_unknown_cache_mode_is_one_line(folder):
    with pytest.raises(DataError, match="unknown image cache 'ram'"):
        DecodedImageFolder(folder, CLASSES, cache="ram")
