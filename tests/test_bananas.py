"""Banana detection (book 13.6): the twin's files, the reader, the book's batches, boxes under augmentation."""

from __future__ import annotations

import csv
import hashlib
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvflow.data.sources import hub
from cvflow.data.readers.bananas import (
    BANANA_HEADER,
    BananasDataset,
    RandomCropKeepingBoxes,
    book_collate,
    detection_test_transforms,
    detection_train_transforms,
    load_data_bananas,
)
from cvflow.data.sources.bananas import fetch_bananas
from cvflow.twins.bananas import generate_bananas, render_banana_scene
from cvflow.errors import DataError
from httpd import FileServer


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bananas") / "banana-detection"
    generate_bananas(root, n_train=8, n_val=4, seed=3)
    return root


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _sample(seed: int, size: int = 256):
    image, alpha, box = render_banana_scene(np.random.default_rng(seed), size)
    img = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
    target = {"boxes": tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY",
                                                 canvas_size=(size, size)),
              "labels": torch.tensor([0])}
    return img, target, tv_tensors.Mask(torch.from_numpy(alpha)), box


def test_twin_has_the_real_layout_and_label_csv(twin):
    for split, n in (("train", 8), ("val", 4)):
        folder = twin / f"bananas_{split}"
        assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(f"{i}.png" for i in range(n))
        with open(folder / "label.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == BANANA_HEADER == ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
        assert [r[0] for r in rows[1:]] == [f"{i}.png" for i in range(n)]
        for name, label, *box in rows[1:]:
            assert label == "0" and all(v.isdigit() for v in box)  # integer pixels, as in the real file
            x1, y1, x2, y2 = map(int, box)
            assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256 and x2 - x1 >= 10 and y2 - y1 >= 10
            with Image.open(folder / "images" / name) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "RGB", (256, 256))
    assert (twin / "bananas_train" / "label.csv").read_bytes().endswith(b"\n")


def test_twin_is_deterministic_per_seed(tmp_path, twin):
    generate_bananas(tmp_path / "again", n_train=8, n_val=4, seed=3)
    generate_bananas(tmp_path / "other", n_train=8, n_val=4, seed=4)
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(tmp_path / "again") == files(twin)
    assert files(tmp_path / "other").keys() == files(twin).keys()
    assert files(tmp_path / "other") != files(twin)


def test_box_is_the_tight_box_of_a_banana_coloured_sprite():
    sizes = []
    for seed in range(12):
        image, alpha, box = render_banana_scene(np.random.default_rng(seed), 256)
        assert box == _tight_box(alpha > 0)
        solid = alpha == 255
        assert solid.sum() > 30
        r, g, b = (image[solid].astype(float).mean(0))
        assert r > b + 40 and g > b + 20  # yellow to brown, not a random colour
        sizes.append(box[2] - box[0])
    assert max(sizes) > 1.8 * min(sizes)  # the scale varies


def test_generation_is_fast(tmp_path):
    start = time.perf_counter()
    generate_bananas(tmp_path / "b", n_train=20, n_val=0, seed=0)
    per_image = (time.perf_counter() - start) / 20
    assert per_image < 0.06, f"{per_image * 1000:.1f} ms per image"


def test_reader_items_are_tv_tensors_matching_the_csv(twin):
    ds = BananasDataset(twin.parent, "train")  # the parent of banana-detection works too
    assert len(ds) == 8
    image, target = ds[2]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 256, 256)
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (256, 256)
    with open(twin / "bananas_train" / "label.csv", newline="") as handle:
        row = list(csv.reader(handle))[3]
    assert boxes.tolist() == [[float(v) for v in row[2:]]]
    assert target["labels"].tolist() == [0] and target["labels"].dtype == torch.int64
    expected = np.array(Image.open(twin / "bananas_train" / "images" / "2.png"))
    assert torch.equal(image.permute(1, 2, 0), torch.from_numpy(expected))
    assert len(BananasDataset(twin, "val")) == 4


def test_book_collate_gives_the_books_tensors(twin):
    ds = BananasDataset(twin, "val")
    images, labels = book_collate([ds[0], ds[1]])
    assert images.shape == (2, 3, 256, 256) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert torch.allclose(images[0], ds[0][0].float() / 255)
    assert labels.shape == (2, 1, 5)
    assert torch.allclose(labels[1, 0], torch.tensor([0.0, *(ds[1][1]["boxes"][0] / 256).tolist()]))
    # padding: images with 2 and 0 boxes -> rows of -1
    img = torch.zeros(3, 100, 200, dtype=torch.uint8)
    two = {"boxes": torch.tensor([[10.0, 20, 110, 70], [0, 0, 200, 100]]), "labels": torch.tensor([0, 1])}
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    _, padded = book_collate([(img, two), (img, none)])
    assert padded.shape == (2, 2, 5)
    assert torch.allclose(padded[0], torch.tensor([[0, 0.05, 0.2, 0.55, 0.7], [1, 0, 0, 1, 1]]))
    assert (padded[1] == -1).all()
    with pytest.raises(ValueError, match="Resize"):
        book_collate([(img, two), (torch.zeros(3, 50, 50, dtype=torch.uint8), none)])


def test_flip_mirrors_box_and_pixels_together():
    image, target, mask, (x1, y1, x2, y2) = _sample(5)
    out_image, out_target, out_mask = v2.RandomHorizontalFlip(p=1.0)(image, target, mask)
    assert out_target["boxes"].tolist() == [[256 - x2, y1, 256 - x1, y2]]
    assert torch.equal(out_image, image.flip(-1))
    assert _tight_box(out_mask.numpy() > 0) == (256 - x2, y1, 256 - x1, y2)


def test_crop_keeps_the_whole_banana_and_its_box_exact():
    torch.manual_seed(0)
    crop = RandomCropKeepingBoxes(min_scale=0.3)
    shapes = set()
    for seed in range(15):
        image, target, mask, _ = _sample(seed)
        out_image, out_target, out_mask = crop(image, target, mask)
        shapes.add(tuple(out_image.shape[-2:]))
        assert int(out_mask.sum()) == int(mask.sum())  # nothing of the banana was cut away
        box = [round(v) for v in out_target["boxes"][0].tolist()]
        assert tuple(box) == _tight_box(out_mask.numpy() > 0)
        assert tuple(out_target["boxes"].canvas_size) == tuple(out_image.shape[-2:])
    assert len(shapes) > 5  # the crops really vary


def test_train_pipeline_moves_boxes_with_pixels():
    torch.manual_seed(1)
    pipeline = detection_train_transforms(128, crop_p=1.0)
    for seed in range(12):
        image, target, mask, _ = _sample(seed)
        out_image, out_target, out_mask = pipeline(image, target, mask)
        assert out_image.shape == (3, 128, 128) and out_mask.shape == (128, 128)
        assert out_target["boxes"].shape == (1, 4) and out_target["labels"].tolist() == [0]
        bx1, by1, bx2, by2 = out_target["boxes"][0].tolist()
        mx1, my1, mx2, my2 = _tight_box(out_mask.numpy() > 0)
        # the banana's pixels lie inside the transformed box (resampling: within 1.5 px)
        assert mx1 >= bx1 - 1.5 and my1 >= by1 - 1.5 and mx2 <= bx2 + 1.5 and my2 <= by2 + 1.5
        assert abs(mx1 - bx1) <= 1.5 and abs(mx2 - bx2) <= 1.5 and abs(my1 - by1) <= 1.5 and abs(my2 - by2) <= 1.5
        # the image pixels moved the same way: the banana's colour is where the mask is
        inside = out_mask.numpy() > 200
        if inside.sum() > 10:
            rgb = out_image.permute(1, 2, 0).numpy()[inside].astype(float).mean(0)
            assert rgb[0] > rgb[2] + 30
    test = detection_test_transforms(64)
    _, out_target, _ = test(*_sample(0)[:3])
    assert torch.allclose(out_target["boxes"][0], torch.tensor(_sample(0)[3], dtype=torch.float32) / 4)


def test_loader_batches_in_the_books_format(twin):
    train, val = load_data_bananas(twin, batch_size=4, train_transforms=detection_train_transforms(96),
                                   val_transforms=detection_test_transforms(96))
    images, labels = next(iter(train))
    assert images.shape == (4, 3, 96, 96) and labels.shape == (4, 1, 5)
    assert (labels[..., 0] == 0).all() and (labels[..., 1:] >= 0).all() and (labels[..., 1:] <= 1).all()
    assert (labels[..., 3] > labels[..., 1]).all() and (labels[..., 4] > labels[..., 2]).all()
    assert sum(len(b[0]) for b in val) == 4


def test_corrupt_and_missing_images_are_named(tmp_path, twin, capsys):
    import shutil

    root = tmp_path / "banana-detection"
    shutil.copytree(twin, root)
    (root / "bananas_train" / "images" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "bananas_train" / "images" / "5.png").unlink()
    ds = BananasDataset(root, "train")
    assert len(ds) == 6 and "3.png" not in ds.names and "5.png" not in ds.names
    err = capsys.readouterr().err
    assert "3.png" in err and "5.png" in err and "skipping 2" in err
    with pytest.raises(DataError, match=r"3\.png"):
        BananasDataset(root, "train", on_corrupt="error")


def test_bad_label_csv_is_a_data_error(tmp_path, twin):
    import shutil

    root = tmp_path / "banana-detection"
    shutil.copytree(twin, root)
    csv_path = root / "bananas_val" / "label.csv"
    csv_path.write_text("name,label,x1,y1,x2,y2\n0.png,0,1,2,3,4\n")
    with pytest.raises(DataError, match="header"):
        BananasDataset(root, "val")
    csv_path.write_text(",".join(BANANA_HEADER) + "\n0.png,0,10,20,5,30\n")
    with pytest.raises(DataError, match="line 2"):
        BananasDataset(root, "val")
    with pytest.raises(DataError, match="bananas_train"):
        BananasDataset(tmp_path / "nowhere", "train")


def _zip_of(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, f"banana-detection/{path.relative_to(root)}")
    return buffer.getvalue()


def test_every_source_gives_the_same_files(tmp_path, twin, monkeypatch):
    monkeypatch.delenv(hub.HUB_URL_ENV, raising=False)
    body = _zip_of(twin)
    monkeypatch.setitem(hub.DATA_HUB, "banana-detection",
                        hub.HubFile("banana-detection.zip", hashlib.sha1(body).hexdigest()))
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with FileServer() as server:
        server.add("/banana-detection.zip", body)
        counts = fetch_bananas(tmp_path / "d2l", "d2l", hub_url=server.base_url, downloads=tmp_path / "dl")
    assert counts == {"train": 8, "val": 4}
    assert files(tmp_path / "d2l") == files(twin)
    assert fetch_bananas(tmp_path / "local", "local", path=tmp_path / "dl" / "banana-detection.zip") == counts
    assert files(tmp_path / "local") == files(twin)
    assert fetch_bananas(tmp_path / "demo", "demo", n_train=8, n_val=4, seed=3) == counts
    assert files(tmp_path / "demo") == files(twin)
    with pytest.raises(DataError, match="unknown source"):
        fetch_bananas(tmp_path / "x", "kaggle")
