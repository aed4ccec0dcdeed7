"""The real profile end to end (issue 17): `profile: real` with the smoke overlay, `dvc repro` over every stage.

The paths a GPU user runs (the book's recipes, ImageNet weights, real file layouts) with no network:

* every data set comes from a local copy (`data.source: local`): the real slices in ../shared/data
  where they exist (hot dogs, the book's photos, VOC2012, Kaggle CIFAR-10), the project's own demo
  twins (written by its generators into a temporary folder) for the rest (bananas, torchvision's
  CIFAR-10, Kaggle dog breeds);
* ImageNet weights (ResNet-18, ResNet-34, VGG-19) are stood in by randomly initialised torchvision
  models saved under the file names torchvision downloads them as, in `$TORCH_HOME/hub/checkpoints/`:
  torchvision checks a file's hash only when it downloads it, so a cached file is used as is, the
  same way for a real file and for a stand-in (no code path is switched off for the test).

Every stage of dvc.yaml must run, and both Kaggle submissions must pass the project's own checks
with one row per local test image.
"""

from __future__ import annotations

import csv
import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import git_copy, shared

pytestmark = pytest.mark.slow

# Kaggle CIFAR-10: the first images of the real slice (the real profile trains the book's full-width
# ResNet-18 twice, at a few images a second on a laptop CPU; all 4,660 would take many minutes).
KAGGLE_CIFAR10_TRAIN = 100
KAGGLE_CIFAR10_TEST = 20


def _twins(module: str):
    """The project's twin generator ``cvflow.twins.<module>``."""
    return importlib.import_module(f"cvflow.twins.{module}")


def _imagenet_weights() -> list:
    """Every torchvision weights entry the real profile loads (13.2 and 13.11: ResNet-18; 13.14:
    ResNet-34; 13.12: VGG-19), with the torchvision builder of its architecture."""
    from torchvision.models import ResNet18_Weights, ResNet34_Weights, VGG19_Weights, resnet18, resnet34, vgg19

    return [(ResNet18_Weights.IMAGENET1K_V1, resnet18), (ResNet34_Weights.IMAGENET1K_V1, resnet34),
            (VGG19_Weights.IMAGENET1K_V1, vgg19)]


def _stand_in_weights(torch_home: Path) -> list[Path]:
    """Randomly initialised models' state dicts where torchvision keeps its downloads."""
    import torch

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    files = []
    for weights, build in _imagenet_weights():
        torch.manual_seed(0)
        path = folder / os.path.basename(weights.url)  # e.g. resnet18-f37072fd.pth (hash prefix in the name)
        torch.save(build(weights=None).state_dict(), path)
        files.append(path)
    return files


def _kaggle_cifar10_slice(src: Path, dest: Path) -> tuple[int, list[int]]:
    """The first images of the real Kaggle CIFAR-10 slice, in its layout (ids kept)."""
    with open(src / "trainLabels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header, train = rows[0], rows[1 : KAGGLE_CIFAR10_TRAIN + 1]
    (dest / "train").mkdir(parents=True)
    (dest / "test").mkdir()
    for image_id, _ in train:
        shutil.copy2(src / "train" / f"{image_id}.png", dest / "train" / f"{image_id}.png")
    with open(dest / "trainLabels.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *train])
    test_ids = sorted(int(p.stem) for p in (src / "test").glob("*.png"))[:KAGGLE_CIFAR10_TEST]
    for image_id in test_ids:
        shutil.copy2(src / "test" / f"{image_id}.png", dest / "test" / f"{image_id}.png")
    shutil.copy2(src / "testLabels.csv", dest / "testLabels.csv")
    return len(train), test_ids


def _local_data(data: Path) -> dict[str, Path]:
    """Every data set of the real profile as a local folder under ``data``: copies of the real slices,
    generated twins for the others. Returns {task: path}."""
    paths = {}
    for task, name in (("hotdog", "hotdog"), ("photos", "d2l-img"), ("voc", "voc-mini")):
        paths[task] = data / name
        # a writable copy, not the slice itself: the pipeline hard-links the files it is given
        shutil.copytree(shared(name), paths[task], copy_function=shutil.copyfile)
        for folder in (paths[task], *(p for p in paths[task].rglob("*") if p.is_dir())):
            folder.chmod(0o755)
    paths["kaggle_cifar10"] = data / "kaggle-cifar10"
    _kaggle_cifar10_slice(shared("kaggle-cifar10-real"), paths["kaggle_cifar10"])

    paths["bananas"] = _twins("bananas").generate_bananas(data / "banana-detection", n_train=16, n_val=8, seed=7)
    _twins("cifar").generate_cifar10_torchvision(data / "cifar10", n_train=100, n_test=20, seed=11)
    paths["cifar10"] = data / "cifar10"  # the folder holding cifar-10-batches-py
    dogs = _twins("dogs")
    paths["kaggle_dogs"] = dogs.generate_kaggle_dogs(data / "dog-breed-identification", dogs.DOG_BREEDS[:10],
                                                     n_train=60, n_test=10, seed=14)
    return paths


def _real_profile(root: Path, paths: dict[str, Path]) -> dict:
    """params.yaml of the copy: profile real, the smoke overlay on, every data set local."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "real"
    params["common"]["smoke"] = True
    for task, path in paths.items():
        params[task]["real"]["data"].update(source="local", path=str(path))
    # The smoke overlay's `views: 1` would replace the real profile's `views: 0`, the book's path that a GPU
    # user runs (the frozen ResNet-34 on freshly augmented images in every batch): lay the real one over itself
    # (the key stays: dvc.yaml tracks each smoke key a stage reads)
    params["smoke"]["kaggle_dogs"]["views"] = params["kaggle_dogs"]["real"]["views"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def _submission_ids(path: Path) -> list[str]:
    with open(path, newline="") as handle:
        return [row[0] for row in list(csv.reader(handle))[1:]]


@pytest.fixture
def torch_home(tmp_path):
    """$TORCH_HOME with the stand-in ImageNet weights (700 MB, VGG-19's mostly): removed after the test,
    since pytest keeps the temporary folders of its last runs."""
    home = tmp_path / "torch"
    yield home, _stand_in_weights(home)
    shutil.rmtree(home, ignore_errors=True)


def test_real_profile_runs_every_stage_on_local_data(tmp_path, torch_home):
    root = tmp_path / "cvflow"
    env = git_copy(root)
    paths = _local_data(tmp_path / "local")
    home, weights = torch_home
    env["TORCH_HOME"] = str(home)
    params = _real_profile(root, paths)

    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env, capture_output=True,
                         text=True, timeout=1500)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    print(f"real profile (smoke) over every stage: {seconds:.0f} s")

    # every stage ran, none skipped or cached: dvc.lock records each, with the real profile's params
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    ran = {line.split("'")[1] for line in run.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == set(stages), sorted(set(stages) - ran)
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(stages), sorted(set(stages) - set(lock))
    assert lock["fetch-hotdog"]["params"]["params.yaml"]["profile"] == "real"
    assert lock["fetch-hotdog"]["params"]["params.yaml"]["hotdog.real.data"]["source"] == "local"

    # what the stages read: the real profile, shrunk by the smoke overlay, with the book's on-the-fly backbone
    from cvflow.pipelines import load_params

    active = load_params(root / "params.yaml")
    assert active.profile == "real" and active.common.smoke
    assert active.task("kaggle_dogs").views == 0 and active.task("kaggle_dogs").backbone.layer == "output"

    # the stand-ins were the weights used: the ImageNet paths ran (no source model, no random VGG)
    assert all(path.is_file() for path in weights)
    assert params["hotdog"]["real"]["weights"] == "imagenet" and params["voc"]["real"]["weights"] == "imagenet"
    assert params["kaggle_dogs"]["real"]["backbone"]["weights"] == "imagenet"
    assert params["style"]["real"]["net"]["weights"] == "imagenet"

    # the local data was what ran: the real slices' sizes
    hotdog = root / "data" / "hotdog"
    assert sum(1 for _ in hotdog.rglob("*.jpg")) == sum(1 for _ in paths["hotdog"].rglob("*.jpg"))

    from cvflow.data.submissions import check_dog_submission, score_submission, write_cifar10_submission

    # Kaggle CIFAR-10: one row per local test image, ids in numeric order, every label a class; the
    # project's own writer checks (classes, every test id once) pass on the file as it stands
    cifar_csv = root / "data" / "submissions" / "kaggle-cifar10.csv"
    test_ids = sorted(int(p.stem) for p in (paths["kaggle_cifar10"] / "test").glob("*.png"))
    with open(cifar_csv, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "label"]
    assert len(rows) - 1 == len(test_ids) == KAGGLE_CIFAR10_TEST
    assert [int(r[0]) for r in rows[1:]] == test_ids
    classes = sorted({r[1] for r in csv.reader(open(paths["kaggle_cifar10"] / "trainLabels.csv"))} - {"label"})
    write_cifar10_submission([r[0] for r in rows[1:]], [r[1] for r in rows[1:]], tmp_path / "check.csv",
                             classes=classes, expected_ids=test_ids)
    assert (tmp_path / "check.csv").read_bytes() == cifar_csv.read_bytes()
    score = score_submission(cifar_csv, paths["kaggle_cifar10"] / "testLabels.csv", classes=classes)
    assert score["scored"] == KAGGLE_CIFAR10_TEST and 0 <= score["accuracy"] <= 1

    # Kaggle dog breeds: the sample submission's columns and ids, probabilities summing to 1
    dogs_csv = root / "data" / "submissions" / "kaggle-dogs.csv"
    dog_test_ids = sorted(p.stem for p in (paths["kaggle_dogs"] / "test").glob("*.jpg"))
    checked = check_dog_submission(dogs_csv, sample_submission=paths["kaggle_dogs"] / "sample_submission.csv",
                                   expected_ids=dog_test_ids)
    assert checked == {"rows": len(dog_test_ids), "breeds": 10}
    assert sorted(_submission_ids(dogs_csv)) == dog_test_ids
