"""`cvflow figures anchors`: the book's anchor figures (13.4, 13.5) drawn from the library's boxes.

The numbers behind each figure are checked against the book's printed values and against the
detection functions themselves, and the rectangles and labels on each matplotlib figure are
read back, so a figure that drew other boxes than the library's would fail here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib.patches import Rectangle
from matplotlib.pyplot import close
from PIL import Image
from typer.testing import CliRunner

from cvflow.detection.boxes import multibox_detection, multibox_prior, multibox_target
from cvflow.errors import DataError
from cvflow.pipelines import load_params
from cvflow.pipelines.anchors import draw as anchors
from cvflow.pipelines import photos as photos_pipeline
from cvflow.stages.cli import build_app
from conftest import shared, tiny_params

H, W = 561, 728  # catdog.jpg, real and demo
SCALE = torch.tensor([W, H, W, H], dtype=torch.float32)


def _make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return root


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory) -> Path:
    """A project with the demo photos fetched (generated stand-ins at the real sizes)."""
    root = _make_project(tmp_path_factory.mktemp("figures") / "project")
    photos_pipeline.fetch(load_params(root / "params.yaml"), root)
    return root


@pytest.fixture(scope="module")
def written(demo_project) -> dict[str, Path]:
    return anchors.figures(load_params(demo_project / "params.yaml"), demo_project)


@pytest.fixture
def photo() -> np.ndarray:
    """A random image of catdog.jpg's size, for drawing without files."""
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _shows(ax, photo: np.ndarray) -> bool:
    """True when ``ax`` shows exactly ``photo`` (once) with the view on the whole photo."""
    return (len(ax.images) == 1 and np.array_equal(np.asarray(ax.images[0].get_array()), photo)
            and tuple(ax.get_xlim()) == (-0.5, W - 0.5) and tuple(ax.get_ylim()) == (H - 0.5, -0.5))


def _rects(ax) -> list[list[float]]:
    """The rectangles drawn on ``ax`` as (x1, y1, x2, y2) pixel boxes."""
    return [[p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height()]
            for p in ax.patches if isinstance(p, Rectangle)]


def _labels(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_figures_writes_four_pngs(written, demo_project):
    out = demo_project / "data" / "reports" / "anchors"
    assert list(written) == list(anchors.FILES)
    assert written == {name: out / name for name in anchors.FILES}
    assert sorted(p.name for p in out.iterdir()) == sorted(anchors.FILES)  # no temporary files left
    sizes = {}
    for name, path in written.items():
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.load()  # decodes the whole file
            sizes[name] = image.size
            pixels = np.asarray(image.convert("RGB"))
        colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
        assert colours > 5000, f"{name} has {colours} colours: the photo is not in it"  # boxes alone: < 1,500
    for name, (width, height) in sizes.items():
        assert 300 <= width <= 2000 and 250 <= height <= 1000, (name, width, height)
    # Two- and three-panel figures are wide; the single photos are not.
    assert sizes["nms_before_after.png"][0] > 1.6 * sizes["nms_before_after.png"][1]
    assert sizes["multiscale_anchors.png"][0] > 2.4 * sizes["multiscale_anchors.png"][1]
    assert sizes["anchors_at_pixel.png"][0] < 1.6 * sizes["anchors_at_pixel.png"][1]


def test_figures_rewrite_in_place(written, demo_project):
    """Running again replaces the files (atomically) and returns the same paths."""
    before = {name: path.stat().st_mtime_ns for name, path in written.items()}
    again = anchors.figures(load_params(demo_project / "params.yaml"), demo_project)
    assert again == written
    assert all(path.stat().st_mtime_ns >= before[name] for name, path in again.items())
    assert sorted(p.name for p in again["anchors_at_pixel.png"].parent.iterdir()) == sorted(anchors.FILES)


def test_pixel_anchors_are_multibox_priors(photo):
    boxes = anchors.anchor_boxes_at_pixel(H, W)
    prior = multibox_prior(torch.zeros((1, 3, H, W)), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    expected = prior.reshape(H, W, 5, 4)[250, 250] * SCALE
    assert boxes.shape == (5, 4)
    torch.testing.assert_close(boxes, expected, rtol=0, atol=0)
    # The book prints boxes[250, 250, 0, :] = [0.06, 0.07, 0.63, 0.82].
    assert (boxes[0] / SCALE).round(decimals=2).tolist() == pytest.approx([0.06, 0.07, 0.63, 0.82])
    # r = 1 anchors are square in pixels, s * h on a side; centred on the pixel's centre (250.5, 250.5).
    for row, size in zip(boxes[:3], (0.75, 0.5, 0.25)):
        assert float(row[2] - row[0]) == pytest.approx(size * H, rel=1e-5)
        assert float(row[3] - row[1]) == pytest.approx(size * H, rel=1e-5)
    centres = torch.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2), dim=1)
    torch.testing.assert_close(centres, torch.full((5, 2), 250.5), rtol=0, atol=1e-3)

    fig = anchors.draw_anchors_at_pixel(photo)
    try:
        (ax,) = fig.axes
        assert _shows(ax, photo)
        np.testing.assert_allclose(_rects(ax), boxes.numpy(), atol=1e-4)
        assert _labels(ax) == ["s=0.75, r=1", "s=0.5, r=1", "s=0.25, r=1", "s=0.75, r=2", "s=0.75, r=0.5"]
    finally:
        close(fig)


def test_pixel_anchors_follow_the_image_size():
    wide, tall = anchors.anchor_boxes_at_pixel(300, 900), anchors.anchor_boxes_at_pixel(900, 300)
    assert not torch.allclose(wide, tall)
    expected = multibox_prior(torch.zeros((1, 1, 300, 900)), [0.75, 0.5, 0.25], [1, 2, 0.5]).reshape(300, 900, 5, 4)
    torch.testing.assert_close(wide, expected[250, 250] * torch.tensor([900.0, 300, 900, 300]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="outside"):
        anchors.anchor_boxes_at_pixel(200, 300)


def test_labelled_example_is_the_books(photo):
    example = anchors.labelled_example()
    assert example["class_labels"].tolist() == [0, 1, 2, 0, 2]
    assert example["bbox_mask"].tolist() == [0] * 4 + [1] * 8 + [0] * 4 + [1] * 4
    book_offsets = [0, 0, 0, 0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57, 0, 0, 0, 0,
                    -0.571, -1.00, 4.17e-06, 0.626]
    np.testing.assert_allclose(example["bbox_offset"].numpy(), book_offsets, atol=6e-3)
    # The same as calling the library directly.
    _, _, classes = multibox_target(torch.tensor(anchors.LABEL_ANCHORS).unsqueeze(0),
                                    torch.tensor(anchors.GROUND_TRUTH).unsqueeze(0))
    assert classes[0].tolist() == example["class_labels"].tolist()

    fig = anchors.draw_anchor_labels(photo)
    try:
        (ax,) = fig.axes
        assert _shows(ax, photo)
        rects = _rects(ax)
        assert len(rects) == 7
        gt = (torch.tensor(anchors.GROUND_TRUTH)[:, 1:] * SCALE).numpy()
        np.testing.assert_allclose(rects[:2], gt, atol=1e-4)
        np.testing.assert_allclose(rects[2:], (torch.tensor(anchors.LABEL_ANCHORS) * SCALE).numpy(), atol=1e-4)
        edges = [p.get_edgecolor()[:3] for p in ax.patches if isinstance(p, Rectangle)]
        assert edges[:2] == [(0.0, 0.0, 0.0)] * 2 and (0.0, 0.0, 0.0) not in edges[2:]  # ground truth in black
        assert _labels(ax) == ["dog", "cat", "0", "1", "2", "3", "4"]
        caption = " ".join(t.get_text() for t in fig.texts)
        assert "0: background, 1: dog, 2: cat, 3: background, 4: cat" in caption
    finally:
        close(fig)


def test_nms_example_is_the_books(photo):
    example = anchors.nms_example()
    output = example["output"]
    assert output[:, 0].tolist() == [0, 1, -1, -1]
    np.testing.assert_allclose(output[:, 1].numpy(), [0.9, 0.9, 0.8, 0.7], atol=1e-6)
    np.testing.assert_allclose(example["kept"][:, 2:].numpy(),
                               [[0.1, 0.08, 0.52, 0.92], [0.55, 0.2, 0.9, 0.88]], atol=1e-6)
    direct = multibox_detection(torch.tensor(anchors.NMS_CLS_PROBS, dtype=torch.float32).unsqueeze(0),
                                torch.zeros(1, 16), torch.tensor(anchors.NMS_ANCHORS).unsqueeze(0), nms_threshold=0.5)
    torch.testing.assert_close(output, direct[0])

    fig = anchors.draw_nms(photo)
    try:
        left, right = fig.axes
        assert _shows(left, photo) and _shows(right, photo)
        assert _labels(left) == ["dog=0.9", "dog=0.8", "dog=0.7", "cat=0.9"]
        np.testing.assert_allclose(_rects(left), (torch.tensor(anchors.NMS_ANCHORS) * SCALE).numpy(), atol=1e-4)
        assert _labels(right) == ["dog=0.9", "cat=0.9"]
        np.testing.assert_allclose(_rects(right), (example["kept"][:, 2:] * SCALE).numpy(), atol=1e-4)
    finally:
        close(fig)


def test_multiscale_panels_are_display_anchors(photo):
    panels = anchors.multiscale_boxes(H, W)
    assert [len(boxes) for _, boxes in panels] == [4 * 4 * 3, 2 * 2 * 3, 1 * 1 * 3]
    for (fmap_w, fmap_h, sizes), (title, boxes) in zip([(4, 4, [0.15]), (2, 2, [0.4]), (1, 1, [0.8])], panels):
        expected = multibox_prior(torch.zeros((1, 10, fmap_h, fmap_w)), sizes=sizes, ratios=[1, 2, 0.5])[0] * SCALE
        torch.testing.assert_close(boxes, expected, rtol=0, atol=0)
        assert f"{fmap_h}x{fmap_w}" in title and str(sizes[0]) in title
    # The 1x1 map's r=1 anchor: 0.8 of the photo's width and height (square on the square map), centred.
    np.testing.assert_allclose(panels[2][1][0].numpy(), [0.1 * W, 0.1 * H, 0.9 * W, 0.9 * H], atol=1e-3)

    fig = anchors.draw_multiscale(photo)
    try:
        assert len(fig.axes) == 3
        for ax, (_, boxes) in zip(fig.axes, panels):
            assert _shows(ax, photo)
            np.testing.assert_allclose(_rects(ax), boxes.numpy(), atol=1e-4)
    finally:
        close(fig)


def test_missing_photo_says_fetch_photos(project):
    with pytest.raises(DataError, match="cvflow fetch photos") as info:
        anchors.figures(load_params(project / "params.yaml"), project)
    assert "catdog.jpg" in str(info.value) and "\n" not in str(info.value)
    assert not (project / "data" / "reports").exists()
    # A file that is not an image: the same advice.
    (project / "data" / "photos").mkdir(parents=True)
    (project / "data" / "photos" / "catdog.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cvflow fetch photos"):
        anchors.figures(load_params(project / "params.yaml"), project)
    assert not (project / "data" / "reports").exists()


def test_cli_anchors(project, demo_project):
    runner = CliRunner()
    params = str(project / "params.yaml")
    missing = runner.invoke(build_app(), ["figures", "anchors", "--params", params])
    assert missing.exit_code != 0 and isinstance(missing.exception, DataError)

    shutil.copytree(demo_project / "data" / "photos", project / "data" / "photos")
    result = runner.invoke(build_app(), ["figures", "anchors", "--params", params, "--set", "photos.demo.seed=1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    out = project / "data" / "reports" / "anchors"
    assert lines == [str(out / name) for name in anchors.FILES]
    assert all(Path(line).is_file() for line in lines)

    bad = runner.invoke(build_app(), ["figures", "anchors", "--params", params, "--set", "photos.demo.nope=1"])
    assert bad.exit_code != 0
    assert "anchors" in runner.invoke(build_app(), ["figures", "--help"]).stdout


def test_real_catdog(tmp_path):
    """With the book's own catdog.jpg (when ../shared/data holds it): the same boxes, real pixels."""
    catdog = shared("d2l-img", "catdog.jpg")
    root = _make_project(tmp_path / "project")
    (root / "data" / "photos").mkdir(parents=True)
    shutil.copy(catdog, root / "data" / "photos" / "catdog.jpg")
    img = anchors.load_catdog(root)
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    written = anchors.figures(load_params(root / "params.yaml"), root)
    assert all(path.stat().st_size > 10_000 for path in written.values())
    assert (anchors.anchor_boxes_at_pixel(*img.shape[:2])[0] / SCALE).round(decimals=2).tolist() == pytest.approx(
        [0.06, 0.07, 0.63, 0.82])
