"""The book's photos: SHA-1-verified copies and downloads, and deterministic demo stand-ins."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvflow.data.sources import photos
from cvflow.data.sources.photos import CATDOG_BOXES, PHOTOS, PHOTOS_URL_ENV, Photo, fetch_photos, photos_base_url
from cvflow.errors import DataError, DownloadError
from conftest import shared
from httpd import FileServer

REAL_SHA1 = {
    "catdog.jpg": "60b7d540db03eef6b9834329bccc4417ef349bf6",
    "rainier.jpg": "b0193ffd8ecea1631ac1092130017b884faafa30",
    "autumn-oak.jpg": "bbe11f01403b9726bbc625589550e574fc45980a",
    "cat1.jpg": "f9c5b905d908b97eeeb64ff34a46fa8b143f88f8",
}
REAL_SIZES = {"catdog.jpg": (728, 561), "rainier.jpg": (2048, 1365), "autumn-oak.jpg": (1717, 1200),
              "cat1.jpg": (500, 400)}


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch):
    monkeypatch.delenv(PHOTOS_URL_ENV, raising=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("photos-demo")
    fetch_photos(dest, "demo")
    return dest


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_table_is_the_books():
    assert {n: p.sha1 for n, p in PHOTOS.items()} == REAL_SHA1
    assert {n: p.size for n, p in PHOTOS.items()} == REAL_SIZES
    assert CATDOG_BOXES == {"dog": (60.0, 45.0, 378.0, 516.0), "cat": (400.0, 112.0, 655.0, 493.0)}
    assert photos.DEFAULT_PHOTOS_URL == "https://raw.githubusercontent.com/d2l-ai/d2l-en/master/img/"


def test_real_photos_pass_through_local(tmp_path):
    folder = shared("d2l-img")
    out = fetch_photos(tmp_path / "photos", "local", path=folder)
    assert sorted(out) == sorted(REAL_SHA1)
    for name, path in out.items():
        assert path == tmp_path / "photos" / name and _sha1(path) == REAL_SHA1[name]
        assert Image.open(path).size == REAL_SIZES[name]
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == sorted(REAL_SHA1)  # no stray files


def test_local_mismatch_names_file_expected_and_actual(tmp_path, demo):
    folder = tmp_path / "mine" / "img"  # a d2l-en checkout layout
    folder.mkdir(parents=True)
    for name in PHOTOS:
        shutil.copy(demo / name, folder / name)
    with pytest.raises(DataError) as info:
        fetch_photos(tmp_path / "out", "local", path=tmp_path / "mine", names=["cat1.jpg"])
    message = str(info.value)
    assert "cat1.jpg" in message and REAL_SHA1["cat1.jpg"] in message and _sha1(demo / "cat1.jpg") in message
    assert not (tmp_path / "out" / "cat1.jpg").exists()
    (folder / "rainier.jpg").unlink()
    with pytest.raises(DataError, match="missing rainier.jpg"):
        fetch_photos(tmp_path / "out", "local", path=tmp_path / "mine")
    with pytest.raises(DataError, match="--path"):
        fetch_photos(tmp_path / "out", "local")


def test_d2l_downloads_real_photos_from_a_server(tmp_path):
    folder = shared("d2l-img")
    with FileServer() as server:
        for name in PHOTOS:
            server.add(f"/img/{name}", (folder / name).read_bytes())
        out = fetch_photos(tmp_path / "p", "d2l", base_url=server.url("/img/"), backoff=0)
        assert {n: _sha1(p) for n, p in out.items()} == REAL_SHA1
        before = len(server.requests)
        fetch_photos(tmp_path / "p", "d2l", base_url=server.url("/img/"), backoff=0)
        assert len(server.requests) == before  # verified files are not fetched again


def test_d2l_checks_sha1_and_honours_the_mirror_variable(tmp_path, demo, monkeypatch):
    # works without ../shared: serve the demo files and let the table expect them
    for name in PHOTOS:
        monkeypatch.setitem(PHOTOS, name, Photo(_sha1(demo / name), PHOTOS[name].size))
    with FileServer() as server:
        for name in PHOTOS:
            server.add(f"/mirror/{name}", (demo / name).read_bytes(), corrupt=(name == "cat1.jpg"))
        monkeypatch.setenv(PHOTOS_URL_ENV, server.url("/mirror"))
        assert photos_base_url("http://elsewhere.invalid/") == server.url("/mirror/")
        out = fetch_photos(tmp_path / "p", "d2l", names=["catdog.jpg", "rainier.jpg"], backoff=0)
        assert (tmp_path / "p" / "catdog.jpg").read_bytes() == (demo / "catdog.jpg").read_bytes()
        assert sorted(out) == ["catdog.jpg", "rainier.jpg"]
        with pytest.raises(DownloadError, match="checksum mismatch"):
            fetch_photos(tmp_path / "p", "d2l", names=["cat1.jpg"], backoff=0, retries=0)
        assert not (tmp_path / "p" / "cat1.jpg").exists()
        server.add("/mirror/autumn-oak.jpg", b"gone", status=404)
        with pytest.raises(DownloadError, match=f"HTTP 404.*{PHOTOS_URL_ENV}"):
            fetch_photos(tmp_path / "q", "d2l", names=["autumn-oak.jpg"], retries=0, backoff=0)


def test_demo_stand_ins_have_real_names_sizes_and_are_deterministic(tmp_path, demo):
    assert sorted(p.name for p in demo.iterdir()) == sorted(PHOTOS)
    for name, size in REAL_SIZES.items():
        with Image.open(demo / name) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", size)
        assert _sha1(demo / name) != REAL_SHA1[name]
    fetch_photos(tmp_path / "again", "demo", names=["cat1.jpg", "catdog.jpg"])
    for name in ("cat1.jpg", "catdog.jpg"):
        assert (tmp_path / "again" / name).read_bytes() == (demo / name).read_bytes()
    with pytest.raises(DataError, match="unknown photo"):
        fetch_photos(tmp_path / "x", "demo", names=["pikachu.jpg"])
    with pytest.raises(DataError, match="unknown source"):
        fetch_photos(tmp_path / "x", "flickr")


def test_demo_catdog_figures_fill_the_books_boxes(demo):
    image = np.array(Image.open(demo / "catdog.jpg")).astype(int)
    figure = np.abs(image - image[5, 5]).sum(-1) > 80  # clearly not the white studio background
    split = 389  # between the dog's right edge (378) and the cat's left edge (400)
    for name, part, offset in (("dog", figure[:, :split], 0), ("cat", figure[:, split:], split)):
        ys, xs = np.nonzero(part)
        found = (xs.min() + offset, ys.min(), xs.max() + 1 + offset, ys.max() + 1)
        assert np.allclose(found, CATDOG_BOXES[name], atol=3), (name, found)
    dog = image[45:516, 60:378][figure[45:516, 60:378]].mean(0)
    cat = image[112:493, 400:655][figure[112:493, 400:655]].mean(0)
    assert dog[0] > dog[2] + 50  # tan
    assert abs(cat[0] - cat[2]) < 40  # grey
