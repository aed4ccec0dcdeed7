"""cvflow.twins.food: the procedural food photos behind the offline fine-tuning demo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cvflow.twins.food import FOOD_CLASSES, render_batch, render_food

NOT_HOTDOG = tuple(k for k in FOOD_CLASSES if k != "hotdog")


def _hotdog_vs_not(n: int, seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images, even indices hot dogs, odd ones cycling through the other classes."""
    kinds = ["hotdog" if i % 2 == 0 else NOT_HOTDOG[(i // 2) % len(NOT_HOTDOG)] for i in range(n)]
    return render_batch(kinds, seed, size), np.array([k == "hotdog" for k in kinds])


def test_classes_render_different_food():
    """Every class draws its own food: from the same generator state (the same scene), any two classes
    give clearly different images, and the hard negatives (elongated foods) differ from the hot dog."""
    images = {kind: np.asarray(render_food(kind, np.random.default_rng(3), (64, 64)), dtype=np.float32)
              for kind in FOOD_CLASSES}
    assert len(images) == len(FOOD_CLASSES) >= 8  # the names are distinct
    kinds = list(images)
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            assert np.abs(images[a] - images[b]).mean() > 1.0, (a, b)
    for kind in ("baguette", "banana", "sub_sandwich", "carrot"):  # render_food refuses unknown kinds
        assert np.abs(images[kind] - images["hotdog"]).mean() > 1.0, kind


@pytest.mark.parametrize("kind", FOOD_CLASSES)
def test_every_class_renders(kind):
    img = render_food(kind, np.random.default_rng(0), (80, 60))
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB" and img.size == (80, 60)
    arr = np.asarray(img)
    assert arr.std() > 5.0  # not a blank frame


@pytest.mark.parametrize("size", [(96, 96), (120, 70), (50, 140), (320, 256)])
def test_render_food_size(size):
    rng = np.random.default_rng(1)
    for kind in ("hotdog", "banana", "burger"):
        img = render_food(kind, rng, size)
        assert img.size == size and img.mode == "RGB"


def test_render_batch_shape_and_dtype():
    kinds = list(FOOD_CLASSES) + ["hotdog"]
    out = render_batch(kinds, 3, (40, 30))
    assert out.dtype == np.uint8
    assert out.shape == (len(kinds), 30, 40, 3)
    assert render_batch([], 3, (40, 30)).shape == (0, 30, 40, 3)


def test_render_batch_deterministic():
    kinds = ["hotdog", "pizza", "banana", "hotdog", "sushi"]
    a = render_batch(kinds, 7, (48, 40))
    b = render_batch(kinds, 7, (48, 40))
    c = render_batch(kinds, 8, (48, 40))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for i in range(len(kinds)):  # every image changes with the seed, not just one
        assert not np.array_equal(a[i], c[i])
    # images within a batch differ even for the same class
    assert not np.array_equal(a[0], a[3])
    # image i does not depend on the other entries of the batch
    np.testing.assert_array_equal(render_batch(["pizza", "pizza"], 7, (48, 40))[1], a[1])


def test_render_food_deterministic_given_rng_state():
    a = render_food("hotdog", np.random.default_rng(5), (64, 64))
    b = render_food("hotdog", np.random.default_rng(5), (64, 64))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rng = np.random.default_rng(5)
    render_food("hotdog", rng, (64, 64))
    c = render_food("hotdog", rng, (64, 64))  # the generator advanced: a new scene
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_unknown_kind():
    with pytest.raises(ValueError, match="allowed kinds: hotdog, pizza"):
        render_food("hamburger", np.random.default_rng(0), (32, 32))
    with pytest.raises(ValueError, match="hotdog"):
        render_batch(["hotdog", "tofu"], 0, (32, 32))


def test_bad_size():
    with pytest.raises(ValueError, match="size"):
        render_food("hotdog", np.random.default_rng(0), (0, 32))
    with pytest.raises(ValueError, match="size"):
        render_batch(["hotdog"], 0, (32,))


def test_scenes_vary():
    """Backgrounds and lighting vary: hot dog images spread widely in mean colour and
    in contrast, and no two look alike."""
    imgs = render_batch(["hotdog"] * 40, 11, (48, 48)).astype(np.float32)
    means = imgs.mean(axis=(1, 2))
    assert means.std(axis=0).min() > 15.0
    contrast = imgs.std(axis=(1, 2, 3))
    assert contrast.max() > 2.0 * contrast.min()
    flat = imgs.reshape(len(imgs), -1)
    dist = np.abs(flat[:, None] - flat[None]).mean(axis=2)
    assert dist[~np.eye(len(imgs), dtype=bool)].min() > 10.0


def test_mean_colour_does_not_separate_hotdogs():
    """The scene, not the food, dominates the mean colour: a nearest-class-mean classifier on
    mean RGB stays far from solving hot dog vs not hot dog."""
    imgs, y = _hotdog_vs_not(240, 0, (48, 48))
    x = imgs.reshape(len(imgs), -1, 3).mean(axis=1)
    train = np.arange(len(y)) < 120
    mu = np.stack([x[train & (y == c)].mean(axis=0) for c in (False, True)])
    pred = np.linalg.norm(x[:, None] - mu[None], axis=2).argmin(axis=1).astype(bool)
    acc = (pred[~train] == y[~train]).mean()
    assert acc < 0.7, acc


def test_hotdogs_distinguishable_from_colour_histograms_but_not_trivially():
    """Hot dogs carry signal (sausage, bun, mustard colours): a linear model on colour
    histograms beats chance on held-out images, but stays far from perfect."""
    imgs, y = _hotdog_vs_not(800, 1, (48, 48))
    b = 8
    q = (imgs.reshape(len(imgs), -1, 3) // (256 // b)).astype(np.int64)
    idx = (q[..., 0] * b + q[..., 1]) * b + q[..., 2]
    hist = np.stack([np.bincount(i, minlength=b**3) for i in idx]).astype(np.float64)
    x = np.hstack([np.sqrt(hist / hist.sum(axis=1, keepdims=True)), np.ones((len(y), 1))])
    train = np.arange(len(y)) < 600
    t = np.where(y, 1.0, -1.0)
    w = np.linalg.solve(x[train].T @ x[train] + np.eye(x.shape[1]), x[train].T @ t[train])
    acc = ((x[~train] @ w > 0) == y[~train]).mean()
    assert 0.58 < acc < 0.85, acc
