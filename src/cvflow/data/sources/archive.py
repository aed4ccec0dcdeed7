"""Safe, atomic, idempotent archive extraction (zip, tar[.gz|.bz2|.xz], 7z).

:func:`extract` first reads the whole member list and refuses the archive (one-line
:class:`~cvflow.errors.UnsafeArchiveError`) if any member would land outside the target
folder: an absolute path, a ``..`` component, a symbolic or hard link whose target resolves
outside (links inside the archive are followed while resolving), a device file or fifo.
Nothing is written before every member has passed.

Then it extracts into a hidden temporary folder beside ``dest``, writes a marker file
(:data:`MARKER`) naming the archive, its size and SHA-1, and renames the folder onto
``dest``. Extracting the same archive again finds the marker and returns at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvflow.console import info
from cvflow.data.sources.download import sha1sum
from cvflow.errors import DataError, UnsafeArchiveError, UserError
from cvflow.fileio import replace_dir, write_json

__all__ = ["MARKER", "extract"]

MARKER = ".cvflow-extracted"

_MAX_LINK_DEPTH = 40  # like the OS's ELOOP limit
_MAX_LINK_TARGET = 4096  # bytes of a zip/7z symlink's target we read for the check

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_7Z_MAGIC = b"7z\xbc\xaf\x27\x1c"


@dataclass
class _Member:
    """What the safety check needs to know about one archive member."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink", "special"
    link: str | None = None  # symlink target (relative to the link's folder) or hard link target (to the root)


# ---------------------------------------------------------------------------- checks


def _parts(name: str) -> list[str]:
    """Path components of an archive name (both separators, so Windows-made archives are checked too)."""
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name))


class _Resolver:
    """Resolves paths inside the archive the way the OS would after extraction, following the
    archive's own symbolic links, so that a chain of individually harmless links cannot escape."""

    def __init__(self, members: list[_Member]):
        self.links = {"/".join(_parts(m.name)): m.link or "" for m in members if m.kind == "symlink"}

    def resolve(self, parts: list[str], base: list[str] | None = None, depth: int = 0) -> list[str] | None:
        """Components of the resolved path relative to the root, or None if it leaves the root."""
        if depth > _MAX_LINK_DEPTH:
            return None
        stack = list(base or [])
        for part in parts:
            if part == "..":
                if not stack:
                    return None
                stack.pop()
                continue
            stack.append(part)
            target = self.links.get("/".join(stack))
            if target is not None:
                if _is_absolute(target):
                    return None
                stack.pop()
                resolved = self.resolve(_parts(target), stack, depth + 1)
                if resolved is None:
                    return None
                stack = resolved
        return stack


def _check(archive: Path, members: list[_Member]) -> None:
    """Raise UnsafeArchiveError for the first member that could write outside the root."""
    resolver = _Resolver(members)

    def refuse(member: _Member, why: str) -> None:
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {member.name!r} {why}; the archive is unsafe"
            " (nothing was extracted). Get the file from a trusted source"
        )

    for member in members:
        name = member.name
        if "\x00" in name:
            refuse(member, "has a NUL byte in its name")
        if _is_absolute(name):
            refuse(member, "has an absolute path")
        parts = _parts(name)
        if ".." in parts:
            refuse(member, "has a '..' component")
        if member.kind == "special":
            refuse(member, "is a device file, fifo or socket")
        if member.kind == "symlink":
            target = member.link or ""
            if _is_absolute(target):
                refuse(member, f"is a symbolic link to an absolute path ({target!r})")
            folder = resolver.resolve(parts[:-1])
            if folder is None or resolver.resolve(_parts(target), folder) is None:
                refuse(member, f"is a symbolic link pointing outside the target folder ({target!r})")
        elif member.kind == "hardlink":
            target = member.link or ""
            if _is_absolute(target) or ".." in _parts(target) or resolver.resolve(_parts(target)) is None:
                refuse(member, f"is a hard link pointing outside the target folder ({target!r})")
            if not _parts(target):
                refuse(member, f"is a hard link to the target folder itself ({target!r})")
        # where the member itself lands (following links in its folders, and the member's
        # own name for non-links, since writing a file onto an existing link follows it)
        landing = parts[:-1] if member.kind == "symlink" else parts
        if resolver.resolve(landing) is None:
            refuse(member, "would be written through a symbolic link pointing outside the target folder")


# ---------------------------------------------------------------------------- formats


def _detect(archive: Path) -> str:
    """'zip', '7z' or 'tar' (tarfile handles gz/bz2/xz itself), from the content, then the suffix."""
    with open(archive, "rb") as handle:
        head = handle.read(512)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_7Z_MAGIC):
        return "7z"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".7z"):
        return "7z"
    if re.search(r"\.(tar(\.(gz|bz2|xz))?|tgz|tbz2?|txz)$", name):
        return "tar"
    if tarfile.is_tarfile(archive):  # old (v7) tars have no magic
        return "tar"
    if zipfile.is_zipfile(archive):  # self-extracting zips have a prefix
        return "zip"
    raise DataError(f"cannot extract {archive}: not a zip, tar (.gz, .bz2, .xz) or 7z archive")


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for entry in zf.infolist():
        mode = (entry.external_attr >> 16) & 0xFFFF if entry.create_system == 3 else 0  # 3: made on Unix
        fmt = stat.S_IFMT(mode)
        if entry.is_dir():
            kind, link = "dir", None
        elif fmt == stat.S_IFLNK:
            kind = "symlink"
            with zf.open(entry) as handle:
                link = handle.read(_MAX_LINK_TARGET).decode("utf-8", "surrogateescape")
        elif fmt in (0, stat.S_IFREG):
            kind, link = "file", None
        elif fmt == stat.S_IFDIR:
            kind, link = "dir", None
        else:
            kind, link = "special", None
        members.append(_Member(entry.filename, kind, link))
    return members


def _extract_zip(zf: zipfile.ZipFile, members: list[_Member], root: Path) -> None:
    for entry, member in zip(zf.infolist(), members):
        parts = _parts(member.name)
        if not parts:
            continue
        target = root.joinpath(*parts)
        if member.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        if member.kind == "symlink":
            os.symlink(member.link or "", target)
            continue
        with zf.open(entry) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        mode = (entry.external_attr >> 16) & 0o777 if entry.create_system == 3 else 0
        if mode & 0o111:  # keep executable bits (scripts); everything else gets the default mode
            os.chmod(target, (0o666 & ~_umask()) | (mode & 0o111))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tar_members(tf: tarfile.TarFile) -> list[_Member]:
    members = []
    for entry in tf.getmembers():
        if entry.issym():
            members.append(_Member(entry.name, "symlink", entry.linkname))
        elif entry.islnk():
            members.append(_Member(entry.name, "hardlink", entry.linkname))
        elif entry.isdir():
            members.append(_Member(entry.name, "dir"))
        elif entry.isfile():
            members.append(_Member(entry.name, "file"))
        else:  # character/block device, fifo, or a type tarfile does not know
            members.append(_Member(entry.name, "special"))
    return members


def _import_py7zr() -> Any:
    try:
        import py7zr
    except ImportError:
        raise UserError("extracting .7z archives needs the py7zr package: pip install py7zr") from None
    return py7zr


def _7z_members(sz: Any, py7zr: Any) -> list[_Member]:
    members, links = [], []
    for entry in sz.files:
        fmt = entry.st_fmt
        if entry.is_directory:
            kind = "dir"
        elif entry.is_symlink or entry.is_junction:
            kind = "symlink"
            links.append(entry.filename)
        elif entry.is_socket or (fmt is not None and fmt not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)):
            kind = "special"
        else:
            kind = "file"
        members.append(_Member(entry.filename, kind))
    if links:
        # Read the link targets (small) into memory; nothing touches the disk.
        bad = [m for m in members if _is_absolute(m.name) or ".." in _parts(m.name)]
        if not bad:
            factory = py7zr.io.BytesIOFactory(_MAX_LINK_TARGET)
            sz.extract(targets=links, factory=factory)
            sz.reset()
            for member in members:
                if member.kind == "symlink":
                    product = factory.products.get(member.name)
                    data = product.read() if product is not None else b""
                    member.link = data.decode("utf-8", "surrogateescape")
    return members


# ---------------------------------------------------------------------------- marker


def _marker_matches(dest: Path, archive: Path, stat_result: os.stat_result) -> bool:
    try:
        marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    if marker.get("archive") != archive.name or marker.get("size") != stat_result.st_size:
        return False
    if marker.get("mtime_ns") == stat_result.st_mtime_ns:
        return True  # fast path: same name, size and modification time
    if marker.get("sha1") != sha1sum(archive):
        return False
    marker["mtime_ns"] = stat_result.st_mtime_ns  # same bytes, touched: remember the new time
    try:
        write_json(dest / MARKER, marker)
    except OSError:
        pass
    return True


# ---------------------------------------------------------------------------- extract


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract ``archive`` into the folder ``dest`` (safely, atomically, once) and return ``dest``.

    The members land directly in ``dest`` (an archive holding ``top/a.txt`` gives
    ``dest/top/a.txt``). If ``dest`` holds the marker of this very archive it is returned
    at once; any other ``dest`` is replaced.

    Raises :class:`UnsafeArchiveError` for a hostile archive (``dest`` is then not created),
    :class:`DataError` for a corrupt or unknown one, :class:`UserError` when a 7z archive
    needs py7zr and it is not installed.
    """
    archive = Path(archive)
    dest = Path(dest)
    try:
        st = archive.stat()
    except OSError:
        raise DataError(f"cannot extract {archive}: no such file") from None
    if not archive.is_file():
        raise DataError(f"cannot extract {archive}: not a file")
    if dest.is_dir() and _marker_matches(dest, archive, st):
        return dest

    kind = _detect(archive)
    py7zr = _import_py7zr() if kind == "7z" else None
    tmp: Path | None = None
    try:
        with _open(archive, kind, py7zr) as handle:
            # 1. every member is checked before anything is written
            if kind == "zip":
                members = _zip_members(handle)
            elif kind == "tar":
                members = _tar_members(handle)
            else:
                members = _7z_members(handle, py7zr)
            _check(archive, members)

            # 2. extract into a hidden folder beside dest
            info(f"extracting {archive.name} to {dest}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
            if kind == "zip":
                _extract_zip(handle, members, tmp)
            elif kind == "tar":
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: a second line of defence
                    handle.extractall(tmp, filter="data")
                else:
                    handle.extractall(tmp)
            else:
                handle.extractall(path=tmp)
        write_json(tmp / MARKER, {"archive": archive.name, "size": st.st_size, "sha1": sha1sum(archive),
                                  "mtime_ns": st.st_mtime_ns})

        # 3. one rename onto dest (an old dest is moved aside first, then removed)
        replace_dir(tmp, dest)
        tmp = None
        return dest
    except UserError:
        raise
    except _tar_filter_errors() as exc:
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: {_one_line(exc)}; the archive is unsafe (nothing was kept)"
        ) from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, RuntimeError, ValueError) + _7z_errors(py7zr) as exc:
        raise DataError(
            f"cannot extract {archive}: it is corrupt or truncated ({_one_line(exc)}); delete it and download it again"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot extract {archive} to {dest}: {_one_line(exc)}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _tar_filter_errors() -> tuple[type[BaseException], ...]:
    error = getattr(tarfile, "FilterError", None)
    return (error,) if error is not None else ()


def _7z_errors(py7zr: Any) -> tuple[type[BaseException], ...]:
    if py7zr is None:
        return ()
    return (py7zr.exceptions.ArchiveError, py7zr.exceptions.Bad7zFile, py7zr.exceptions.DecompressionError,
            py7zr.exceptions.CrcError, py7zr.exceptions.UnsupportedCompressionMethodError,
            py7zr.exceptions.PasswordRequired)


class _open:
    """Open an archive of the detected kind as a context manager."""

    def __init__(self, archive: Path, kind: str, py7zr: Any):
        self.archive, self.kind, self.py7zr = archive, kind, py7zr
        self.handle: Any = None

    def __enter__(self) -> Any:
        if self.kind == "zip":
            self.handle = zipfile.ZipFile(self.archive)
        elif self.kind == "tar":
            self.handle = tarfile.open(self.archive, mode="r:*")
        else:
            self.handle = self.py7zr.SevenZipFile(self.archive, mode="r")
        return self.handle

    def __exit__(self, *exc_info: Any) -> None:
        self.handle.close()
