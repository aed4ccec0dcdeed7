"""The hot dog set's names (book 13.2): its classes and splits, read by training and by the sources alike.

The images are an image folder per split (``hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg``), read
with :class:`cvflow.data.readers.images.DecodedImageFolder`.
"""

from __future__ import annotations

CLASSES = ("hotdog", "not-hotdog")
SPLITS = ("train", "test")
