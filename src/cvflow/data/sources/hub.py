"""The d2l data hub: the files the Computer Vision chapter downloads, with their SHA-1.

The base URL can point at a mirror: ``CVFLOW_HUB_URL`` (environment) wins over ``hub_url``
(params.yaml), which wins over :data:`DEFAULT_HUB_URL`. A plain folder path works too
(it becomes a ``file://`` URL), so an offline machine can use a copied folder of files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvflow.data.sources.download import download
from cvflow.errors import DataError

__all__ = ["DATA_HUB", "DEFAULT_HUB_URL", "HUB_URL_ENV", "HubFile", "fetch_hub_file", "hub_base_url"]

DEFAULT_HUB_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"
HUB_URL_ENV = "CVFLOW_HUB_URL"


@dataclass(frozen=True)
class HubFile:
    """A file on the hub: its name (relative to the base URL) and its SHA-1."""

    name: str
    sha1: str


DATA_HUB: dict[str, HubFile] = {
    "hotdog": HubFile("hotdog.zip", "fba480ffa8aa7e0febbb511d181409f899b9baa5"),
    "banana-detection": HubFile("banana-detection.zip", "5de26c8fce5ccdea9f91267273464dc968d20d72"),
    "voc2012": HubFile("VOCtrainval_11-May-2012.tar", "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"),
    "kaggle_cifar10_tiny": HubFile("kaggle_cifar10_tiny.zip", "2068874e4b9a9f0fb07ebe0ad2b29754449ccacd"),
    "dog_tiny": HubFile("kaggle_dog_tiny.zip", "0cb91d09b814ecdc07b50f31f8dcad3e81d6a86d"),
}


def _as_url(value: str) -> str:
    """A URL stays as it is; a local folder path becomes a ``file://`` URL."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", value):  # a scheme (two letters or more: not C:\)
        return value
    return Path(value).expanduser().resolve().as_uri()


def hub_base_url(param_value: str | None = None) -> str:
    """The hub's base URL, ending with '/': env ``CVFLOW_HUB_URL``, then ``param_value``, then the default."""
    for candidate in (os.environ.get(HUB_URL_ENV), param_value):
        if candidate is not None and candidate.strip():
            url = _as_url(candidate.strip())
            break
    else:
        url = DEFAULT_HUB_URL
    return url if url.endswith("/") else url + "/"


def fetch_hub_file(key: str, dest_dir: str | os.PathLike, base_url: str | None = None, **download_kwargs: Any) -> Path:
    """Download hub file ``key`` into ``dest_dir/<name>``, verified with its SHA-1; return its path.

    ``base_url`` is passed through :func:`hub_base_url` (so ``CVFLOW_HUB_URL`` still wins);
    ``download_kwargs`` go to :func:`cvflow.data.sources.download.download`.
    """
    try:
        entry = DATA_HUB[key]
    except KeyError:
        known = ", ".join(sorted(DATA_HUB))
        raise DataError(f"unknown data hub file {key!r}; known: {known}") from None
    url = hub_base_url(base_url) + entry.name
    return download(url, Path(dest_dir) / entry.name, sha1=entry.sha1, **download_kwargs)
