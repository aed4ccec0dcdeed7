"""Safe extraction: hostile archives are refused before anything is written."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from cvflow.data.sources.archive import MARKER, extract
from cvflow.errors import DataError, UnsafeArchiveError, UserError

# --------------------------------------------------------------------------- builders


def _tar(path: Path, entries: list[tuple], mode: str = "w") -> Path:
    """entries: (name, kind, payload) with kind file|dir|sym|hard|chr|fifo."""
    with tarfile.open(path, mode) as tf:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                info.size = len(data)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _zip(path: Path, entries: list[tuple]) -> Path:
    """entries: (name, kind, payload) with kind file|sym|fifo."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, kind, payload in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            if kind == "sym":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            elif kind == "fifo":
                info.external_attr = (stat.S_IFIFO | 0o644) << 16
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, payload)
    return path


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name != MARKER
    }


@pytest.fixture
def box(tmp_path):
    """A work folder inside tmp_path, so escapes to tmp_path (one level up) can be seen."""
    work = tmp_path / "work"
    work.mkdir()
    return work


# --------------------------------------------------------------------------- good archives


@pytest.mark.parametrize("mode, suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:bz2", ".tbz2"), ("w:xz", ".tar.xz")])
def test_tar_formats(box, mode, suffix):
    archive = _tar(box / f"a{suffix}", [("top", "dir", None), ("top/a.txt", "file", "A"), ("top/d/b.txt", "file", "B")],
                   mode)
    dest = extract(archive, box / "out")
    assert dest == box / "out"
    assert _files(dest) == {"top/a.txt": "A", "top/d/b.txt": "B"}
    marker = json.loads((dest / MARKER).read_text())
    assert marker["archive"] == archive.name and marker["size"] == archive.stat().st_size
    assert len(marker["sha1"]) == 40
    # no temporary folders left beside dest
    assert sorted(p.name for p in box.iterdir()) == sorted([archive.name, "out"])


def test_format_detected_by_content_not_suffix(box):
    archive = _zip(box / "data.bin", [("x/y.txt", "file", "zip inside")])
    assert _files(extract(archive, box / "out")) == {"x/y.txt": "zip inside"}
    archive = _tar(box / "data2.zip", [("t.txt", "file", "tar inside")], "w:gz")
    assert _files(extract(archive, box / "out2")) == {"t.txt": "tar inside"}


def test_safe_symlinks_and_hardlinks_are_kept(box):
    archive = _tar(box / "links.tar", [
        ("d/real.txt", "file", "real"),
        ("d/sym", "sym", "real.txt"),
        ("up", "sym", "d/../d/real.txt"),
        ("hard", "hard", "d/real.txt"),
    ])
    dest = extract(archive, box / "out")
    assert os.readlink(dest / "d" / "sym") == "real.txt"
    assert (dest / "up").read_text() == "real"
    assert (dest / "hard").read_text() == "real"
    assert os.stat(dest / "hard").st_ino == os.stat(dest / "d" / "real.txt").st_ino


def test_zip_symlink_inside_is_created_as_link(box):
    archive = _zip(box / "l.zip", [("d/real.txt", "file", "real"), ("d/ln", "sym", "real.txt")])
    dest = extract(archive, box / "out")
    assert (dest / "d" / "ln").is_symlink() and (dest / "d" / "ln").read_text() == "real"


def test_7z_with_symlink(box, tmp_path):
    py7zr = pytest.importorskip("py7zr")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("seven")
    os.symlink("d/f.txt", src / "ln")
    with py7zr.SevenZipFile(box / "a.7z", "w") as sz:
        sz.writeall(src, "top")
    dest = extract(box / "a.7z", box / "out")
    assert _files(dest) == {"top/d/f.txt": "seven"}
    assert (dest / "top" / "ln").is_symlink() and (dest / "top" / "ln").read_text() == "seven"


# --------------------------------------------------------------------------- hostile archives

OUTSIDE = "cvflow-evil-outside.txt"

HOSTILE_TAR = {
    "dotdot": [("ok.txt", "file", "fine"), ("../" + OUTSIDE, "file", "pwned")],
    "dotdot-nested": [("a/b/../../../" + OUTSIDE, "file", "pwned")],
    "absolute": [("ok.txt", "file", "fine"), ("/tmp/" + OUTSIDE, "file", "pwned")],
    "symlink-outside": [("ok.txt", "file", "fine"), ("ln", "sym", "../")],
    "symlink-absolute": [("ln", "sym", "/etc/passwd")],
    "symlink-then-write": [("ln", "sym", ".."), ("ln/" + OUTSIDE, "file", "pwned")],
    "symlink-chain": [("a", "sym", "."), ("b", "sym", "a/.."), ("b/" + OUTSIDE, "file", "pwned")],
    "symlink-via-link-folder": [("a", "sym", "."), ("d", "dir", None), ("a/d/l", "sym", "../..")],
    "hardlink-outside": [("ok.txt", "file", "fine"), ("hl", "hard", "../" + OUTSIDE)],
    "hardlink-absolute": [("hl", "hard", "/etc/passwd")],
    "char-device": [("ok.txt", "file", "fine"), ("dev/null", "chr", None)],
    "fifo": [("pipe", "fifo", None)],
}


def _expected_member(case: str, entries: list[tuple]) -> str:
    # the first member that can escape is named (for "symlink-then-write" the link itself)
    special = {"symlink-chain": "b", "symlink-via-link-folder": "a/d/l", "symlink-then-write": "ln"}
    return special.get(case, entries[-1][0])


@pytest.mark.parametrize("case", sorted(HOSTILE_TAR))
def test_hostile_tar_refused(box, case):
    entries = HOSTILE_TAR[case]
    archive = _tar(box / "evil.tar", entries)
    before = _snapshot(box.parent)
    with pytest.raises(UnsafeArchiveError) as exc:
        extract(archive, box / "out")
    message = str(exc.value)
    assert "\n" not in message
    assert str(archive) in message
    assert "member " + repr(_expected_member(case, entries)) in message  # named by the check before writing
    assert not (box / "out").exists()
    assert _snapshot(box.parent) == before  # nothing written anywhere, no temp folder left
    assert not (Path("/tmp") / OUTSIDE).exists()


HOSTILE_ZIP = {
    "dotdot": [("ok.txt", "file", "fine"), ("../" + OUTSIDE, "file", "pwned")],
    "dotdot-backslash": [("ok.txt", "file", "fine"), ("..\\" + OUTSIDE, "file", "pwned")],
    "absolute": [("ok.txt", "file", "fine"), ("/tmp/" + OUTSIDE, "file", "pwned")],
    "drive": [("C:/" + OUTSIDE, "file", "pwned")],
    "symlink-outside": [("ok.txt", "file", "fine"), ("ln", "sym", "../../")],
    "symlink-then-write": [("ln", "sym", ".."), ("ln/" + OUTSIDE, "file", "pwned")],
    "symlink-chain": [("a", "sym", "."), ("b", "sym", "a/.."), ("c.txt", "file", "fine")],
    "symlink-via-link-folder": [("a", "sym", "."), ("a/d/l", "sym", "../.."), ("c.txt", "file", "fine")],
    "fifo": [("pipe", "fifo", "")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIP))
def test_hostile_zip_refused(box, case):
    entries = HOSTILE_ZIP[case]
    archive = _zip(box / "evil.zip", entries)
    before = _snapshot(box.parent)
    with pytest.raises(UnsafeArchiveError) as exc:
        extract(archive, box / "out")
    message = str(exc.value)
    assert "\n" not in message
    assert str(archive) in message
    assert "member " + repr(_expected_member(case, entries)) in message  # named by the check before writing
    assert not (box / "out").exists()
    assert _snapshot(box.parent) == before
    assert not (Path("/tmp") / OUTSIDE).exists()


def test_hostile_7z_symlink_refused(box, tmp_path):
    py7zr = pytest.importorskip("py7zr")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    os.symlink("../..", src / "ln")  # must exist for py7zr to archive it
    with py7zr.SevenZipFile(box / "evil.7z", "w") as sz:
        sz.writeall(src, "top")
    before = _snapshot(box.parent)
    with pytest.raises(UnsafeArchiveError, match=r"'top/ln'.*outside"):
        extract(box / "evil.7z", box / "out")
    assert not (box / "out").exists()
    assert _snapshot(box.parent) == before


def test_refusal_leaves_existing_dest_alone(box):
    good = _tar(box / "good.tar", [("a.txt", "file", "good")])
    extract(good, box / "out")
    evil = _tar(box / "evil.tar", [("b.txt", "file", "x"), ("../" + OUTSIDE, "file", "pwned")])
    with pytest.raises(UnsafeArchiveError):
        extract(evil, box / "out")
    assert _files(box / "out") == {"a.txt": "good"}
    assert json.loads((box / "out" / MARKER).read_text())["archive"] == "good.tar"


# --------------------------------------------------------------------------- idempotence


def test_rerun_is_a_noop(box):
    archive = _tar(box / "a.tar", [("a.txt", "file", "A")])
    dest = extract(archive, box / "out")
    (dest / "a.txt").write_text("edited by the user")  # a re-extraction would overwrite this
    (dest / "extra.txt").write_text("kept")
    assert extract(archive, box / "out") == dest
    assert _files(dest) == {"a.txt": "edited by the user", "extra.txt": "kept"}


def test_rerun_does_not_even_hash_the_archive(box, monkeypatch):
    import cvflow.data.sources.archive as archive_module

    archive = _tar(box / "a.tar", [("a.txt", "file", "A")])
    extract(archive, box / "out")

    def no_hashing(*args, **kwargs):
        raise AssertionError("the archive was hashed again")

    monkeypatch.setattr(archive_module, "sha1sum", no_hashing)
    extract(archive, box / "out")  # name, size and mtime match: returns at once


def test_rerun_after_touch_checks_sha1(box):
    archive = _tar(box / "a.tar", [("a.txt", "file", "A")])
    dest = extract(archive, box / "out")
    (dest / "a.txt").write_text("edited")
    os.utime(archive, ns=(1_000_000_000, 1_000_000_000))  # same bytes, new time: still a no-op
    extract(archive, box / "out")
    assert (dest / "a.txt").read_text() == "edited"


def test_other_archive_replaces_dest(box):
    first = _tar(box / "a.tar", [("a.txt", "file", "A"), ("only-in-a.txt", "file", "old")])
    extract(first, box / "out")
    second = _tar(box / "a2.tar", [("a.txt", "file", "B")])
    extract(second, box / "out")
    assert _files(box / "out") == {"a.txt": "B"}
    # same name and size, different content: the SHA-1 tells them apart
    third = _tar(box / "a.tar", [("a.txt", "file", "C"), ("only-in-a.txt", "file", "new")])
    extract(third, box / "out")
    extract(third, box / "out")
    assert _files(box / "out") == {"a.txt": "C"} | {"only-in-a.txt": "new"}
    assert sorted(p.name for p in box.iterdir()) == ["a.tar", "a2.tar", "out"]


def test_dest_without_marker_is_replaced(box):
    (box / "out").mkdir()
    (box / "out" / "stale.txt").write_text("stale")
    archive = _zip(box / "a.zip", [("a.txt", "file", "A")])
    extract(archive, box / "out")
    assert _files(box / "out") == {"a.txt": "A"}


# --------------------------------------------------------------------------- errors


def test_corrupt_archive(box):
    good = _zip(box / "a.zip", [("a.txt", "file", "A" * 5000)])
    (box / "cut.zip").write_bytes(good.read_bytes()[:-30])
    with pytest.raises(DataError) as exc:
        extract(box / "cut.zip", box / "out")
    assert "cut.zip" in str(exc.value) and "\n" not in str(exc.value)
    assert not (box / "out").exists()
    assert sorted(p.name for p in box.iterdir()) == ["a.zip", "cut.zip"]


def test_unknown_format_and_missing_file(box):
    (box / "notes.txt").write_text("just text")
    with pytest.raises(DataError, match="not a zip, tar"):
        extract(box / "notes.txt", box / "out")
    with pytest.raises(DataError, match="no such file"):
        extract(box / "absent.zip", box / "out")
    assert not (box / "out").exists()


def test_7z_without_py7zr(box, monkeypatch):
    (box / "a.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "py7zr", None)  # import py7zr -> ImportError
    with pytest.raises(UserError, match="pip install py7zr"):
        extract(box / "a.7z", box / "out")
    assert not (box / "out").exists()
