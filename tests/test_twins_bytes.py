"""The demo twins are byte-stable: every file each generator writes, at small sizes, has a stored SHA-256.

The twins are DVC outputs and the source of every demo run, so refactoring the generators
must not change one byte of what they write. ``tests/twins_sha256.json`` holds, per
generator, ``{relative path: sha256}``; :func:`generate_all` rebuilds them here.

The CIFAR-10 batch pickles are the one recorded change: they were written by a hand-made
Python 2 pickler until they became plain protocol-2 pickles of ``str``-keyed dicts; their
decoded arrays are pinned separately (``cifar10_arrays``), so the images and labels that
``torchvision.datasets.CIFAR10`` reads are the same as before.

Regenerate the file (only when a change of bytes is intended, and say why in the commit):
``python tests/test_twins_bytes.py --record``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

STORE = Path(__file__).with_name("twins_sha256.json")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def generate_all(tmp: Path) -> dict[str, dict[str, str]]:
    """Every generator at a small size -> ``{generator: {path: sha256}}`` (plus decoded CIFAR arrays)."""
    from cvflow.data.readers.cifar import cifar10_dataset
    from cvflow.data.sources.photos import fetch_photos
    from cvflow.twins.bananas import generate_bananas
    from cvflow.twins.cifar import generate_cifar10_torchvision, generate_kaggle_cifar10
    from cvflow.twins.dogs import generate_kaggle_dogs
    from cvflow.twins.food import FOOD_CLASSES, render_batch
    from cvflow.twins.hotdog import generate_hotdog
    from cvflow.twins.voc import generate_voc
    from cvflow.pipelines.hotdog import HotdogDemo

    out: dict[str, dict[str, str]] = {}
    generate_hotdog(tmp / "hotdog", HotdogDemo(train_per_class=3, test_per_class=2, min_side=32, max_side=64, seed=7))
    out["hotdog"] = _tree(tmp / "hotdog")
    fetch_photos(tmp / "photos", "demo", names=["catdog.jpg", "cat1.jpg"], seed=3)
    out["photos"] = _tree(tmp / "photos")
    generate_bananas(tmp / "bananas", n_train=3, n_val=2, seed=5, size=64)
    out["bananas"] = _tree(tmp / "bananas")
    generate_voc(tmp / "voc", n_train=3, n_val=2, seed=4, size=((48, 64), (40, 56)))
    out["voc"] = _tree(tmp / "voc")
    generate_cifar10_torchvision(tmp / "cifar", n_train=12, n_test=4, seed=2)
    out["cifar10_torchvision"] = _tree(tmp / "cifar")
    arrays = {}
    for train in (True, False):
        ds = cifar10_dataset(tmp / "cifar", train=train)
        arrays[f"train={train}"] = _sha(np.ascontiguousarray(ds.data).tobytes() + json.dumps(list(ds.targets)).encode())
    out["cifar10_arrays"] = arrays
    generate_kaggle_cifar10(tmp / "kaggle-cifar10", n_train=10, n_test=4, seed=1)
    out["kaggle_cifar10"] = _tree(tmp / "kaggle-cifar10")
    generate_kaggle_dogs(tmp / "kaggle-dogs", ["beagle", "pug", "boxer"], n_train=4, n_test=2, seed=6, min_side=24,
                         max_side=48)
    out["kaggle_dogs"] = _tree(tmp / "kaggle-dogs")
    batch = render_batch(list(FOOD_CLASSES) + ["hotdog"], seed=11, size=(40, 32))
    out["render_batch"] = {"array": _sha(batch.tobytes()), "shape": "x".join(map(str, batch.shape))}
    return out


def test_twins_are_byte_identical(tmp_path):
    expected = json.loads(STORE.read_text(encoding="utf-8"))
    actual = generate_all(tmp_path)
    assert sorted(actual) == sorted(expected)
    for generator, files in expected.items():
        assert actual[generator] == files, f"{generator}: the twin's bytes changed"


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_twins_bytes.py --record")
    with tempfile.TemporaryDirectory() as folder:
        STORE.write_text(json.dumps(generate_all(Path(folder)), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {STORE}")
