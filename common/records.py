"""Result records: the one schema of the project's result files, and their readers.

Every result file is one of the dataclasses below, written with common.files.write_json
(atomically: a reader, a resumed study or a Ctrl-C never sees half a file) and read back with
`read_record` / `read_grid_record`, which turn a corrupt or incomplete file into one
`RecordError` line naming it. Reports and tables are built only from these records (never from
in-memory state), so whatever a table shows can be re-derived from the files in a results folder.
`results/README.md` lists exactly these fields (a test compares the two).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import Callbacks, RunConfig
from common.errors import RecordError, UserError
from common.files import read_json


# ----------------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class RunRecord:
    """One framework's training run (`record-<framework>[-r<k>].json`)."""

    task: str
    framework: str
    model: str
    repeat: int
    seed: int
    config: RunConfig
    callbacks: Callbacks
    params: int
    expected_params: int | None  # from the architecture (ArchSpec); None for transfer models
    train_size: int
    val_size: int
    test_size: int
    test_accuracy: float
    test_loss: float
    # the tested weights (after restore-best) scored in inference mode on the training and
    # validation splits: the three accuracies a lab reports, all of the same weights
    train_accuracy: float
    train_loss: float
    val_accuracy: float
    val_loss: float
    train_seconds: float
    epoch_seconds: list[float]
    first_epoch_overhead_seconds: float
    excluded_from_timing: dict[str, float]
    best_epoch: int
    stopped_early: bool
    diverged: bool
    history: list[dict]
    confusion_matrix: list[list[int]]
    worst_test_predictions: list[dict]
    class_names: list[str]
    split_hash: str
    input_standardisation: dict[str, list[float]]
    environment: dict[str, Any]
    transfer: dict | None = None  # --pipeline transfer only
    # the CPU it trained on (common.machine.Contention); None in records made before it existed
    contention: dict | None = None
    # test-set prediction cost: seconds_per_image at the evaluation batch_size, and the median
    # seconds of one image's prediction (batch1_median_seconds); None in older records
    inference: dict | None = None
    # common.init.weights_hash of the shared initial weights (--init shared, the CNN pipeline);
    # None for native initialisation, transfer runs and older records
    initial_weights_hash: str | None = None

    def to_dict(self) -> dict:
        """The record as written to JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        """A RunRecord from its JSON. Raises RecordError when a required field is missing; unknown
        keys are ignored."""
        values = _known_fields(cls, data)
        values["config"] = RunConfig.from_dict(values["config"])
        values["callbacks"] = Callbacks.from_dict(values["callbacks"])
        return cls(**values)


@dataclass(frozen=True)
class GridPoint:
    """One grid point's cross-validation result (an entry of `GridRecord.results`)."""

    mean_cv_accuracy: float
    std_cv_accuracy: float
    fold_accuracies: list[float]
    mean_fit_seconds: float
    std_fit_seconds: float
    rank: int


@dataclass(frozen=True)
class GridRecord:
    """One framework's GridSearchCV (`grid-<framework>.json` in a grid study folder)."""

    task: str
    framework: str
    model: str
    keys: list[str]  # the grid's settings, in the order given
    labels: list[dict[str, str]]  # per grid point: setting -> its label
    configs: list[RunConfig]  # one per grid point
    cv: int
    scoring: str
    folds_hash: str
    split_hash: str
    train_size: int
    test_size: int
    results: list[GridPoint]  # one per grid point, in `configs` order
    best_index: int
    best_cv_accuracy: float
    params: int
    test_accuracy: float  # of the best point, refitted on the whole training set
    test_loss: float
    refit_seconds: float
    search_seconds: float
    excluded_from_timing: dict[str, float]
    cv_results_csv: str
    environment: dict[str, Any]

    def to_dict(self) -> dict:
        """The record as written to JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GridRecord":
        """A GridRecord from its JSON. Raises RecordError when a required field is missing; unknown
        keys are ignored."""
        values = _known_fields(cls, data)
        values["configs"] = [RunConfig.from_dict(c) for c in values["configs"]]
        values["results"] = [GridPoint(**_known_fields(GridPoint, r)) for r in values["results"]]
        return cls(**values)


@dataclass(frozen=True)
class StudyRow:
    """One row of a sweep's table: a configuration in one framework, read from its record."""

    point: dict[str, str]  # swept setting -> its label
    framework: str
    status: str  # ok | diverged (epoch k) | at chance | stopped early (k of n) | not run
    test_accuracy: float | None = None
    test_loss: float | None = None
    final_val_loss: float | None = None
    train_seconds: float | None = None
    diverged: bool = False

    def to_dict(self) -> dict:
        """The record as written to JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StudyRow":
        """A StudyRow from its JSON. Raises RecordError when a required field is missing."""
        return cls(**_known_fields(cls, data))


SCHEMAS = (RunRecord, GridPoint, GridRecord, StudyRow)


def _known_fields(cls: type, data: Any) -> dict:
    """The dataclass's fields from `data`; a missing required field is a RecordError (records
    of an older version); unknown keys are ignored (records of a newer one)."""
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    missing = [f.name for f in fields if f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecordError(f"no {', '.join(missing)} (not a {cls.__name__}, or written by an "
                          "older version)")
    return {f.name: data[f.name] for f in fields if f.name in data}


def read_record(path: str | Path) -> RunRecord:
    """The RunRecord in the JSON file at `path`. Raises RecordError (one line naming the file) when
    it is unreadable, invalid or incomplete."""
    return _read(path, RunRecord)


def read_grid_record(path: str | Path) -> GridRecord:
    """The GridRecord in the JSON file at `path`. Raises RecordError as read_record does."""
    return _read(path, GridRecord)


def _read(path: str | Path, cls: type) -> Any:
    data = read_json(path)
    try:
        return cls.from_dict(data)
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise RecordError(f"{path}: not a valid {cls.__name__} ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:120]})") from None


def run_records(run_dir: str | Path) -> list[RunRecord]:
    """All run records of a run folder, in a stable order (framework, then repeat)."""
    records = [read_record(p) for p in sorted(Path(run_dir).glob("record-*.json"))]
    return sorted(records, key=lambda r: (r.framework, r.repeat))


@dataclass(frozen=True)
class Found:
    """A run record found under a folder given to `compare.py report`."""

    path: Path  # the record file
    run: str  # its run (or study) folder, relative to the folder it was found under
    record: RunRecord


def collect_records(paths: list[str | Path]) -> tuple[list[Found], list[str]]:
    """Every `record-*.json` under `paths` (run folders, study folders, any parent folder,
    searched recursively, or record files themselves), each once. Returns the readable records
    and one line per file that is not (corrupt, truncated, or an older version without a
    needed field: a RecordError), so a caller can skip those without dropping any silently.
    A path that does not exist is a UserError."""
    found: list[Found] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for given in paths:
        root = Path(given).expanduser()
        if not root.exists():
            raise UserError(f"{given}: no such file or folder")
        files = [root] if root.is_file() else sorted(root.rglob("record-*.json"))
        for path in files:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                record = read_record(path)
            except RecordError as err:
                problems.append(str(err))
                continue
            folder = path.parent.resolve()
            base = root.resolve() if root.is_dir() else folder
            rel = folder.relative_to(base) if folder.is_relative_to(base) else folder
            found.append(Found(path, folder.name if str(rel) == "." else str(rel), record))
    return found, problems
