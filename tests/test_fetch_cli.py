"""`cvflow fetch` / `cvflow prepare` for every data set: every source this machine can reach.

Demo twins through the real CLI (small sizes via --set), the real slices in ../shared/data
through --source local, the d2l hub through a local HTTP server, and the Kaggle API through a
fake client; the fetched folders are read back with the data set readers.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest


from cvflow.data.readers.bananas import BananasDataset
from cvflow.data.readers.cifar import cifar10_dataset
from cvflow.data.readers.kaggle import read_csv_labels
from cvflow.data.readers.voc import VOCSegDataset
from cvflow.data.sources import hub
from cvflow.pipelines import load_params
from conftest import run_cvflow, shared
from httpd import FileServer

SMALL = [
    "bananas.demo.demo.train=6", "bananas.demo.demo.test=3",
    "voc.demo.demo.train=3", "voc.demo.demo.test=2",
    "cifar10.demo.demo.train=50", "cifar10.demo.demo.test=10",
    "kaggle_cifar10.demo.demo.train=60", "kaggle_cifar10.demo.demo.test=20",
    "kaggle_dogs.demo.demo.train=40", "kaggle_dogs.demo.demo.test=10", "kaggle_dogs.demo.demo.breeds=4",
]


def _cli(project: Path, *args: str) -> str:
    sets = [item for pair in (("--set", s) for s in SMALL) for item in pair]
    result = run_cvflow(*args, *sets, cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


@pytest.mark.slow
def test_every_demo_twin_fetches_and_reads_back(project):
    for name in ("photos", "bananas", "voc", "cifar10", "kaggle-cifar10", "kaggle-dogs"):
        _cli(project, "fetch", name)
    data = project / "data"
    assert sorted(p.name for p in (data / "photos").iterdir()) == ["autumn-oak.jpg", "cat1.jpg", "catdog.jpg",
                                                                     "rainier.jpg"]
    bananas = BananasDataset(data / "banana-detection", "val")
    assert len(bananas) == 3 and bananas[0][1]["boxes"].shape == (1, 4)
    assert len(VOCSegDataset(data / "voc", "train", crop_size=None)) == 3
    assert len(cifar10_dataset(data / "cifar10", train=True)) == 50
    assert len(read_csv_labels(data / "kaggle-cifar10" / "trainLabels.csv")) == 60
    assert len(list((data / "kaggle-dogs" / "test").iterdir())) == 10


def test_prepare_follows_the_books_rule_with_links(project):
    _cli(project, "fetch", "kaggle-dogs")
    _cli(project, "prepare", "kaggle-dogs")
    labels = read_csv_labels(project / "data" / "kaggle-dogs" / "labels.csv")
    n_min = min(Counter(labels.values()).values())
    expected = max(int(n_min * 0.1), 1)
    prepared = project / "data" / "kaggle-dogs-prepared"
    for breed in set(labels.values()):
        assert len(list((prepared / "valid" / breed).iterdir())) == expected
        assert len(list((prepared / "train_valid" / breed).iterdir())) == Counter(labels.values())[breed]
    one = next((prepared / "valid").rglob("*.jpg"))
    assert one.stat().st_ino == (project / "data" / "kaggle-dogs" / "train" / one.name).stat().st_ino
    assert len(list((prepared / "test" / "unknown").iterdir())) == 10


def test_real_kaggle_cifar10_slice_through_local_source(project):
    real = shared("kaggle-cifar10-real")
    _cli(project, "fetch", "kaggle-cifar10", "--source", "local", "--path", str(real))
    _cli(project, "prepare", "kaggle-cifar10")
    prepared = project / "data" / "kaggle-cifar10-prepared"
    counts = Counter(read_csv_labels(real / "trainLabels.csv").values())
    expected = max(int(min(counts.values()) * 0.1), 1)
    assert {len(list(d.iterdir())) for d in (prepared / "valid").iterdir()} == {expected}
    assert len(list((prepared / "test" / "unknown").iterdir())) == len(list((real / "test").iterdir()))


def test_real_voc_and_photos_through_local_source(project):
    _cli(project, "fetch", "voc", "--source", "local", "--path", str(shared("voc-mini")))
    assert len(VOCSegDataset(project / "data" / "voc", "val", crop_size=(320, 480))) >= 1
    _cli(project, "fetch", "photos", "--source", "local", "--path", str(shared("d2l-img")))
    catdog = (project / "data" / "photos" / "catdog.jpg").read_bytes()
    assert hashlib.sha1(catdog).hexdigest() == "60b7d540db03eef6b9834329bccc4417ef349bf6"


def _competition_zip(labels_name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"tiny/{labels_name}", "id,label\n1,cat\n2,dog\n3,cat\n")
        for i in (1, 2, 3):
            archive.writestr(f"tiny/train/{i}.png", b"png")
        archive.writestr("tiny/test/1.png", b"png")
    return buffer.getvalue()


def test_d2l_tiny_sample_through_a_local_hub(project, monkeypatch):
    from cvflow.pipelines import kaggle_cifar10

    body = _competition_zip("trainLabels.csv")
    monkeypatch.setitem(hub.DATA_HUB, "kaggle_cifar10_tiny",
                        hub.HubFile("kaggle_cifar10_tiny.zip", hashlib.sha1(body).hexdigest()))
    with FileServer() as server:
        server.add("/kaggle_cifar10_tiny.zip", body)
        monkeypatch.setenv("CVFLOW_HUB_URL", server.base_url)
        counts = kaggle_cifar10.fetch(load_params(project / "params.yaml"), project, source="d2l")
    assert counts == {"train": 3, "test": 1, "labels": 3}


def test_kaggle_source_through_the_api_client(project, monkeypatch):
    from cvflow.data.sources import kaggle

    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)

    class FakeApi:
        def competition_download_files(self, competition, path=None, force=False, quiet=True):
            assert competition == "dog-breed-identification"
            (Path(path) / f"{competition}.zip").write_bytes(_competition_zip("labels.csv"))

    counts = kaggle.fetch_competition(project / "data" / "kaggle-dogs", "kaggle",
                                      competition="dog-breed-identification", hub_key="dog_tiny",
                                      labels_csv="labels.csv", generate=None,
                                      downloads=project / "data" / "downloads", client_factory=lambda c: FakeApi())
    assert counts == {"train": 3, "test": 1, "labels": 3}


def test_offline_real_sources_give_one_line(project):
    result = run_cvflow("fetch", "bananas", "--source", "d2l", cwd=project,
                        env={"CVFLOW_HUB_URL": "http://127.0.0.1:9/"})
    assert result.returncode == 2 and "Ways out" in result.stderr and "Traceback" not in result.stderr
    result = run_cvflow("fetch", "kaggle-cifar10", "--source", "kaggle", cwd=project,
                        env={"KAGGLE_CONFIG_DIR": str(project / "nowhere"), "HOME": str(project)})
    assert result.returncode == 2 and "kaggle.json" in result.stderr and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1


def test_bad_source_for_a_data_set_is_a_params_error(project):
    result = run_cvflow("fetch", "cifar10", "--source", "kaggle", cwd=project)
    assert result.returncode == 2
    assert "cifar10.demo.data.source = 'kaggle'" in result.stderr and "'torchvision'" in result.stderr
