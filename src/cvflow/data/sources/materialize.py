"""One way to get any data set into place, whatever its source.

Every ``cvflow fetch`` goes through :func:`materialize`: the data set is built in a hidden
folder beside its destination (generated, extracted from a verified download, or linked
from the user's own folder or archive), its layout is checked, and only then is it swapped
in with one rename. An interrupted fetch never leaves a half-written data set behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from cvflow.errors import DataError
from cvflow.fileio import replace_dir


def link_tree(src: Path, dst: Path) -> None:
    """Mirror ``src`` into ``dst`` with hard links (no bytes copied), copying across file systems."""

    def link(source: str, target: str) -> None:
        try:
            Path(target).hardlink_to(source)
        except OSError:
            shutil.copy2(source, target)

    shutil.copytree(src, dst, copy_function=link)


def find_root(folder: Path, is_root: Callable[[Path], bool]) -> Path | None:
    """``folder`` itself or the first sub-folder (two levels at most) for which ``is_root`` holds."""
    if is_root(folder):
        return folder
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        if is_root(child):
            return child
        for grandchild in sorted(p for p in child.iterdir() if p.is_dir()):
            if is_root(grandchild):
                return grandchild
    return None


def unpack_user_data(path: Path, work: Path, locate: Callable[[Path], Path | None], layout: str) -> Path:
    """A user's folder (hard-linked) or archive (safely extracted) -> the data set root inside ``work``.

    ``locate(folder)`` returns the data set's root inside ``folder`` (or None).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (--path)")
    if path.is_dir():
        found = locate(path)
        if found is None:
            raise DataError(f"{path}: does not hold {layout}")
        link_tree(found, work / "linked")
        return work / "linked"
    from cvflow.data.sources.archive import MARKER, extract

    unpacked = extract(path, work / "unpacked")
    found = locate(unpacked)
    if found is None:
        raise DataError(f"{path}: the archive does not hold {layout}")
    # The extraction marker (archive name, size, SHA-1, mtime) is for re-extraction into a
    # kept folder; this one is a scratch copy. Where the data set is the archive's top level,
    # the marker would land in the data set (a DVC output) with a time in it: drop it.
    (found / MARKER).unlink(missing_ok=True)
    return found


def fetch_dataset(dest: Path, source: str, *, layout: str, hub_key: str, locate: Callable[[Path], Path | None],
                  check: Callable[[Path], object], generate: Callable[[Path], object], path: Path | None = None,
                  hub_url: str | None = None, downloads: Path | None = None, nest: str = ""):
    """The d2l-hub data sets' one fetch: ``demo`` (``generate(folder)``), ``d2l`` (the hub file
    ``hub_key``, SHA-1 checked and safely extracted) or ``local`` (``path``: a folder or archive).

    The data set root found by ``locate`` lands at ``dest / nest`` (``nest`` keeps wrappers
    such as ``VOCdevkit/VOC2012``); ``check(dest / nest)`` must pass first. Returns its result.
    """
    dest = Path(dest)

    def build(work: Path) -> Path:
        target = work / "target"
        if source == "demo":
            generate(target)
            return target
        if source == "d2l":
            from cvflow.data.sources.hub import fetch_hub_file

            archive = fetch_hub_file(hub_key, Path(downloads or dest.parent / "downloads"), base_url=hub_url)
        elif source == "local":
            if path is None:
                raise DataError("source local needs --path DIR_OR_ARCHIVE")
            archive = Path(path)
        else:
            raise DataError(f"unknown source {source!r}: use demo, d2l or local")
        root = unpack_user_data(archive, work, locate, layout)
        place = target / nest if nest else target
        place.parent.mkdir(parents=True, exist_ok=True)
        root.rename(place)
        return target

    return materialize(dest, build, lambda target: check(target / nest if nest else target))


def materialize(dest: Path, build: Callable[[Path], Path], check: Callable[[Path], object]):
    """Build a data set with ``build(work_dir) -> root``, ``check(root)``, then rename it onto ``dest``.

    Returns whatever ``check`` returned (counts, usually).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        root = build(work)
        result = check(root)
        replace_dir(root, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result
