"""The jobs the parent hands to a framework process (`python -m common.worker FRAMEWORK JOB.json`):
typed, written as JSON by the parent (common.runner, common.studies) and read back by the worker.
Both processes import this module; it imports no framework and no worker code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from common.config import Callbacks, RunConfig


@dataclass(frozen=True)
class Job:
    """A training run handed to a framework process: the config and where the record goes."""

    config: RunConfig
    record_path: str
    repeat: int = 0
    callbacks: Callbacks = Callbacks()

    def to_dict(self) -> dict:
        """The job file's JSON: kind 'train' and the fields."""
        return {"kind": "train", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        """A Job from its job file's JSON (to_dict's form)."""
        return cls(config=RunConfig.from_dict(data["config"]), record_path=data["record_path"],
                   repeat=data.get("repeat", 0), callbacks=Callbacks.from_dict(data["callbacks"]))


@dataclass(frozen=True)
class GridJob:
    """A grid search handed to a framework process: one resolved config per grid point."""

    keys: tuple[str, ...]  # the grid's settings, in the order given
    labels: tuple[dict[str, str], ...]  # per point: setting -> label (the CSV's first columns)
    configs: tuple[RunConfig, ...]  # one per grid point, in order
    cv: int
    record_path: str
    csv_path: str

    def to_dict(self) -> dict:
        """The job file's JSON: kind 'grid' and the fields."""
        return {"kind": "grid", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GridJob":
        """A GridJob from its job file's JSON (to_dict's form)."""
        return cls(keys=tuple(data["keys"]), labels=tuple(data["labels"]),
                   configs=tuple(RunConfig.from_dict(c) for c in data["configs"]),
                   cv=data["cv"], record_path=data["record_path"], csv_path=data["csv_path"])

