"""`cvflow figures augmentation`: the book's 13.1 gallery, drawn reproducibly from cvflow.augmentation.

The copies behind every grid are checked directly (eight different copies for the random
augmenters; for the flips, each copy is the photo or its mirror image), the grids are read
back from the matplotlib figures, and the command is run twice to compare the PNGs' bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib.pyplot import close
from PIL import Image
from torchvision.transforms import v2

from cvflow import augmentation
from cvflow.augmentation import BOOK_AUGMENTERS, augmented_copies, draw_grid, draw_overview
from cvflow.pipelines import load_params
from cvflow.pipelines.augmentation_figures import draw as pipeline
from cvflow.pipelines import photos as photos_pipeline
from cvflow.stages.cli import main
from conftest import tiny_params


def _cvflow(*argv: str) -> int:
    """The ``cvflow`` console script's exit status (Typer's success ends in ``SystemExit(0)``)."""
    try:
        return main(list(argv))
    except SystemExit as done:
        return int(done.code or 0)


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return root


# session: the fast tier runs before the slow tests (conftest.py), so this module's two halves run apart
@pytest.fixture(scope="session")
def demo_project(tmp_path_factory) -> Path:
    """A project with the demo photos fetched (cat1.jpg: a generated cat, 500 x 400 as the book's)."""
    root = _project(tmp_path_factory.mktemp("augmentation") / "project")
    photos_pipeline.fetch(load_params(root / "params.yaml"), root)
    return root


@pytest.fixture(scope="session")
def written(demo_project) -> dict[str, bytes]:
    """The first run's PNGs, as bytes by file name."""
    paths = pipeline.figures(load_params(demo_project / "params.yaml"), demo_project)
    return {name: path.read_bytes() for name, path in paths.items()}


@pytest.fixture(scope="session")
def cat(demo_project) -> torch.Tensor:
    return pipeline.load_cat(demo_project)


def test_the_books_augmenters():
    assert [a.name for a in BOOK_AUGMENTERS] == ["flip_left_right", "flip_up_down", "random_resized_crop",
                                                "brightness", "hue", "color", "combination"]
    crop = augmentation.shape_aug()
    assert tuple(crop.size) == (200, 200) and tuple(crop.scale) == (0.1, 1) and tuple(crop.ratio) == (0.5, 2)
    jitter = augmentation.augmenter("brightness").build()
    assert jitter.brightness == (0.5, 1.5) and jitter.contrast is None and jitter.hue is None
    hue = augmentation.augmenter("hue").build()
    assert hue.hue == (-0.5, 0.5) and hue.brightness is None
    color = augmentation.color_aug()
    assert (color.brightness, color.contrast, color.saturation, color.hue) == ((0.5, 1.5),) * 3 + ((-0.5, 0.5),)
    combo = augmentation.augmenter("combination").build()
    assert [type(t) for t in combo.transforms] == [v2.RandomHorizontalFlip, v2.ColorJitter, v2.RandomResizedCrop]
    with pytest.raises(KeyError, match="known ones"):
        augmentation.augmenter("nope")


def test_the_command_writes_the_gallery(written, demo_project):
    out = demo_project / "data" / "reports" / "augmentation"
    assert list(written) == list(pipeline.FILES) and len(pipeline.FILES) == 8
    assert sorted(p.name for p in out.iterdir()) == sorted(pipeline.FILES)  # no temporary files left
    for name in pipeline.FILES:
        with Image.open(out / name) as png:
            assert png.format == "PNG"
            w, h = png.size
        assert (h > 3 * w) if name == pipeline.OVERVIEW else (w > h)  # seven grids stacked; one 2x4 grid


@pytest.mark.parametrize("aug", [a for a in BOOK_AUGMENTERS if a.random_copies], ids=lambda a: a.name)
def test_random_augmenters_give_eight_different_copies(cat, aug):
    copies = augmented_copies(cat, aug.build())
    assert len(copies) == 8 and all(c.dtype == torch.uint8 and c.shape[0] == 3 for c in copies)
    flat = [c.flatten().tolist() for c in copies]
    assert len({tuple(f) for f in flat}) == 8
    assert not any(c.shape == cat.shape and torch.equal(c, cat) for c in copies)
    if aug.name in ("random_resized_crop", "combination"):
        assert all(tuple(c.shape) == (3, 200, 200) for c in copies)
    else:
        assert all(c.shape == cat.shape for c in copies)


@pytest.mark.parametrize("name, dim", [("flip_left_right", -1), ("flip_up_down", -2)])
def test_flips_give_the_photo_or_its_mirror(cat, name, dim):
    copies = augmented_copies(cat, augmentation.augmenter(name).build())
    mirror = cat.flip(dim)
    flipped = [torch.equal(c, mirror) for c in copies]
    assert all(f or torch.equal(c, cat) for c, f in zip(copies, flipped))
    assert 0 < sum(flipped) < 8  # with the fixed seed, both kinds appear


def test_copies_are_seeded_and_leave_the_callers_rng_alone(cat):
    aug = augmentation.color_aug()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = augmented_copies(cat, aug)
    assert torch.equal(torch.rand(3), before)  # the caller's stream went on as if nothing was drawn
    second = augmented_copies(cat, aug)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = augmented_copies(cat, aug, seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_grids_show_the_copies(cat):
    copies = pipeline.copies(cat)
    fig = draw_grid(copies["hue"], "hue")
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig.axes]
    assert len(shown) == 8 and fig.get_size_inches().tolist() == [6.0, 3.0]  # the book's 4 x 1.5, 2 x 1.5
    assert all(np.array_equal(s, c.permute(1, 2, 0).numpy()) for s, c in zip(shown, copies["hue"]))
    close(fig)
    fig = draw_overview([(a.title, copies[a.name]) for a in BOOK_AUGMENTERS])
    assert len(fig.axes) == 56 and [s._suptitle.get_text() for s in fig.subfigs] == [a.title for a in BOOK_AUGMENTERS]
    close(fig)
    with pytest.raises(ValueError, match="2x4"):
        draw_grid(copies["hue"][:7])


def test_rerun_gives_identical_bytes(written, demo_project, capsys):
    assert _cvflow("figures", "augmentation", "--params", str(demo_project / "params.yaml")) == 0
    out = demo_project / "data" / "reports" / "augmentation"
    assert capsys.readouterr().out.split() == [str(out / name) for name in pipeline.FILES]
    assert {name: (out / name).read_bytes() for name in pipeline.FILES} == written


def test_missing_photo_exits_2_with_one_line(tmp_path, capsys):
    project = _project(tmp_path / "empty")
    assert _cvflow("figures", "augmentation", "--params", str(project / "params.yaml")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cat1.jpg" in err and "cvflow fetch photos" in err
    assert not (project / "data" / "reports").exists()
    (project / "data" / "photos").mkdir(parents=True)
    (project / "data" / "photos" / "cat1.jpg").write_bytes(b"not a jpeg")
    assert _cvflow("figures", "augmentation", "--params", str(project / "params.yaml")) == 2
    assert "cvflow fetch photos" in capsys.readouterr().err
    assert not (project / "data" / "reports").exists()
