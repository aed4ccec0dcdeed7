"""The book's sample photos (chapter 13): fetched from d2l-en, copied from a folder, or drawn.

=================  ==========  ==============================================
file               size        used for
=================  ==========  ==============================================
``catdog.jpg``     728 x 561   anchor boxes, bounding boxes (13.3, 13.4)
``cat1.jpg``       500 x 400   image augmentation (13.1)
``rainier.jpg``    2048 x 1365 style transfer, content image (13.12)
``autumn-oak.jpg`` 1717 x 1200 style transfer, style image (13.12)
=================  ==========  ==============================================

:func:`fetch_photos` gets them from one of three sources, all giving the same file names
in one flat folder:

* ``d2l``: downloaded from the ``img/`` folder of the d2l-en repository (a base URL that
  ``CVFLOW_PHOTOS_URL`` or ``base_url`` can point at a mirror or a local folder), each
  verified by the SHA-1 of its bytes;
* ``local``: copied from a folder that holds them (flat, or a d2l-en checkout with
  ``img/``), each SHA-1 checked first;
* ``demo``: stand-ins drawn by :mod:`cvflow.twins.photos`, deterministic, as JPEGs of the real sizes: on
  ``catdog.jpg`` a dog-like and a cat-like figure fill exactly the book's boxes
  (:data:`CATDOG_BOXES`), ``rainier.jpg`` is a mountain landscape, ``autumn-oak.jpg`` a
  painterly texture of brush strokes and ``cat1.jpg`` a cat lying on a dark blanket.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from cvflow.console import info
from cvflow.errors import DataError
from cvflow.data.readers.photos import CATDOG_BOXES, PHOTOS, Photo
from cvflow.fileio import atomic_path

__all__ = [
    "CATDOG_BOXES",
    "DEFAULT_PHOTOS_URL",
    "PHOTOS",
    "PHOTOS_URL_ENV",
    "Photo",
    "fetch_photos",
    "photos_base_url",
]

DEFAULT_PHOTOS_URL = "https://raw.githubusercontent.com/d2l-ai/d2l-en/master/img/"
PHOTOS_URL_ENV = "CVFLOW_PHOTOS_URL"


def photos_base_url(base_url: str | None = None) -> str:
    """``CVFLOW_PHOTOS_URL``, then ``base_url``, then :data:`DEFAULT_PHOTOS_URL`; ends with '/'.

    A plain folder path becomes a ``file://`` URL (as for the data hub).
    """
    from cvflow.data.sources.hub import _as_url

    for candidate in (os.environ.get(PHOTOS_URL_ENV), base_url):
        if candidate is not None and candidate.strip():
            url = _as_url(candidate.strip())
            break
    else:
        url = DEFAULT_PHOTOS_URL
    return url if url.endswith("/") else url + "/"


# --------------------------------------------------------------------------- sources


def _names(names: Iterable[str] | None) -> list[str]:
    chosen = list(PHOTOS) if names is None else list(names)
    unknown = [n for n in chosen if n not in PHOTOS]
    if unknown:
        raise DataError(f"unknown photo(s) {', '.join(unknown)}; known: {', '.join(PHOTOS)}")
    return chosen


def _local_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / "img" / name):
        if candidate.is_file():
            return candidate
    return None


def fetch_photos(dest: str | os.PathLike, source: str = "demo", path: str | os.PathLike | None = None,
                 base_url: str | None = None, *, names: Iterable[str] | None = None, seed: int = 0,
                 **download_kwargs) -> dict[str, Path]:
    """Put the book's photos into folder ``dest`` (flat, real file names); return ``{name: path}``.

    * ``d2l``: download ``<base>/<name>`` for each (base: :func:`photos_base_url`), SHA-1
      verified by :func:`cvflow.data.sources.download.download` (a verified file is not fetched again);
      ``download_kwargs`` go to it.
    * ``local``: copy from folder ``path`` (or ``path/img``) after checking each SHA-1; a
      mismatch raises :class:`DataError` naming the file, the expected and the actual SHA-1.
    * ``demo``: draw deterministic stand-ins (:func:`render_photo`) of the real sizes.

    ``names`` picks a subset of :data:`PHOTOS`. Every file is written atomically.
    """
    from cvflow.data.sources.download import download, sha1sum
    from cvflow.twins.photos import render_photo

    dest = Path(dest)
    chosen = _names(names)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if source == "d2l":
        base = photos_base_url(base_url)
        hint = (f"Ways out: point {PHOTOS_URL_ENV} at a mirror of d2l-en's img/ folder, use --source local "
                "--path FOLDER, or run the offline demo (source: demo)")
        for name in chosen:
            out[name] = download(base + name, dest / name, sha1=PHOTOS[name].sha1, hint=hint, **download_kwargs)
    elif source == "local":
        if path is None:
            raise DataError("source local needs --path FOLDER holding the photos (catdog.jpg, ...)")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder (source local: --path FOLDER)")
        found = {name: _local_file(folder, name) for name in chosen}
        missing = [name for name, file in found.items() if file is None]
        if missing:
            raise DataError(f"{folder}: missing {', '.join(missing)} (looked in {folder} and {folder / 'img'})")
        for name, file in found.items():
            actual = sha1sum(file)
            if actual != PHOTOS[name].sha1:
                raise DataError(f"{file}: SHA-1 mismatch for {name}: expected {PHOTOS[name].sha1}, got {actual}; "
                                "this is not the book's photo (replace it, or use source d2l or demo)")
        for name, file in found.items():
            target = dest / name
            if target.resolve() != file.resolve():
                with atomic_path(target) as tmp:
                    shutil.copyfile(file, tmp)
            out[name] = target
    elif source == "demo":
        for name in chosen:
            image = render_photo(name, seed)
            with atomic_path(dest / name) as tmp:
                image.save(tmp, format="JPEG", quality=92)
            out[name] = dest / name
    else:
        raise DataError(f"unknown source {source!r}: use demo, d2l or local")
    info(f"photos ({source}) in {dest}: {', '.join(chosen)}")
    return out
