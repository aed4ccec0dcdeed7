"""What every demo twin writes besides its images: the marker, CSV files, an atomic build.

Every twin holds one hidden file the real data lacks, :data:`DEMO_MARKER`
(``.cvflow-demo.json``: generator, seed, sizes; md5 sums for the torchvision CIFAR-10
twin), like the ``.cvflow-extracted`` marker of unpacked archives. It holds no path and no
time, so the same twin has the same bytes in every checkout (it lands inside DVC outputs).
Nothing but cvflow reads it (the Kaggle reorganisation skips hidden files); it also keeps
a generator from ever replacing a folder of real data (:func:`building`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from cvflow.data.readers.demo import DEMO_MARKER
from cvflow.errors import DataError
from cvflow.fileio import replace_dir


# The marker's "generator" value names the generator as it was first published
# (cvflow.data.cifar.<function>). It is an identifier, not an import path: the twins'
# bytes are pinned by tests/test_twins_bytes.py, so it stays the same after any move.
_GENERATOR_PREFIX = "cvflow.data.cifar."


def md5sum(path: Path) -> str:
    """The md5 of a file (what torchvision checks CIFAR-10 batches with)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_marker(folder: Path, generator: str, **fields: Any) -> None:
    """The hidden ``.cvflow-demo.json``: the one file a real download lacks (nothing else reads it)."""
    data = {"generator": f"{_GENERATOR_PREFIX}{generator}", **fields}
    (folder / DEMO_MARKER).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain CSV (``,`` separated, ``\\n`` line ends, no quoting), as Kaggle's files are."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(header) + "\n")
        handle.writelines(",".join(str(v) for v in row) + "\n" for row in rows)


def balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` class indices, as balanced as possible, in random order."""
    return rng.permutation(np.arange(n) % n_classes)


def check_counts(**counts: int) -> None:
    """Each count a whole number >= 0, or a one-line DataError naming it."""
    for name, value in counts.items():
        if int(value) != value or value < 0:
            raise DataError(f"{name} must be a whole number >= 0 (got {value!r})")


@contextmanager
def building(dest: Path) -> Iterator[Path]:
    """A hidden folder beside ``dest``, renamed onto it (:func:`cvflow.fileio.replace_dir`) once complete.

    An existing ``dest`` is replaced only if it is an earlier twin (it holds
    :data:`DEMO_MARKER`) or empty: real data is never overwritten by a twin. On an error
    the hidden folder is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    if dest.exists() and not (dest / DEMO_MARKER).is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest} exists and is not a cvflow demo twin; refusing to replace it "
                        "(move it away or generate the twin elsewhere)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.generating-", dir=dest.parent))
    try:
        yield tmp
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

