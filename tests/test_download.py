"""Downloads against a local HTTP server (tests/httpd.py): resume, retries, checksums, offline."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from httpd import FileServer, closed_port

from cvflow.data.sources import hub
from cvflow.data.sources.archive import extract
from cvflow.data.sources.download import WAYS_OUT, download, sha1sum
from cvflow.errors import DownloadError, UserError

FAST = {"backoff": 0.0, "timeout": 5.0}


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _payload(size: int = 300_000) -> bytes:
    return os.urandom(size)


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------- basics


def test_sha1sum_matches_hashlib(tmp_path):
    data = _payload(3 * 1024 + 7)
    (tmp_path / "f").write_bytes(data)
    assert sha1sum(tmp_path / "f", chunk_size=1000) == _sha1(data)


def test_download_verified(server, tmp_path):
    data = _payload()
    url = server.add("/f.bin", data)
    dest = download(url, tmp_path / "sub" / "f.bin", _sha1(data).upper(), chunk_size=4096, **FAST)
    assert dest == tmp_path / "sub" / "f.bin"
    assert dest.read_bytes() == data
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert [r.range for r in server.requests_for("/f.bin")] == [None]


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hotdog/train/a.txt", "zip-a")
        zf.writestr("hotdog/test/b.txt", "zip-b")
    return buf.getvalue()


def _tar_bytes(mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, text in {"voc/JPEGImages/a.txt": b"tar-a", "voc/ImageSets/b.txt": b"tar-b"}.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(text)
            tf.addfile(entry, io.BytesIO(text))
    return buf.getvalue()


def _7z_bytes(tmp_path: Path) -> bytes:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "build.7z"
    with py7zr.SevenZipFile(path, "w") as sz:
        sz.writestr(b"seven-a", "banana/a.txt")
        sz.writestr(b"seven-b", "banana/sub/b.txt")
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("zip", {"hotdog/train/a.txt": "zip-a", "hotdog/test/b.txt": "zip-b"}),
        ("tar", {"voc/JPEGImages/a.txt": "tar-a", "voc/ImageSets/b.txt": "tar-b"}),
        ("tar.gz", {"voc/JPEGImages/a.txt": "tar-a", "voc/ImageSets/b.txt": "tar-b"}),
        ("7z", {"banana/a.txt": "seven-a", "banana/sub/b.txt": "seven-b"}),
    ],
)
def test_download_then_extract(server, tmp_path, fmt, expected):
    data = {"zip": _zip_bytes, "tar": _tar_bytes, "tar.gz": lambda: _tar_bytes("w:gz"),
            "7z": lambda: _7z_bytes(tmp_path)}[fmt]()
    url = server.add(f"/archive.{fmt}", data, drop_after=len(data) // 2)  # and it must survive a drop
    archive = download(url, tmp_path / f"archive.{fmt}", _sha1(data), **FAST)
    out = extract(archive, tmp_path / "out")
    found = {
        p.relative_to(out).as_posix(): p.read_text()
        for p in out.rglob("*")
        if p.is_file() and p.name != ".cvflow-extracted"
    }
    assert found == expected


# --------------------------------------------------------------------------- resume / retry


def test_resume_after_dropped_connection(server, tmp_path):
    data = _payload(500_000)
    cut = 123_457
    url = server.add("/big.bin", data, drop_after=cut)
    dest = download(url, tmp_path / "big.bin", _sha1(data), chunk_size=8192, **FAST)
    assert sha1sum(dest) == _sha1(data)
    reqs = server.requests_for("/big.bin")
    assert [r.range for r in reqs] == [None, f"bytes={cut}-"]
    assert [r.status for r in reqs] == [200, 206]
    assert reqs[0].sent == cut
    assert reqs[1].sent == len(data) - cut  # only the missing bytes were sent again
    assert not (tmp_path / "big.bin.part").exists()


def test_resume_from_part_left_by_earlier_run(server, tmp_path):
    data = _payload(200_000)
    url = server.add("/f.bin", data)
    (tmp_path / "f.bin.part").write_bytes(data[:50_000])
    download(url, tmp_path / "f.bin", _sha1(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    reqs = server.requests_for("/f.bin")
    assert [(r.range, r.status, r.sent) for r in reqs] == [("bytes=50000-", 206, 150_000)]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _payload(100_000)
    url = server.add("/f.bin", data, ignore_range=True)
    (tmp_path / "f.bin.part").write_bytes(b"garbage that must not be kept")
    download(url, tmp_path / "f.bin", _sha1(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [(r.range, r.status) for r in server.requests_for("/f.bin")] == [("bytes=29-", 200)]


def test_416_with_complete_part_is_verified_not_refetched(server, tmp_path):
    data = _payload(10_000)
    url = server.add("/f.bin", data)
    (tmp_path / "f.bin.part").write_bytes(data)
    download(url, tmp_path / "f.bin", _sha1(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    reqs = server.requests_for("/f.bin")
    assert [(r.range, r.status, r.sent) for r in reqs] == [("bytes=10000-", 416, 0)]


def test_truncated_body_fails_after_retries_and_is_never_dest(server, tmp_path):
    data = _payload(100_000)
    url = server.add("/t.bin", data, truncate_at=60_000)
    with pytest.raises(DownloadError) as exc:
        download(url, tmp_path / "t.bin", _sha1(data), retries=2, **FAST)
    message = _one_line(exc)
    assert message.startswith(f"cannot download {url}: ")
    assert "60000 of 100000 bytes" in message
    assert "(3 attempts)" in message and "rerun to resume" in message
    assert not (tmp_path / "t.bin").exists()
    # the partial file stays for a later resume, with exactly what was received
    assert (tmp_path / "t.bin.part").read_bytes() == data[:60_000]
    reqs = server.requests_for("/t.bin")
    assert [r.range for r in reqs] == [None, "bytes=60000-", "bytes=60000-"]


def test_truncated_without_sha1_is_not_accepted(server, tmp_path):
    data = _payload(50_000)
    url = server.add("/t.bin", data, truncate_at=10_000)
    with pytest.raises(DownloadError):
        download(url, tmp_path / "t.bin", None, retries=1, **FAST)
    assert not (tmp_path / "t.bin").exists()


def test_5xx_is_retried(server, tmp_path):
    data = _payload(1000)
    url = server.add("/f.bin", data, fail_first=2, fail_status=503)
    download(url, tmp_path / "f.bin", _sha1(data), retries=2, **FAST)
    assert [r.status for r in server.requests_for("/f.bin")] == [503, 503, 200]


def test_5xx_gives_up_after_retries(server, tmp_path):
    url = server.add("/f.bin", b"x", status=500)
    with pytest.raises(DownloadError) as exc:
        download(url, tmp_path / "f.bin", None, retries=1, **FAST)
    message = _one_line(exc)
    assert url in message and "HTTP 500" in message
    assert len(server.requests_for("/f.bin")) == 2


def test_404_is_not_retried(server, tmp_path):
    url = server.url("/missing.zip")
    with pytest.raises(DownloadError) as exc:
        download(url, tmp_path / "m.zip", None, retries=3, **FAST)
    message = _one_line(exc)
    assert url in message and "HTTP 404" in message
    assert len(server.requests_for("/missing.zip")) == 1
    assert not (tmp_path / "m.zip").exists() and not (tmp_path / "m.zip.part").exists()


def test_backoff_sleeps_grow_exponentially(server, tmp_path, monkeypatch):
    import cvflow.data.sources.download as dl

    sleeps = []
    monkeypatch.setattr(dl.time, "sleep", sleeps.append)
    url = server.add("/f.bin", b"x", status=503)
    with pytest.raises(DownloadError):
        download(url, tmp_path / "f.bin", None, retries=3, backoff=0.5, timeout=5)
    assert sleeps == [0.5, 1.0, 2.0]


# --------------------------------------------------------------------------- checksums


def test_sha1_mismatch(server, tmp_path):
    data = _payload(20_000)
    url = server.add("/bad.bin", data, corrupt=True)
    served = bytes([data[0] ^ 0xFF]) + data[1:]
    with pytest.raises(DownloadError) as exc:
        download(url, tmp_path / "bad.bin", _sha1(data), **FAST)
    message = _one_line(exc)
    assert url in message
    assert _sha1(data) in message and _sha1(served) in message
    assert not (tmp_path / "bad.bin").exists()
    assert not (tmp_path / "bad.bin.part").exists()


def test_verified_file_not_fetched_twice(server, tmp_path):
    data = _payload(5000)
    url = server.add("/f.bin", data)
    download(url, tmp_path / "f.bin", _sha1(data), **FAST)
    mtime = (tmp_path / "f.bin").stat().st_mtime_ns
    download(url, tmp_path / "f.bin", _sha1(data), **FAST)
    download(url, tmp_path / "f.bin", None, **FAST)
    assert len(server.requests_for("/f.bin")) == 1
    assert (tmp_path / "f.bin").stat().st_mtime_ns == mtime


def test_existing_file_with_wrong_hash_is_downloaded_again(server, tmp_path):
    data = _payload(5000)
    url = server.add("/f.bin", data)
    (tmp_path / "f.bin").write_bytes(b"stale")
    download(url, tmp_path / "f.bin", _sha1(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert len(server.requests_for("/f.bin")) == 1


# --------------------------------------------------------------------------- offline / mirrors


def test_offline_gives_ways_out(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/hotdog.zip"
    with pytest.raises(DownloadError) as exc:
        download(url, tmp_path / "hotdog.zip", None, retries=1, **FAST)
    message = _one_line(exc)
    assert message.startswith(f"cannot download {url}: ")
    assert message.endswith(WAYS_OUT)
    assert "Ways out: point CVFLOW_HUB_URL (or hub_url in params.yaml) at a mirror" in message
    assert "--source local --path FILE_OR_FOLDER" in message and "(profile: demo)" in message
    assert "refused" in message.lower()
    assert not (tmp_path / "hotdog.zip").exists()
    assert isinstance(exc.value, UserError)


def test_offline_hint_replaces_ways_out(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/x.zip"
    with pytest.raises(DownloadError) as exc:
        download(url, tmp_path / "x.zip", None, retries=0, hint="Try the other thing.", **FAST)
    message = _one_line(exc)
    assert message.endswith("Try the other thing.")
    assert "Ways out" not in message


def test_file_url_mirror(tmp_path):
    data = _payload(70_000)
    mirror = tmp_path / "mirror dir"
    mirror.mkdir()
    (mirror / "hotdog.zip").write_bytes(data)
    url = (mirror / "hotdog.zip").as_uri()
    dest = download(url, tmp_path / "data" / "hotdog.zip", _sha1(data), chunk_size=4096, **FAST)
    assert dest.read_bytes() == data
    assert not (tmp_path / "data" / "hotdog.zip.part").exists()


def test_file_url_mismatch_and_missing(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"wrong bytes")
    with pytest.raises(DownloadError) as exc:
        download((tmp_path / "m.bin").as_uri(), tmp_path / "out" / "m.bin", _sha1(b"right bytes"), **FAST)
    assert _sha1(b"right bytes") in _one_line(exc) and _sha1(b"wrong bytes") in str(exc.value)
    assert not (tmp_path / "out" / "m.bin").exists() and not (tmp_path / "out" / "m.bin.part").exists()

    missing = (tmp_path / "nope.bin").as_uri()
    with pytest.raises(DownloadError) as exc:
        download(missing, tmp_path / "out" / "nope.bin", None, **FAST)
    assert missing in _one_line(exc) and "Ways out" in str(exc.value)


# --------------------------------------------------------------------------- hub


def test_hub_base_url_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("CVFLOW_HUB_URL", raising=False)
    assert hub.hub_base_url() == hub.DEFAULT_HUB_URL == "http://d2l-data.s3-accelerate.amazonaws.com/"
    assert hub.hub_base_url("") == hub.DEFAULT_HUB_URL
    assert hub.hub_base_url("http://mirror.example/d2l") == "http://mirror.example/d2l/"
    monkeypatch.setenv("CVFLOW_HUB_URL", "https://env.example/hub/")
    assert hub.hub_base_url("http://mirror.example/d2l") == "https://env.example/hub/"
    assert hub.hub_base_url() == "https://env.example/hub/"
    monkeypatch.setenv("CVFLOW_HUB_URL", str(tmp_path))  # a plain folder becomes a file:// URL
    assert hub.hub_base_url() == tmp_path.resolve().as_uri() + "/"


def test_data_hub_entries():
    assert {k: (v.name, v.sha1) for k, v in hub.DATA_HUB.items()} == {
        "hotdog": ("hotdog.zip", "fba480ffa8aa7e0febbb511d181409f899b9baa5"),
        "banana-detection": ("banana-detection.zip", "5de26c8fce5ccdea9f91267273464dc968d20d72"),
        "voc2012": ("VOCtrainval_11-May-2012.tar", "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"),
        "kaggle_cifar10_tiny": ("kaggle_cifar10_tiny.zip", "2068874e4b9a9f0fb07ebe0ad2b29754449ccacd"),
        "dog_tiny": ("kaggle_dog_tiny.zip", "0cb91d09b814ecdc07b50f31f8dcad3e81d6a86d"),
    }


def test_fetch_hub_file(server, tmp_path, monkeypatch):
    monkeypatch.delenv("CVFLOW_HUB_URL", raising=False)
    data = _zip_bytes()
    monkeypatch.setitem(hub.DATA_HUB, "hotdog", hub.HubFile("hotdog.zip", _sha1(data)))
    server.add("/d2l/hotdog.zip", data)
    path = hub.fetch_hub_file("hotdog", tmp_path, base_url=server.url("/d2l"), **FAST)
    assert path == tmp_path / "hotdog.zip" and path.read_bytes() == data
    # the environment variable wins over the parameter
    monkeypatch.setenv("CVFLOW_HUB_URL", server.url("/env"))
    server.add("/env/hotdog.zip", data)
    hub.fetch_hub_file("hotdog", tmp_path / "again", base_url=server.url("/d2l"), **FAST)
    assert len(server.requests_for("/env/hotdog.zip")) == 1
    assert len(server.requests_for("/d2l/hotdog.zip")) == 1
    with pytest.raises(UserError, match="unknown data hub file 'nope'"):
        hub.fetch_hub_file("nope", tmp_path)


def test_unsupported_or_invalid_url(tmp_path):
    for url in ("ftp://example.org/x.zip", "http://[broken/x.zip"):
        with pytest.raises(DownloadError) as exc:
            download(url, tmp_path / "x.zip", None, **FAST)
        assert url in _one_line(exc)
    assert not list(tmp_path.iterdir())
