"""Pascal VOC2012 segmentation (book 13.9): label decoding on real masks, the twin, the reader."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from cvflow.data.sources import hub
from cvflow.data.readers.voc import (
    IGNORE_INDEX,
    VOC_CLASSES,
    VOC_COLORMAP,
    VOCSegDataset,
    read_voc_label,
    voc_colormap2label,
    voc_label_indices,
    voc_palette,
)
from cvflow.data.sources.voc import fetch_voc
from cvflow.twins.voc import generate_voc
from cvflow.errors import DataError
from conftest import shared
from httpd import FileServer

ALLOWED = set(range(21)) | {IGNORE_INDEX}


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc")
    generate_voc(root, n_train=6, n_val=3, seed=1)
    return root


def _voc(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def _rgb_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def _check_masks(voc: Path) -> dict[str, int]:
    """Palette path == RGB-colormap path on every pixel of every mask; returns classes seen."""
    seen: dict[str, int] = {}
    masks = sorted((voc / "SegmentationClass").glob("*.png"))
    assert masks
    for path in masks:
        with Image.open(path) as image:
            image.load()
            by_colour = voc_label_indices(_rgb_tensor(image)).numpy()
            # no pixel of a colour outside the VOC colormap (unknown would give 255 too: count directly)
            rgb = np.array(image.convert("RGB")).reshape(-1, 3).astype(np.int64)
            codes = set(np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).tolist())
            known = {(r << 16) | (g << 8) | b for r, g, b in VOC_COLORMAP + [[224, 224, 192]]}
            assert codes <= known, path.name
            if image.mode == "P":
                by_index = np.array(image)
            else:  # an RGB mask: write it as a VOC palette PNG and read the indices back
                buffer = io.BytesIO()
                pal = Image.frombytes("P", image.size, by_colour.astype(np.uint8).tobytes())
                pal.putpalette(voc_palette())
                pal.save(buffer, "PNG")
                by_index = np.array(Image.open(buffer))
                assert np.array_equal(np.asarray(pal.convert("RGB")), np.array(image.convert("RGB")))
        assert np.array_equal(by_index, by_colour), path.name
        decoded, unknown = read_voc_label(path)
        assert unknown == 0 and np.array_equal(decoded, by_index)
        values = set(np.unique(by_index).tolist())
        assert values <= ALLOWED, (path.name, values)
        for v in values:
            seen[v] = seen.get(v, 0) + 1
    return seen


def test_classes_colormap_and_palette_are_the_books():
    assert len(VOC_CLASSES) == len(VOC_COLORMAP) == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tv/monitor"
    assert VOC_COLORMAP[1] == [128, 0, 0] and VOC_COLORMAP[15] == [192, 128, 128] and VOC_COLORMAP[20] == [0, 64, 128]
    palette = voc_palette()
    assert len(palette) == 768
    assert [palette[3 * i : 3 * i + 3] for i in range(21)] == VOC_COLORMAP
    assert palette[3 * 255 :] == [224, 224, 192]
    assert len({tuple(palette[3 * i : 3 * i + 3]) for i in range(256)}) == 256


def test_label_indices_is_a_vectorised_colour_lookup():
    colours = VOC_COLORMAP + [[224, 224, 192], [1, 2, 3]]
    rgb = torch.tensor(colours, dtype=torch.uint8).T.reshape(3, 1, -1).repeat(1, 2, 1)  # (3, 2, 23)
    out = voc_label_indices(rgb)
    assert out.dtype == torch.long and out.shape == (2, 23)
    assert out[0].tolist() == list(range(21)) + [255, 255]
    assert voc_label_indices(rgb, unknown=0)[1, -1] == 0
    # the book's 256**3 table gives the same for every known colour (unknown -> 0 as in the book)
    table = voc_colormap2label()
    assert voc_label_indices(rgb, table)[0].tolist() == list(range(21)) + [255, 0]
    # an (H, W, 3) numpy array works as well, and a 500x500 mask is quick
    big = np.random.default_rng(0).choice(np.array(VOC_COLORMAP, np.uint8), size=(500, 500))
    start = time.perf_counter()
    idx = voc_label_indices(big)
    assert time.perf_counter() - start < 0.5
    lut = {tuple(c): i for i, c in enumerate(VOC_COLORMAP)}
    assert idx[123, 45] == lut[tuple(big[123, 45].tolist())] and idx[499, 0] == lut[tuple(big[499, 0].tolist())]


def test_real_masks_palette_and_colour_paths_agree():
    voc = _voc(shared("voc-mini"))
    seen = _check_masks(voc)
    assert 255 in seen  # the void border is kept as 255, not folded into background
    assert len(set(seen) - {0, 255}) >= 8


def test_real_slices_read_crop_and_filter():
    root = shared("voc-mini")
    voc = _voc(root)
    train = VOCSegDataset(root, "train")
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert train.ids == ids and len(train) == 11
    image, label = train[0]
    assert image.shape == (3, 320, 480) and image.dtype == torch.float32
    assert label.shape == (320, 480) and label.dtype == torch.long
    assert set(label.unique().tolist()) <= ALLOWED
    assert -3.0 < float(image.min()) < 0.0 < float(image.max()) < 3.0  # normalised with ImageNet statistics
    assert len(VOCSegDataset(root, False)) == 6  # the book's is_train=False
    # images smaller than the crop are dropped, as in the book
    sizes = {i: Image.open(voc / "JPEGImages" / f"{i}.jpg").size for i in ids}
    big = VOCSegDataset(root, "train", crop_size=(400, 500))
    assert big.ids == [i for i in ids if sizes[i][1] >= 400 and sizes[i][0] >= 500]
    assert 0 < len(big) < len(ids)
    with pytest.raises(DataError, match="crop_size"):
        VOCSegDataset(root, "train", crop_size=(600, 600))


def test_crop_cuts_image_and_mask_at_the_same_place(twin):
    ds = VOCSegDataset(twin, "train", transforms=v2.RandomCrop((320, 480)))
    h, w = ds.images[0].shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ds.images[0] = torch.stack([yy % 256, xx % 256, (yy // 256) * 16 + xx // 256]).to(torch.uint8)
    ds.labels[0] = ((yy * 7 + xx) % 21).to(torch.uint8)
    torch.manual_seed(0)
    offsets = set()
    for _ in range(5):
        image, label = ds[0]
        y = image[0].long() + (image[2].long() // 16) * 256
        x = image[1].long() + (image[2].long() % 16) * 256
        assert torch.equal(label, (y * 7 + x) % 21)
        offsets.add((int(y[0, 0]), int(x[0, 0])))
    assert len(offsets) > 1


def test_twin_layout_formats_and_lists(twin):
    voc = _voc(twin)
    lists = {s: (voc / "ImageSets" / "Segmentation" / f"{s}.txt").read_text() for s in ("train", "val", "trainval")}
    train, val = lists["train"].split(), lists["val"].split()
    assert len(train) == 6 and len(val) == 3 and not set(train) & set(val)
    assert lists["trainval"].split() == sorted(train + val) and all(t.endswith("\n") for t in lists.values())
    for name in train + val:
        with Image.open(voc / "JPEGImages" / f"{name}.jpg") as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size[0] >= 480 and image.size[1] >= 320 and max(image.size) <= 500
            size = image.size
        for folder in ("SegmentationClass", "SegmentationObject"):
            with Image.open(voc / folder / f"{name}.png") as mask:
                assert mask.format == "PNG" and mask.mode == "P" and mask.size == size
                assert mask.getpalette() == voc_palette()
    seen = _check_masks(voc)
    assert 255 in seen and len(set(seen) - {0, 255}) >= 4


def test_twin_objects_have_a_void_border(twin):
    voc = _voc(twin)
    for path in sorted((voc / "SegmentationClass").glob("*.png")):
        cls = np.array(Image.open(path)).astype(int)
        obj = np.array(Image.open(voc / "SegmentationObject" / path.name)).astype(int)
        assert np.array_equal(cls == 255, obj == 255)
        assert (cls > 0).sum() > 0.02 * cls.size and 0.003 < (cls == 255).mean() < 0.25
        # two different labels never touch: the void band separates them (as in VOC)
        for a, b in ((obj[:, 1:], obj[:, :-1]), (obj[1:], obj[:-1])):
            touching = (a != b) & (a != 255) & (b != 255)
            assert not touching.any(), path.name
        # each object number maps to one class
        for k in set(np.unique(obj).tolist()) - {0, 255}:
            assert len(np.unique(cls[obj == k])) == 1


def test_twin_is_deterministic(tmp_path, twin):
    generate_voc(tmp_path, n_train=6, n_val=3, seed=1)
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(tmp_path) == files(twin)


def test_rgb_masks_with_stray_colours_are_ignored_and_reported(tmp_path, twin, capsys):
    voc = tmp_path / "VOC2012"
    shutil.copytree(_voc(twin), voc)
    name = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    mask = Image.open(voc / "SegmentationClass" / f"{name}.png").convert("RGB")
    expected = np.array(Image.open(voc / "SegmentationClass" / f"{name}.png"))
    array = np.array(mask)
    array[:4, :4] = (10, 200, 30)  # not a VOC colour
    Image.fromarray(array).save(voc / "SegmentationClass" / f"{name}.png")
    indices, unknown = read_voc_label(voc / "SegmentationClass" / f"{name}.png")
    assert unknown == 16 and (indices[:4, :4] == 255).all()
    assert np.array_equal(indices[4:], expected[4:])
    ds = VOCSegDataset(voc, "val")
    assert len(ds) == 3 and name in capsys.readouterr().err


def test_corrupt_pairs_are_named_and_skipped(tmp_path, twin, capsys):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    shutil.copytree(_voc(twin), voc)
    train = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    (voc / "JPEGImages" / f"{train[1]}.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    Image.new("P", (10, 10)).save(voc / "SegmentationClass" / f"{train[2]}.png")  # wrong size
    ds = VOCSegDataset(tmp_path, "train")
    assert ds.ids == [train[0]] + train[3:]
    err = capsys.readouterr().err
    assert train[1] in err and train[2] in err
    with pytest.raises(DataError, match=train[1]):
        VOCSegDataset(tmp_path, "train", on_corrupt="error")
    with pytest.raises(DataError, match="VOCdevkit"):
        VOCSegDataset(tmp_path / "missing", "train")


def test_every_source_gives_the_same_layout(tmp_path, twin, monkeypatch):
    monkeypatch.delenv(hub.HUB_URL_ENV, raising=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(twin / "VOCdevkit", arcname="VOCdevkit")
    body = buffer.getvalue()
    monkeypatch.setitem(hub.DATA_HUB, "voc2012",
                        hub.HubFile("VOCtrainval_11-May-2012.tar", hashlib.sha1(body).hexdigest()))
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with FileServer() as server:
        server.add("/VOCtrainval_11-May-2012.tar", body)
        counts = fetch_voc(tmp_path / "d2l", "d2l", hub_url=server.base_url, downloads=tmp_path / "dl")
    assert counts == {"train": 6, "val": 3}
    assert files(tmp_path / "d2l") == files(twin)
    assert fetch_voc(tmp_path / "local", "local", path=twin / "VOCdevkit") == counts
    assert files(tmp_path / "local") == files(twin)
    assert fetch_voc(tmp_path / "demo", "demo", n_train=6, n_val=3, seed=1) == counts
    assert files(tmp_path / "demo") == files(twin)
    assert len(VOCSegDataset(tmp_path / "d2l", "val")) == 3


def test_twin_scenes_look_like_voc(tmp_path):
    """Objects on 15-35% of the pixels and the 255 band on 2-8%, as in VOC2012 (the voc-mini slice: objects
    22% / 29%, band 5.8% / 2.9% of its train / val pixels), at the demo's sizes; several classes per split."""
    voc = generate_voc(tmp_path, n_train=16, n_val=8, seed=5, size=((128, 160), (96, 128)))
    for split in ("train", "val"):
        objects = band = total = 0
        classes: set[int] = set()
        for name in (voc / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split():
            mask = np.array(Image.open(voc / "SegmentationClass" / f"{name}.png"))
            objects += int(((mask > 0) & (mask < 255)).sum())
            band += int((mask == 255).sum())
            total += mask.size
            classes |= set(np.unique(mask).tolist()) - {0, 255}
        assert 0.15 <= objects / total <= 0.35, (split, objects / total)
        assert 0.02 <= band / total <= 0.08, (split, band / total)
        assert len(classes) >= 5, (split, sorted(classes))
