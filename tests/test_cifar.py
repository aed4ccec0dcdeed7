"""Demo twins of CIFAR-10 (torchvision and Kaggle layouts) and of the Kaggle dog-breed set."""

from __future__ import annotations

import csv
import hashlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image

from cvflow.data.readers.cifar import CIFAR10_CLASSES, CIFAR10Twin, cifar10_dataset
from cvflow.twins import cifar, dogs
from cvflow.twins.cifar import generate_cifar10_torchvision, generate_kaggle_cifar10, render_cifar
from cvflow.twins.dogs import DOG_BREEDS, generate_kaggle_dogs, render_dog
from cvflow.twins.output import DEMO_MARKER
from cvflow.errors import DataError
from conftest import shared

BATCH_FILES = ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "readme.html", "test_batch"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


# ------------------------------------------------------------------ torchvision CIFAR-10


@pytest.fixture(scope="module")
def tv_twin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar-tv")
    generate_cifar10_torchvision(root, n_train=53, n_test=17, seed=3)
    return root


def test_torchvision_twin_has_the_exact_file_layout(tv_twin):
    folder = tv_twin / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == BATCH_FILES
    assert [p.name for p in tv_twin.iterdir()] == ["cifar-10-batches-py"]  # nothing else beside it


def test_torchvision_twin_batches_are_plain_protocol2_pickles(tv_twin):
    folder = tv_twin / "cifar-10-batches-py"
    sizes = []
    for k in range(1, 6):
        raw = (folder / f"data_batch_{k}").read_bytes()
        assert raw[:2] == b"\x80\x02"  # protocol 2, like the originals
        entry = pickle.loads(raw, encoding="latin1")  # how torchvision reads them
        assert set(entry) == {"batch_label", "labels", "data", "filenames"}
        data, labels = entry["data"], entry["labels"]
        assert isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
        assert isinstance(labels, list) and all(type(v) is int and 0 <= v < 10 for v in labels)
        assert len(labels) == data.shape[0] == len(entry["filenames"])
        assert entry["batch_label"] == f"training batch {k} of 5"
        sizes.append(len(labels))
    assert sum(sizes) == 53 and max(sizes) - min(sizes) <= 1
    test = pickle.loads((folder / "test_batch").read_bytes(), encoding="latin1")
    assert test["data"].shape == (17, 3072) and test["batch_label"] == "testing batch 1 of 1"
    meta = pickle.loads((folder / "batches.meta").read_bytes(), encoding="latin1")
    assert meta["label_names"] == list(CIFAR10_CLASSES)
    assert meta["num_vis"] == 3072


def test_torchvision_twin_loads_with_our_reader_only(tv_twin):
    # torchvision's own class checks the official md5 sums and refuses the twin ...
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(tv_twin, train=True, download=False)
    # ... our reader is torchvision's class with the twin's recorded md5 sums
    train = cifar10_dataset(tv_twin, train=True)
    test = cifar10_dataset(tv_twin, train=False)
    assert isinstance(train, CIFAR10Twin) and isinstance(train, torchvision.datasets.CIFAR10)
    assert len(train) == 53 and len(test) == 17
    assert train.classes == list(CIFAR10_CLASSES)
    assert train.data.shape == (53, 32, 32, 3) and train.data.dtype == np.uint8
    folder = tv_twin / "cifar-10-batches-py"
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")
    image, target = train[0]
    assert isinstance(image, Image.Image) and image.size == (32, 32)
    assert target == first["labels"][0]
    # the CHW row of the pickle is the HWC image torchvision returns
    assert np.array_equal(np.asarray(image), first["data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    labels = sum((pickle.loads((folder / f"data_batch_{k}").read_bytes(), encoding="latin1")["labels"]
                  for k in range(1, 6)), [])
    assert train.targets == labels
    assert sorted(np.bincount(labels, minlength=10).tolist())[0] >= 5  # balanced over the classes


def test_pixel_rows_use_the_cifar_plane_layout():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 1, 2, 3  # R, G, B
    image[0, 1, 0] = 9  # red value of row 0, column 1
    image[1, 0, 2] = 7  # blue value of row 1, column 0
    row = cifar._cifar_row(image)
    assert row.shape == (3072,)
    assert (row[:1024] != 2).all() and (row[1024:2048] == 2).all() and (row[2048:] != 2).all()
    assert row[1] == 9 and row[2048 + 32] == 7


def test_a_damaged_twin_is_refused(tmp_path):
    generate_cifar10_torchvision(tmp_path, n_train=10, n_test=5, seed=0)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    raw = bytearray(batch.read_bytes())
    raw[-10] ^= 0xFF
    batch.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="damaged"):
        cifar10_dataset(tmp_path, train=True)


def test_a_missing_real_cifar10_is_a_data_error_not_a_download(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        cifar10_dataset(tmp_path, train=True, download=False)
    assert list(tmp_path.iterdir()) == []  # nothing fetched
    assert torchvision.datasets.CIFAR10.url.startswith("https://www.cs.toronto.edu/")  # the real source is untouched


def test_twins_are_deterministic_given_the_seed(tmp_path):
    generate_cifar10_torchvision(tmp_path / "a", 20, 5, seed=7)
    generate_cifar10_torchvision(tmp_path / "b", 20, 5, seed=7)
    generate_cifar10_torchvision(tmp_path / "c", 20, 5, seed=8)
    folder = "cifar-10-batches-py"
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        assert _md5(tmp_path / "a" / folder / name) == _md5(tmp_path / "b" / folder / name)
    assert _md5(tmp_path / "a" / folder / "data_batch_1") != _md5(tmp_path / "c" / folder / "data_batch_1")


# ------------------------------------------------------------------------ Kaggle CIFAR-10


def test_kaggle_cifar10_twin_layout(tmp_path):
    root = generate_kaggle_cifar10(tmp_path / "cifar-10", n_train=30, n_test=12, seed=1)
    assert sorted(p.name for p in root.iterdir()) == [DEMO_MARKER, "sampleSubmission.csv", "test", "train",
                                                     "trainLabels.csv"]
    assert sorted(int(p.stem) for p in (root / "train").iterdir()) == list(range(1, 31))
    assert sorted(int(p.stem) for p in (root / "test").iterdir()) == list(range(1, 13))
    assert {p.suffix for p in (root / "train").iterdir()} == {".png"}
    with Image.open(root / "train" / "7.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))
    labels = _rows(root / "trainLabels.csv")
    assert labels[0] == ["id", "label"]
    assert [int(r[0]) for r in labels[1:]] == list(range(1, 31))
    assert {r[1] for r in labels[1:]} == set(CIFAR10_CLASSES)
    sample = _rows(root / "sampleSubmission.csv")
    assert sample[0] == ["id", "label"] and [int(r[0]) for r in sample[1:]] == list(range(1, 13))
    assert {r[1] for r in sample[1:]} == {"cat"}
    assert (root / "trainLabels.csv").read_bytes().startswith(b"id,label\n1,")  # no BOM, LF line ends


def test_kaggle_cifar10_twin_matches_the_real_files_format(tmp_path):
    real = shared("kaggle-cifar10-real")
    root = generate_kaggle_cifar10(tmp_path / "twin", n_train=10, n_test=3, seed=0)
    assert _rows(real / "trainLabels.csv")[0] == _rows(root / "trainLabels.csv")[0]
    with Image.open(real / "train" / "1.png") as a, Image.open(root / "train" / "1.png") as b:
        assert (a.format, a.mode, a.size) == (b.format, b.mode, b.size)
    real_labels = {r[1] for r in _rows(real / "trainLabels.csv")[1:]}
    assert real_labels == set(CIFAR10_CLASSES)


# ----------------------------------------------------------------------------- dog breeds


def test_dog_breeds_are_the_competitions_120_columns():
    assert len(DOG_BREEDS) == 120 and len(set(DOG_BREEDS)) == 120
    assert list(DOG_BREEDS) == sorted(DOG_BREEDS)  # the sample submission's (alphabetical) order
    assert DOG_BREEDS[:3] == ("affenpinscher", "afghan_hound", "african_hunting_dog")
    assert DOG_BREEDS[-1] == "yorkshire_terrier"
    for name in ("black-and-tan_coonhound", "shih-tzu", "german_short-haired_pointer", "norfolk_terrier",
                 "norwich_terrier", "wire-haired_fox_terrier", "mexican_hairless", "dhole"):
        assert name in DOG_BREEDS
    assert all(re.fullmatch(r"[a-z_-]+", b) for b in DOG_BREEDS)


def test_kaggle_dogs_twin_layout(tmp_path):
    breeds = ["pug", "beagle", "whippet", "dingo"]
    root = generate_kaggle_dogs(tmp_path / "dogs", breeds, n_train=16, n_test=6, seed=2, min_side=40, max_side=64)
    assert sorted(p.name for p in root.iterdir() if p.name != DEMO_MARKER) == [
        "labels.csv", "sample_submission.csv", "test", "train"]
    train_ids = sorted(p.stem for p in (root / "train").iterdir())
    test_ids = sorted(p.stem for p in (root / "test").iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in train_ids + test_ids)
    assert {p.suffix for p in (root / "train").iterdir()} == {".jpg"}
    for path in list((root / "train").iterdir())[:4]:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 40 <= min(image.size) and max(image.size) <= 64
    labels = _rows(root / "labels.csv")
    assert labels[0] == ["id", "breed"]
    assert [r[0] for r in labels[1:]] == train_ids  # sorted by id, like Kaggle's
    assert sorted({r[1] for r in labels[1:]}) == sorted(breeds)
    sample = _rows(root / "sample_submission.csv")
    assert sample[0] == ["id", *sorted(breeds)]  # id, then the breeds alphabetically
    assert [r[0] for r in sample[1:]] == test_ids
    assert all(float(v) == pytest.approx(0.25) for row in sample[1:] for v in row[1:])


def test_breed_looks_do_not_depend_on_the_seed():
    assert dogs._breed("pug") == dogs._breed("pug")
    assert dogs._breed("pug") != dogs._breed("beagle")
    a = np.asarray(render_dog("pug", np.random.default_rng(1), (48, 40)))
    b = np.asarray(render_dog("pug", np.random.default_rng(1), (48, 40)))
    assert a.shape == (40, 48, 3) and np.array_equal(a, b)


# ----------------------------------------------------------------------- image content


def _features(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((8, 8), Image.BILINEAR)
    return np.asarray(small, dtype=np.float32).ravel() / 255.0


def _centroid_accuracy(render, classes, per_class_train, per_class_test, seed) -> float:
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = [], [], [], []
    for k, name in enumerate(classes):
        for i in range(per_class_train + per_class_test):
            feats = _features(render(name, rng))
            (x_train if i < per_class_train else x_test).append(feats)
            (y_train if i < per_class_train else y_test).append(k)
    x_train, x_test = np.stack(x_train), np.stack(x_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    centroids = np.stack([x_train[y_train == k].mean(0) for k in range(len(classes))])
    pred = ((x_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((pred == y_test).mean())


def test_cifar_images_are_learnable_but_not_trivial():
    accuracy = _centroid_accuracy(render_cifar, CIFAR10_CLASSES, 40, 20, seed=0)
    # a nearest-centroid on 8x8 pixels is far above chance (0.1) yet far from perfect
    assert 0.2 < accuracy < 0.8, accuracy
    image = render_cifar("cat", np.random.default_rng(0))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and image.std() > 10


def test_dog_images_depend_on_the_breed():
    breeds = ["pug", "samoyed", "doberman", "dingo", "komondor"]
    accuracy = _centroid_accuracy(lambda b, rng: np.asarray(render_dog(b, rng, (48, 48))), breeds, 12, 8, seed=1)
    assert accuracy > 0.35, accuracy  # chance is 0.2


def test_bad_arguments_are_data_errors(tmp_path):
    with pytest.raises(DataError):
        generate_kaggle_cifar10(tmp_path / "x", n_train=-1, n_test=1)
    with pytest.raises(DataError):
        generate_kaggle_dogs(tmp_path / "y", [], 1, 1)
    with pytest.raises(ValueError):
        render_cifar("unicorn", np.random.default_rng(0))


def test_generators_never_replace_real_data(tmp_path):
    real = tmp_path / "cifar-10"
    (real / "train").mkdir(parents=True)
    (real / "train" / "1.png").write_bytes(b"a real image")
    with pytest.raises(DataError, match="not a cvflow demo twin"):
        generate_kaggle_cifar10(real, 4, 2)
    assert (real / "train" / "1.png").read_bytes() == b"a real image"
    batches = tmp_path / "tv" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(b"real")
    with pytest.raises(DataError, match="not a cvflow demo twin"):
        generate_cifar10_torchvision(tmp_path / "tv", 4, 2)
    assert (batches / "data_batch_1").read_bytes() == b"real"
    # an earlier twin is replaced (a rerun with other sizes)
    twin = generate_kaggle_cifar10(tmp_path / "twin", 4, 2, seed=0)
    generate_kaggle_cifar10(twin, 6, 2, seed=0)
    assert len(list((twin / "train").iterdir())) == 6
