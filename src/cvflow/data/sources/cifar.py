"""CIFAR-10 for book 13.1 at ``dest/cifar-10-batches-py``: the twin, torchvision's download, or local.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.errors import DataError


def check_cifar10(root: Path) -> dict[str, int]:
    """``root/cifar-10-batches-py`` complete? Returns the number of files."""
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} (the layout of torchvision's CIFAR10)")
    return {"files": len(names)}


def fetch_cifar10(dest: Path, source: str, *, path: Path | None = None, n_train: int = 5000, n_test: int = 1000,
                  seed: int = 0) -> dict[str, int]:
    """``dest/cifar-10-batches-py``: ``demo`` (the twin), ``torchvision`` (torchvision's own URL and
    MD5), or ``local`` (a folder holding cifar-10-batches-py, or cifar-10-python.tar.gz)."""
    from cvflow.data.sources.materialize import find_root, materialize, unpack_user_data
    from cvflow.twins.cifar import generate_cifar10_torchvision

    def build(work: Path) -> Path:
        target = work / "target"
        if source == "demo":
            generate_cifar10_torchvision(target, n_train, n_test, seed)
        elif source == "torchvision":
            from torchvision.datasets import CIFAR10

            try:
                CIFAR10(str(target), train=True, download=True)
            except Exception as exc:  # noqa: BLE001 - URLError, HTTP errors, checksum failures
                raise DataError(
                    f"cannot download CIFAR-10 through torchvision ({type(exc).__name__}: {str(exc)[:120]}); "
                    "use --source local --path FOLDER_OR_TAR_GZ, or the offline demo (profile: demo)") from None
            (target / "cifar-10-python.tar.gz").unlink(missing_ok=True)
        elif source == "local":
            if path is None:
                raise DataError("source local needs --path (a folder holding cifar-10-batches-py, or the .tar.gz)")
            root = unpack_user_data(Path(path), work, lambda f: find_root(f, lambda d: (d / "cifar-10-batches-py").is_dir()),
                                    "cifar-10-batches-py")
            root.rename(target)
        else:
            raise DataError(f"unknown source {source!r}: use demo, torchvision or local")
        return target

    return materialize(Path(dest), build, check_cifar10)
