"""The params schema of the book's photos (``params.yaml``'s ``photos`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from pydantic import Field

from cvflow.params import HubData, Strict


class PhotosProfile(Strict):
    data: HubData
    seed: int = Field(0, ge=0, description="seed of the generated stand-ins (source: demo)")
