"""Where one run's files live: :class:`RunPaths` (no training code, so reading a run's files runs none)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """Every file one run of ``task`` named ``name`` writes, relative to the project folder ``root``."""

    root: Path
    task: str
    name: str

    @property
    def model(self) -> Path:
        return self.root / "data" / "models" / self.task / f"{self.name}.pt"

    @property
    def checkpoint(self) -> Path:
        return self.root / "data" / "checkpoints" / self.task / f"{self.name}.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / self.task / f"{self.name}.json"

    @property
    def history(self) -> Path:
        return self.root / "metrics" / self.task / f"{self.name}_history.csv"

    @property
    def reports(self) -> Path:
        return self.root / "data" / "reports" / self.task

    @property
    def curves(self) -> Path:
        return self.reports / f"{self.name}_curves.png"
