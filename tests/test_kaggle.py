"""Kaggle: credentials and download (fake client), the book's reorganisation, submission files."""

from __future__ import annotations

import collections
import csv
import errno
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from cvflow.data import submissions
from cvflow.data.readers.kaggle import read_csv_labels, read_manifest
from cvflow.data.sources import kaggle, kaggle_reorg
from cvflow.data.sources.kaggle import KaggleCredentials, kaggle_credentials, kaggle_download, kaggle_submit
from cvflow.data.sources.kaggle_reorg import REORG_MARKER, reorg_kaggle
from cvflow.data.submissions import score_submission, write_cifar10_submission, write_dog_submission
from cvflow.twins.cifar import generate_kaggle_cifar10
from cvflow.errors import DataError
from conftest import shared

SECRET_USER = "alice_kagglename"
SECRET_KEY = "0123456789abcdef0123456789abcdef"


# ============================================================================ reorganisation


def _book_expectation(labels_csv: Path, valid_ratio: float) -> tuple[int, collections.Counter]:
    """n_valid per class and the class counts, computed the book's way (csv + Counter)."""
    with open(labels_csv, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    counts = collections.Counter(label for _, label in rows)
    n = counts.most_common()[-1][1]
    return max(1, math.floor(n * valid_ratio)), counts


def _tree(folder: Path) -> dict[str, set[tuple[str, str]]]:
    """split -> {(label, file name)} of a linked reorganisation."""
    return {split.name: {(label.name, f.name) for label in split.iterdir() for f in label.iterdir()}
            for split in folder.iterdir() if split.is_dir()}


def _can_link(src: Path, folder: Path) -> bool:
    probe = folder / ".link-probe"
    try:
        os.link(src, probe)
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture(scope="module")
def real() -> Path:
    return shared("kaggle-cifar10-real")


@pytest.fixture(scope="module")
def real_linked(real, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reorg") / "train_valid_test"
    counts = reorg_kaggle(real / "train", real / "trainLabels.csv", out, valid_ratio=0.1, seed=0,
                          test_dir=real / "test")
    return out, counts


def test_reorg_of_the_real_slice_gives_the_books_counts(real, real_linked):
    out, counts = real_linked
    n_valid, class_counts = _book_expectation(real / "trainLabels.csv", 0.1)
    assert n_valid == 43  # the smallest class (dog) has 435 images in this slice
    assert counts["n_valid_per_label"] == n_valid
    tree = _tree(out)
    assert set(tree) == {"train", "valid", "train_valid", "test"}
    for label, total in class_counts.items():
        assert len([1 for lab, _ in tree["valid"] if lab == label]) == n_valid
        assert len([1 for lab, _ in tree["train"] if lab == label]) == total - n_valid
        assert len([1 for lab, _ in tree["train_valid"] if lab == label]) == total
        assert counts["train"][label] == total - n_valid and counts["valid"][label] == n_valid
    assert tree["train"] | tree["valid"] == tree["train_valid"] and not tree["train"] & tree["valid"]
    with open(real / "trainLabels.csv", newline="") as handle:
        truth = {(label, f"{i}.png") for i, label in list(csv.reader(handle))[1:]}
    assert tree["train_valid"] == truth  # every image under its own label
    test_files = {p.name for p in (real / "test").iterdir()}
    assert tree["test"] == {("unknown", name) for name in test_files} and len(test_files) == 846
    assert counts["test"] == {"unknown": 846}


def test_reorg_links_instead_of_copying(real, real_linked):
    out, counts = real_linked
    some = sorted((out / "valid" / "cat").iterdir())[:3] + sorted((out / "test" / "unknown").iterdir())[:3]
    for path in some:
        source = real / ("test" if "unknown" in path.parts else "train") / path.name
        assert path.read_bytes() == source.read_bytes()
        if _can_link(source, out.parent):
            assert os.stat(path).st_ino == os.stat(source).st_ino
    if _can_link(real / "train" / "1.png", out.parent):
        assert counts["copied"] == 0 and counts["linked"] == 2 * 4660 + 846


def test_reorg_copies_where_links_are_impossible(tmp_path, monkeypatch):
    data = generate_kaggle_cifar10(tmp_path / "data", n_train=20, n_test=4, seed=0)
    calls = []

    def no_link(src, dst, *args, **kwargs):
        calls.append(src)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(kaggle_reorg.os, "link", no_link)
    counts = reorg_kaggle(data / "train", data / "trainLabels.csv", tmp_path / "out", 0.2, 0, test_dir=data / "test")
    assert counts["linked"] == 0 and counts["copied"] == 2 * 20 + 4
    assert len(calls) == 1  # after EXDEV, no more doomed link attempts
    copy = next((tmp_path / "out" / "test" / "unknown").iterdir())
    assert copy.read_bytes() == (data / "test" / copy.name).read_bytes()
    assert os.stat(copy).st_ino != os.stat(data / "test" / copy.name).st_ino


def test_reorg_is_repeatable_with_the_seed(real, real_linked, tmp_path):
    out, _ = real_linked
    again = tmp_path / "again"
    reorg_kaggle(real / "train", real / "trainLabels.csv", again, valid_ratio=0.1, seed=0)
    other = tmp_path / "other"
    reorg_kaggle(real / "train", read_csv_labels(real / "trainLabels.csv"), other, valid_ratio=0.1, seed=1)
    assert _tree(again)["valid"] == _tree(out)["valid"]
    assert _tree(other)["valid"] != _tree(out)["valid"]
    assert len(_tree(other)["valid"]) == len(_tree(out)["valid"])
    assert "test" not in _tree(again)  # no test_dir, no test split


def test_manifest_mode_is_equivalent_and_writes_no_image_files(real, real_linked, tmp_path):
    out, link_counts = real_linked
    manifest_dir = tmp_path / "manifest"
    counts = reorg_kaggle(real / "train", real / "trainLabels.csv", manifest_dir, valid_ratio=0.1, seed=0,
                          test_dir=real / "test", mode="manifest")
    assert sorted(p.name for p in manifest_dir.iterdir()) == sorted(
        [REORG_MARKER, "test.csv", "train.csv", "train_valid.csv", "valid.csv"])
    tree = _tree(out)
    for split in ("train", "valid", "train_valid", "test"):
        assert (manifest_dir / f"{split}.csv").read_text().startswith("path,label\n")
        rows = read_manifest(manifest_dir / f"{split}.csv")
        assert {(label, path.name) for path, label in rows} == tree[split]
        assert all(path.is_file() for path, _ in rows[:20])
        assert counts[split] == link_counts[split]
    assert counts["linked"] == counts["copied"] == 0


def test_rerun_is_a_no_op_and_new_inputs_rebuild(tmp_path, monkeypatch):
    data = generate_kaggle_cifar10(tmp_path / "data", n_train=40, n_test=5, seed=0)
    out = tmp_path / "out"
    first = reorg_kaggle(data / "train", data / "trainLabels.csv", out, 0.1, 0, test_dir=data / "test")
    marker = json.loads((out / REORG_MARKER).read_text())
    calls = []
    real_link = os.link
    monkeypatch.setattr(kaggle_reorg.os, "link", lambda *a, **k: calls.append(a) or real_link(*a, **k))
    assert reorg_kaggle(data / "train", data / "trainLabels.csv", out, 0.1, 0, test_dir=data / "test") == first
    assert calls == [] and json.loads((out / REORG_MARKER).read_text()) == marker
    reorg_kaggle(data / "train", data / "trainLabels.csv", out, 0.1, 5, test_dir=data / "test")  # another seed
    assert len(calls) == 2 * 40 + 5
    assert json.loads((out / REORG_MARKER).read_text())["seed"] == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no build folders left


def test_reorg_of_the_books_tiny_set(tmp_path):
    tiny = shared("kaggle-cifar10-tiny-d2l")
    counts = reorg_kaggle(tiny / "train_tiny", tiny / "trainLabels.csv", tmp_path / "out", valid_ratio=0.1, seed=0,
                          test_dir=tiny / "test_tiny")
    assert counts["n_valid_per_label"] == 1  # the book: max(1, floor(10 * 0.1))
    assert sum(counts["valid"].values()) == 10 and sum(counts["train"].values()) == 90
    assert counts["test"] == {"unknown": 1}


def test_reorg_follows_the_smallest_class(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    labels = {}
    for i in range(1, 61):  # 40 "a", 20 "b": n_valid = floor(20 * 0.25) = 5 for both classes
        (train / f"{i}.png").write_bytes(b"x")
        labels[str(i)] = "a" if i <= 40 else "b"
    counts = reorg_kaggle(train, labels, tmp_path / "out", valid_ratio=0.25, seed=0)
    assert counts["valid"] == {"a": 5, "b": 5} and counts["train"] == {"a": 35, "b": 15}


def test_reorg_refuses_bad_inputs(tmp_path):
    data = generate_kaggle_cifar10(tmp_path / "data", n_train=10, n_test=2, seed=0)
    (data / "train" / "999.png").write_bytes(b"unlabelled")
    with pytest.raises(DataError, match="no label"):
        reorg_kaggle(data / "train", data / "trainLabels.csv", tmp_path / "out", 0.1, 0)
    (data / "train" / "999.png").unlink()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not made by reorg_kaggle"):
        reorg_kaggle(data / "train", data / "trainLabels.csv", foreign, 0.1, 0)
    assert (foreign / "precious.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="overlap"):
        reorg_kaggle(data / "train", data / "trainLabels.csv", data, 0.1, 0)
    for ratio in (0, 1, 1.5):
        with pytest.raises(DataError, match="valid_ratio"):
            reorg_kaggle(data / "train", data / "trainLabels.csv", tmp_path / "o", ratio, 0)
    with pytest.raises(DataError, match="mode"):
        reorg_kaggle(data / "train", data / "trainLabels.csv", tmp_path / "o", 0.1, 0, mode="copy")


# ============================================================================ credentials


@pytest.fixture
def no_credentials(tmp_path, monkeypatch) -> Path:
    """A HOME with no Kaggle credentials anywhere, and no KAGGLE_* variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in list(os.environ):
        if name.startswith("KAGGLE_"):
            monkeypatch.delenv(name)
    return home


def _write_kaggle_json(folder: Path, user: str = SECRET_USER, key: str = SECRET_KEY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kaggle.json"
    path.write_text(json.dumps({"username": user, "key": key}))
    path.chmod(0o600)
    return path


def _assert_clean(message: str) -> None:
    assert "\n" not in message
    assert SECRET_KEY not in message and SECRET_USER not in message


def test_missing_credentials_say_where_to_put_kaggle_json(no_credentials):
    def factory(credentials):  # must never be reached
        raise AssertionError("client created without credentials")

    with pytest.raises(DataError) as err:
        kaggle_download("cifar-10", no_credentials / "data", client_factory=factory)
    message = str(err.value)
    _assert_clean(message)
    assert "kaggle.json" in message and "KAGGLE_USERNAME" in message and "KAGGLE_KEY" in message
    assert str(no_credentials) in message  # the exact place to put it
    assert not (no_credentials / "data").exists()


def test_credentials_are_found_where_kaggle_looks(no_credentials, tmp_path, monkeypatch):
    path = _write_kaggle_json(no_credentials / ".kaggle")
    found = kaggle_credentials()
    assert found.source == str(path) and found.username == SECRET_USER and found.secret == SECRET_KEY
    _assert_clean(repr(found))
    # KAGGLE_CONFIG_DIR wins over ~/.kaggle
    other = _write_kaggle_json(tmp_path / "cfg", user="bob_other", key="f" * 32)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(other.parent))
    assert kaggle_credentials().source == str(other)
    # environment variables win over the file
    monkeypatch.setenv("KAGGLE_USERNAME", "carol_env")
    monkeypatch.setenv("KAGGLE_KEY", "e" * 32)
    env = kaggle_credentials()
    assert env.username == "carol_env" and "environment" in env.source


def test_xdg_config_folder_is_used_when_dot_kaggle_is_absent(no_credentials):
    path = _write_kaggle_json(no_credentials / ".config" / "kaggle")
    assert kaggle_credentials().source == str(path)


def test_broken_or_half_credentials_are_one_line_errors(no_credentials, monkeypatch):
    folder = no_credentials / ".kaggle"
    folder.mkdir()
    (folder / "kaggle.json").write_text('{"username": "' + SECRET_USER + '", "key": ')  # truncated
    with pytest.raises(DataError, match="not valid JSON") as err:
        kaggle_credentials()
    _assert_clean(str(err.value))
    (folder / "kaggle.json").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", SECRET_USER)
    with pytest.raises(DataError, match="KAGGLE_KEY is not") as err:
        kaggle_credentials()
    _assert_clean(str(err.value))


# ============================================================================== download


class FakeKaggle:
    """Stands in for kaggle's KaggleApi: writes prepared files, or raises a prepared error."""

    def __init__(self, payload: dict[str, bytes] | None = None, error: BaseException | None = None):
        self.payload, self.error, self.calls = payload or {}, error, []

    def _write(self, path: str, names: list[str]) -> None:
        if self.error is not None:
            raise self.error
        for name in names:
            (Path(path) / name).write_bytes(self.payload[name])

    def competition_download_files(self, competition, path=None, force=False, quiet=True):
        self.calls.append(("all", competition, path))
        self._write(path, [n for n in self.payload if n.endswith(".zip")])

    def competition_download_file(self, competition, file_name, path=None, force=False, quiet=True):
        self.calls.append(("one", competition, file_name))
        self._write(path, [n for n in self.payload if n.split(".zip")[0] == file_name])


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = f"https://www.kaggle.com/api/v1/competitions/data/download-all/cifar-10?user={SECRET_USER}"
    return requests.HTTPError(f"{status} Client Error for url: {response.url} key={SECRET_KEY}", response=response)


@pytest.fixture
def creds(no_credentials) -> Path:
    return _write_kaggle_json(no_credentials / ".kaggle")


@pytest.mark.parametrize("status, expected", [
    (401, "https://www.kaggle.com/settings"),
    (403, "https://www.kaggle.com/c/cifar-10/rules"),
    (404, "no competition"),
])
def test_http_errors_are_one_line_data_errors_without_secrets(creds, tmp_path, status, expected):
    fake = FakeKaggle(error=_http_error(status))
    seen = []
    with pytest.raises(DataError) as err:
        kaggle_download("cifar-10", tmp_path / "data",
                        client_factory=lambda c: seen.append(c) or fake)
    message = str(err.value)
    _assert_clean(message)
    assert f"HTTP {status}" in message and expected in message
    assert seen[0].source == str(creds)  # the client got the discovered credentials
    assert not (tmp_path / "data").exists()


def test_old_kaggle_api_exceptions_are_mapped_too(creds, tmp_path):
    class ApiException(Exception):  # kaggle < 1.7: kaggle.rest.ApiException with .status
        def __init__(self, status):
            super().__init__(f"({status}) Reason: Forbidden HTTP response body: key {SECRET_KEY}")
            self.status = status

    with pytest.raises(DataError, match="rules") as err:
        kaggle_download("dog-breed-identification", tmp_path / "d",
                        client_factory=lambda c: FakeKaggle(error=ApiException(403)))
    _assert_clean(str(err.value))
    assert "https://www.kaggle.com/c/dog-breed-identification/rules" in str(err.value)


def test_network_failures_are_one_line(creds, tmp_path):
    error = requests.ConnectionError("HTTPSConnectionPool(host='www.kaggle.com'): Max retries exceeded "
                                     "(Caused by NameResolutionError: [Errno -3] Temporary failure in name resolution)")
    with pytest.raises(DataError, match="cannot reach Kaggle") as err:
        kaggle_download("cifar-10", tmp_path / "d", client_factory=lambda c: FakeKaggle(error=error))
    _assert_clean(str(err.value))


def _cifar_competition_zip(tmp_path: Path) -> bytes:
    """Kaggle's cifar-10 download: a zip of train.7z, test.7z and two CSV files."""
    import py7zr

    twin = generate_kaggle_cifar10(tmp_path / "twin", n_train=12, n_test=5, seed=0)
    for split in ("train", "test"):
        with py7zr.SevenZipFile(tmp_path / f"{split}.7z", "w") as archive:
            archive.writeall(twin / split, split)
    zip_path = tmp_path / "cifar-10.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name in ("train.7z", "test.7z"):
            archive.write(tmp_path / name, name)
        for name in ("trainLabels.csv", "sampleSubmission.csv"):
            archive.write(twin / name, name)
    return zip_path.read_bytes()


def test_download_unpacks_the_competition_and_its_7z_archives(creds, tmp_path):
    fake = FakeKaggle({"cifar-10.zip": _cifar_competition_zip(tmp_path / "src")})
    dest = kaggle_download("cifar-10", tmp_path / "data" / "cifar-10", client_factory=lambda c: fake)
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "sampleSubmission.csv", "test", "train", "trainLabels.csv"]
    assert sorted(int(p.stem) for p in (dest / "train").iterdir()) == list(range(1, 13))
    assert len(list((dest / "test").iterdir())) == 5
    assert fake.calls == [("all", "cifar-10", str(tmp_path / "data" / ".cifar-10.kaggle-download"))]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["cifar-10"]  # staging and temp folders gone
    # a second call finds the finished download: no client call at all
    again = kaggle_download("cifar-10", dest, client_factory=lambda c: pytest.fail("client created again"))
    assert again == dest
    # and the result feeds the book's reorganisation directly
    counts = reorg_kaggle(dest / "train", dest / "trainLabels.csv", tmp_path / "tvt", 0.1, 0, test_dir=dest / "test")
    assert counts["test"] == {"unknown": 5} and sum(counts["train_valid"].values()) == 12


def test_download_of_single_files(creds, tmp_path):
    buffer = tmp_path / "labels.zip"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("labels.csv", "id,breed\nabc,pug\n")
    fake = FakeKaggle({"sample_submission.csv": b"id,pug\nabc,1.0\n", "labels.csv.zip": buffer.read_bytes()})
    dest = kaggle_download("dog-breed-identification", tmp_path / "dogs",
                           files=["sample_submission.csv", "labels.csv"], client_factory=lambda c: fake)
    assert (dest / "labels.csv").read_text() == "id,breed\nabc,pug\n"
    assert (dest / "sample_submission.csv").read_bytes() == b"id,pug\nabc,1.0\n"
    assert [c[2] for c in fake.calls] == ["labels.csv", "sample_submission.csv"]


def test_download_refuses_a_foreign_folder_and_bad_names(creds, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not made by a Kaggle download"):
        kaggle_download("cifar-10", tmp_path / "mine", client_factory=lambda c: FakeKaggle())
    with pytest.raises(DataError, match="invalid Kaggle competition name"):
        kaggle_download("../etc", tmp_path / "x", client_factory=lambda c: FakeKaggle())


# ============================================================================== submit


class FakeSubmitter:
    """Stands in for KaggleApi.competition_submit: records the call, answers or raises."""

    def __init__(self, error: BaseException | None = None, answer: str = "Successfully submitted to CIFAR-10"):
        self.error, self.answer, self.calls = error, answer, []

    def competition_submit(self, file_name, message, competition, quiet=False):
        self.calls.append((file_name, message, competition, Path(file_name).read_bytes()))
        if self.error is not None:
            raise self.error
        return type("Response", (), {"message": self.answer})()


def test_submit_sends_the_file_with_its_message(creds, tmp_path):
    file = tmp_path / "kaggle-cifar10.csv"
    file.write_bytes(b"id,label\n1,cat\n")
    fake, seen = FakeSubmitter(), []
    result = kaggle_submit("cifar-10", file, "commit abc\nrun 123",
                           client_factory=lambda c: seen.append(c) or fake)
    assert fake.calls == [(str(file), "commit abc run 123", "cifar-10", b"id,label\n1,cat\n")]
    assert seen[0].source == str(creds)
    assert result == {"competition": "cifar-10", "file": str(file), "message": "commit abc run 123",
                      "response": "Successfully submitted to CIFAR-10"}


def test_submit_refuses_missing_or_empty_files_before_any_client(creds, tmp_path):
    never = lambda c: pytest.fail("client created for a file that cannot be sent")  # noqa: E731
    with pytest.raises(DataError, match="no such submission file"):
        kaggle_submit("cifar-10", tmp_path / "missing.csv", "m", client_factory=never)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        kaggle_submit("cifar-10", tmp_path / "empty.csv", "m", client_factory=never)
    with pytest.raises(DataError, match="invalid Kaggle competition name"):
        kaggle_submit("../x", tmp_path / "empty.csv", "m", client_factory=never)


def test_submit_without_credentials_is_one_line(no_credentials, tmp_path):
    file = tmp_path / "s.csv"
    file.write_text("id,label\n1,cat\n")
    with pytest.raises(DataError) as err:
        kaggle_submit("cifar-10", file, "m", client_factory=lambda c: pytest.fail("client without credentials"))
    assert "kaggle.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("status, expected", [
    (403, "Kaggle refused to let you submit to the 'cifar-10' competition (HTTP 403 Forbidden): accept its rules "
          "at https://www.kaggle.com/c/cifar-10/rules"),
    (401, "https://www.kaggle.com/settings"),
])
def test_submit_http_errors_are_the_download_lines(creds, tmp_path, status, expected):
    file = tmp_path / "s.csv"
    file.write_text("id,label\n1,cat\n")
    with pytest.raises(DataError) as err:
        kaggle_submit("cifar-10", file, "m", client_factory=lambda c: FakeSubmitter(error=_http_error(status)))
    _assert_clean(str(err.value))
    assert expected in str(err.value)


def test_submit_reports_a_failed_upload(creds, tmp_path):
    file = tmp_path / "s.csv"
    file.write_text("id,label\n1,cat\n")
    with pytest.raises(DataError, match="did not take the submission"):
        kaggle_submit("cifar-10", file, "m", client_factory=lambda c: FakeSubmitter(answer="Could not submit to competition"))


# ============================================================================ submissions


def test_cifar10_submission_is_sorted_by_numeric_id(tmp_path):
    ids = sorted(range(1, 13), key=str)  # the order ImageFolder reads test/unknown: 1, 10, 11, 12, 2, ...
    labels = [f"c{i}" for i in ids]
    path = write_cifar10_submission([str(i) for i in ids], labels, tmp_path / "submission.csv")
    assert path.read_bytes() == ("id,label\n" + "".join(f"{i},c{i}\n" for i in range(1, 13))).encode()
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # atomic: no temp file left


def test_cifar10_submission_rejects_bad_input(tmp_path):
    with pytest.raises(DataError, match="ids but"):
        write_cifar10_submission([1, 2], ["cat"], tmp_path / "s.csv")
    with pytest.raises(DataError, match="duplicate"):
        write_cifar10_submission([1, 1], ["cat", "dog"], tmp_path / "s.csv")
    with pytest.raises(DataError, match="not a number"):
        write_cifar10_submission(["1.png"], ["cat"], tmp_path / "s.csv")
    with pytest.raises(DataError, match="class names"):
        write_cifar10_submission([1], [3], tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_cifar10_submission_checked_against_classes_test_ids_and_sample(tmp_path):
    sample = tmp_path / "sampleSubmission.csv"
    sample.write_text("id,label\n" + "".join(f"{i},cat\n" for i in range(1, 4)))
    path = write_cifar10_submission(["3", "1", "2"], ["dog", "cat", "ship"], tmp_path / "s.csv", classes=CLASSES,
                                    expected_ids=[1, 2, 3], sample_submission=sample)
    assert path.read_bytes() == b"id,label\n1,cat\n2,ship\n3,dog\n"


@pytest.mark.parametrize("ids, labels, kwargs, expected", [
    ([1, 2], ["cat", "kitten"], {"classes": CLASSES}, "1 label(s) are not classes"),
    ([1, 2], ["cat", "dog"], {"expected_ids": range(1, 13)},
     "10 test id(s) have no prediction, e.g. [3, 4, 5, ...]"),
    ([1, 2, 99], ["cat", "dog", "cat"], {"expected_ids": [1, 2]}, "1 predicted id(s) are not test images, e.g. [99]"),
    ([1, 2], ["cat", "dog"], {"sample": "id,label\n1,cat\n2,cat\n3,cat\n"}, "2 rows but sampleSubmission.csv has 3"),
    ([1, 2], ["cat", "dog"], {"sample": "id,class\n1,cat\n2,cat\n"}, "header 'id,class', expected 'id,label'"),
    ([1, 2], ["cat", "dog"], {"sample": "id,label\n1,cat\n7,cat\n"}, "1 of its ids have no prediction, e.g. [7]"),
    ([1, 2], ["cat", "dog"], {"sample": None}, "no such sample submission"),
    ([1, 2, 1], ["cat", "dog", "cat"], {}, "1 duplicate id(s), e.g. [1]"),
])
def test_cifar10_submission_refusals_are_one_line_and_write_nothing(tmp_path, ids, labels, kwargs, expected):
    target = tmp_path / "out" / "kaggle-cifar10.csv"
    target.parent.mkdir()
    if "sample" in kwargs:
        sample = tmp_path / "sampleSubmission.csv"
        text = kwargs.pop("sample")
        if text is not None:
            sample.write_text(text)
        kwargs["sample_submission"] = sample
    with pytest.raises(DataError) as err:
        write_cifar10_submission(ids, labels, target, **kwargs)
    message = str(err.value)
    assert expected in message and str(target) in message and "\n" not in message
    assert list(target.parent.iterdir()) == []  # nothing written, no temp file left


def test_a_refused_submission_keeps_the_previous_file(tmp_path):
    target = tmp_path / "s.csv"
    write_cifar10_submission([1], ["cat"], target)
    with pytest.raises(DataError):
        write_cifar10_submission([1], ["kitten"], target, classes=CLASSES)
    assert target.read_bytes() == b"id,label\n1,cat\n"


def test_score_submission_scores_only_the_submitted_ids(tmp_path):
    labels = tmp_path / "testLabels.csv"
    labels.write_text("id,label\n1,cat\n2,dog\n3,cat\n4,ship\n5,dog\n")
    sub = write_cifar10_submission([1, 2, 3, 5], ["cat", "cat", "dog", "dog"], tmp_path / "s.csv")
    assert score_submission(sub, labels, CLASSES) == {
        "accuracy": 0.5, "scored": 4, "per_class": {"cat": 0.5, "dog": 0.5}}
    assert list(score_submission(sub, labels)["per_class"]) == ["cat", "dog"]


def test_score_submission_refusals(tmp_path):
    labels = tmp_path / "testLabels.csv"
    labels.write_text("id,label\n1,cat\n2,dog\n")
    sub = write_cifar10_submission([1, 2, 3, 4], ["cat"] * 4, tmp_path / "s.csv")
    with pytest.raises(DataError, match=r"2 submission id\(s\) have no label in .*testLabels.csv, e.g. \['3', '4'\]"):
        score_submission(sub, labels)
    with pytest.raises(DataError, match="not classes"):
        score_submission(write_cifar10_submission([1], ["kitten"], tmp_path / "k.csv"), labels, CLASSES)
    (tmp_path / "bad.csv").write_text("image,label\n1,cat\n")
    with pytest.raises(DataError, match="expected the header 'id,label'"):
        score_submission(tmp_path / "bad.csv", labels)
    with pytest.raises(DataError, match="no such labels file"):
        score_submission(sub, tmp_path / "absent.csv")


def test_score_of_all_cats_on_the_real_slice_is_the_share_of_cats(tmp_path):
    import pandas as pd

    real = shared("kaggle-cifar10-real")
    test_ids = submissions.image_ids((real / "test").iterdir())
    sub = write_cifar10_submission(test_ids, ["cat"] * len(test_ids), tmp_path / "all-cats.csv",
                                   classes=CLASSES, expected_ids=test_ids)
    truth = pd.read_csv(real / "testLabels.csv")
    truth = truth[truth["id"].isin([int(i) for i in test_ids])]
    score = score_submission(sub, real / "testLabels.csv", CLASSES)
    assert score["scored"] == len(test_ids) == len(truth)
    assert score["accuracy"] == pytest.approx((truth["label"] == "cat").mean())
    assert score["per_class"]["cat"] == 1.0 and score["per_class"]["dog"] == 0.0


def test_dog_submission_follows_the_sample_columns_and_rows(tmp_path):
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("id,pug,beagle,akita\nbbb,0.3333,0.3333,0.3333\naaa,0.3333,0.3333,0.3333\n")
    classes = ["akita", "beagle", "pug"]  # the model's (ImageFolder, alphabetical) order
    probs = np.array([[0.5, 0.25, 0.25],   # aaa
                      [0.125, 0.75, 0.125]])  # bbb
    path = write_dog_submission(["aaa", "bbb"], probs, classes, sample, tmp_path / "submission.csv")
    assert path.read_text() == ("id,pug,beagle,akita\n"
                                "bbb,0.125,0.75,0.125\n"
                                "aaa,0.25,0.25,0.5\n")
    # a header-only sample: the ids' own order
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,pug,beagle,akita\n")
    write_dog_submission(["aaa", "bbb"], probs, classes, header_only, tmp_path / "s2.csv")
    assert (tmp_path / "s2.csv").read_text().splitlines()[1] == "aaa,0.25,0.25,0.5"


def test_dog_submission_rejects_mismatches(tmp_path):
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("id,pug,beagle\nx,0.5,0.5\n")
    with pytest.raises(DataError, match="do not match"):
        write_dog_submission(["x"], [[0.5, 0.5]], ["pug", "akita"], sample, tmp_path / "s.csv")
    with pytest.raises(DataError, match="ids do not match"):
        write_dog_submission(["y"], [[0.5, 0.5]], ["pug", "beagle"], sample, tmp_path / "s.csv")
    with pytest.raises(DataError, match="shape"):
        write_dog_submission(["x"], [[0.5, 0.5, 0.0]], ["pug", "beagle"], sample, tmp_path / "s.csv")
    with pytest.raises(DataError, match="finite"):
        write_dog_submission(["x"], [[float("nan"), 0.5]], ["pug", "beagle"], sample, tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_dog_submission_from_the_twins_sample(tmp_path):
    from cvflow.twins.dogs import generate_kaggle_dogs

    root = generate_kaggle_dogs(tmp_path / "dogs", ["whippet", "pug", "beagle"], n_train=3, n_test=4, seed=0,
                                min_side=24, max_side=32)
    test_ids = submissions.image_ids(sorted((root / "test").iterdir()))
    probs = np.full((4, 3), 1 / 3)
    path = write_dog_submission(test_ids, probs, ["beagle", "pug", "whippet"], root / "sample_submission.csv",
                                tmp_path / "submission.csv")
    with open(path, newline="") as a, open(root / "sample_submission.csv", newline="") as b:
        ours, theirs = list(csv.reader(a)), list(csv.reader(b))
    assert ours[0] == theirs[0] and [r[0] for r in ours] == [r[0] for r in theirs]
    assert all(float(v) == pytest.approx(1 / 3) for row in ours[1:] for v in row[1:])


def test_credentials_repr_hides_secrets():
    found = KaggleCredentials("somewhere", username=SECRET_USER, secret=SECRET_KEY)
    _assert_clean(repr(found))
    assert found.scrub(f"user {SECRET_USER} key {SECRET_KEY}") == "user *** key ***"


def test_the_default_client_is_the_kaggle_packages_api(creds):
    """The real KaggleApi (when installed) authenticates offline from kaggle.json and has the calls we make."""
    pytest.importorskip("kaggle", reason="the optional kaggle package is not installed")
    import inspect

    api = kaggle._default_client(kaggle_credentials())
    for method in ("competition_download_files", "competition_download_file"):
        params = inspect.signature(getattr(api, method)).parameters
        assert {"competition", "path", "force", "quiet"} <= set(params)
    assert "file_name" in inspect.signature(api.competition_download_file).parameters
    submit = list(inspect.signature(api.competition_submit).parameters)
    assert submit[:3] == ["file_name", "message", "competition"] and "quiet" in submit


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("mode", ["link", "manifest"])
def test_reorg_output_is_location_independent(tmp_path, mode):
    # The same data reorganised in two checkouts (different parent folders) gives byte-identical
    # outputs, marker included: the output is a DVC output and must hash the same everywhere.
    outputs = []
    for checkout in ("one", "two/deeper"):
        data = tmp_path / checkout / "data"
        generate_kaggle_cifar10(data / "kaggle-cifar10", n_train=20, n_test=4, seed=3)
        src = data / "kaggle-cifar10"
        reorg_kaggle(src / "train", src / "trainLabels.csv", data / "prepared", valid_ratio=0.2, seed=1,
                     test_dir=src / "test", mode=mode)
        outputs.append(_tree_bytes(data / "prepared"))
    assert outputs[0] == outputs[1]
    marker = json.loads(outputs[0][REORG_MARKER])
    assert marker["train_dir"] == "kaggle-cifar10/train" and marker["test_dir"] == "kaggle-cifar10/test"
    assert str(tmp_path) not in outputs[0][REORG_MARKER].decode()


def test_reorg_rerun_after_moving_the_checkout_is_a_no_op(tmp_path):
    first = tmp_path / "a" / "data"
    generate_kaggle_cifar10(first / "kaggle-cifar10", n_train=20, n_test=4, seed=3)
    src = first / "kaggle-cifar10"
    reorg_kaggle(src / "train", src / "trainLabels.csv", first / "prepared", valid_ratio=0.2, test_dir=src / "test")
    os.rename(tmp_path / "a", tmp_path / "b")  # the checkout moved (or DVC restored it elsewhere)
    moved = tmp_path / "b" / "data"
    before = _tree_bytes(moved / "prepared")
    src = moved / "kaggle-cifar10"
    reorg_kaggle(src / "train", src / "trainLabels.csv", moved / "prepared", valid_ratio=0.2, test_dir=src / "test")
    assert _tree_bytes(moved / "prepared") == before


def test_fetch_markers_in_data_hold_no_paths_or_times(tmp_path):
    # A local archive whose top level is the data set: the extraction marker (with an mtime)
    # must not land in the fetched folder; the download and demo markers hold no paths.
    from cvflow.data.sources.archive import MARKER
    from cvflow.data.sources.kaggle import fetch_competition
    from cvflow.twins.output import DEMO_MARKER

    src = tmp_path / "twin"
    generate_kaggle_cifar10(src, n_train=10, n_test=2, seed=0)
    demo = json.loads((src / DEMO_MARKER).read_text())
    assert set(demo) == {"generator", "seed", "n_train", "n_test"}
    archive = tmp_path / "cifar.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    dest = tmp_path / "data" / "kaggle-cifar10"
    fetch_competition(dest, "local", competition="cifar-10", hub_key="kaggle_cifar10_tiny",
                      labels_csv="trainLabels.csv", generate=lambda folder: None, path=archive)
    assert not (dest / MARKER).exists()
    assert _tree_bytes(dest) == _tree_bytes(src)
