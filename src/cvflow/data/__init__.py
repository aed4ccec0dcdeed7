"""The data layer, one role per folder.

* :mod:`cvflow.data.readers`: what training imports: the image-folder reader
  (:mod:`~cvflow.data.readers.images`), bananas (dataset, ``book_collate``, detection
  transforms), VOC (dataset, palette and label decoding, transforms), CIFAR-10 (torchvision's
  class, also for the twin) and the Kaggle label / manifest files.
* :mod:`cvflow.data.sources`: how a data set gets into ``data/``: verified downloads, safe
  archive extraction, the d2l hub, the Kaggle API and reorganisation, the one atomic
  ``materialize`` step, and one ``fetch_*`` per data set.
* the offline demo generators live beside this package, in :mod:`cvflow.twins` (food photos and the hot dog twin,
  the book's photos, bananas, VOC, CIFAR-10, dog breeds), all drawing with one shared
  raster module (:mod:`cvflow.twins.raster`); their bytes are pinned by
  ``tests/test_twins_bytes.py``.
* :mod:`cvflow.data.submissions`: the Kaggle submission writers.
"""
