"""The book's sample photos as a set: their names, SHA-1s and sizes, and the book's boxes on
``catdog.jpg`` (read by the fetcher, :mod:`cvflow.data.sources.photos`, and by the demo twin,
:mod:`cvflow.twins.photos`, which draws its figures inside those boxes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Photo:
    """One of the book's photos: its SHA-1 and its size (width, height)."""

    sha1: str
    size: tuple[int, int]


PHOTOS: dict[str, Photo] = {
    "catdog.jpg": Photo("60b7d540db03eef6b9834329bccc4417ef349bf6", (728, 561)),
    "rainier.jpg": Photo("b0193ffd8ecea1631ac1092130017b884faafa30", (2048, 1365)),
    "autumn-oak.jpg": Photo("bbe11f01403b9726bbc625589550e574fc45980a", (1717, 1200)),
    "cat1.jpg": Photo("f9c5b905d908b97eeeb64ff34a46fa8b143f88f8", (500, 400)),
}

# The book's boxes on catdog.jpg (13.3): (x1, y1, x2, y2) in pixels.
CATDOG_BOXES: dict[str, tuple[float, float, float, float]] = {
    "dog": (60.0, 45.0, 378.0, 516.0),
    "cat": (400.0, 112.0, 655.0, 493.0),
}


def read_photo(root, name: str):
    """``data/photos/<name>`` of the project ``root`` as a loaded RGB PIL image, or a one-line
    :class:`~cvflow.errors.DataError` that says what to run."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    from cvflow.errors import DataError

    path = Path(root) / "data" / "photos" / name
    if not path.is_file():
        raise DataError(f"{path} is missing; run `cvflow fetch photos` first")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path} is not a readable image ({error}); run `cvflow fetch photos` again") from None
