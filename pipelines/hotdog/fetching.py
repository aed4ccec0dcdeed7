"""``cvflow fetch hotdog``: the hot dog set into ``data/hotdog/{train,test}/{hotdog,not-hotdog}/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.errors import UserError
from cvflow.pipelines.hotdog.common import DATA, cfg

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.hotdog import fetch_hotdog

    data = cfg(params).data
    source = source or data.source
    path = path or data.path
    if source == "local" and path is None:
        raise UserError("source local needs --path DIR_OR_ARCHIVE (e.g. ../shared/data/hotdog)")
    return fetch_hotdog(root / DATA, source, path=path, hub_url=params.common.hub_url, demo=cfg(params).demo,
                        downloads=root / "data" / "downloads")
