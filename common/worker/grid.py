"""The grid job: GridSearchCV (scikeras / skorch) over one resolved config per grid point, on
folds both frameworks share -> cv_results_ CSV and a GridRecord. scikit-learn and pandas are
imported when the job runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.config import RunConfig
from common.data.prepare import PreparedData, prepare_data
from common.files import write_json, write_text
from common.jobs import GridJob
from common.metrics import score
from common.records import GridPoint, GridRecord
from common.splits import index_hash
from common.worker.process import environment, impl


@dataclass(frozen=True)
class GridBackend:
    """What keras_impl.grid and torch_impl.grid each provide (same names on both sides)."""

    make_estimator: Callable[[RunConfig, PreparedData], Any]  # scikeras / skorch classifier
    estimator_params: Callable[[RunConfig], dict]  # a grid point's config -> estimator params
    to_input: Callable[[np.ndarray], np.ndarray]  # prepared NHWC float32 -> the model's layout
    predict_logits: Callable[[Any, np.ndarray], np.ndarray]  # fitted estimator -> logits
    count_params: Callable[[Any], int]  # fitted estimator -> trainable parameters


SCORING = "accuracy"


def cv_folds(y: np.ndarray, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled folds as explicit (train, test) index pairs, the same in both
    processes (GridSearchCV takes the list as `cv=`)."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def param_grid(configs: tuple[RunConfig, ...], backend: GridBackend) -> list[dict[str, list]]:
    """One single-point grid per configuration, so cv_results_ row i is grid point i.

    Only the estimator parameters that differ between points are listed; the rest stay as
    make_estimator set them, which keeps cv_results_' param columns readable.
    """
    params = [backend.estimator_params(c) for c in configs]
    varying = [k for k in params[0] if any(p[k] != params[0][k] for p in params)]
    return [{k: [p[k]] for k in varying} for p in params]


def run_grid_job(framework: str, job: GridJob) -> GridRecord:
    """GridSearchCV over the job's points; writes cv_results_ (CSV), then the grid record."""
    import pandas as pd
    from sklearn.model_selection import GridSearchCV

    base = job.configs[0]  # every point shares the data settings (train_size is not gridable)
    facts = {**impl(framework, "train").setup(base.threads, base.seed, base.deterministic),
             "framework": framework}
    device = impl(framework, "train").resolve_device(base.device)
    backend: GridBackend = impl(framework, "grid").BACKEND
    t0 = time.perf_counter()
    data = prepare_data(base)
    data_seconds = time.perf_counter() - t0
    folds = cv_folds(data.y_train, job.cv, base.split_seed)
    search = GridSearchCV(backend.make_estimator(base, data), param_grid(job.configs, backend),
                          scoring=SCORING, cv=folds, refit=True, n_jobs=1, verbose=1,
                          error_score=np.nan)
    t0 = time.perf_counter()
    search.fit(backend.to_input(data.x_train), data.y_train)
    search_seconds = time.perf_counter() - t0
    test = score(backend.predict_logits(search.best_estimator_, backend.to_input(data.x_test)),
                 data.y_test)

    cv_results = pd.DataFrame(search.cv_results_)
    for i, key in enumerate(job.keys):  # the suite's names first, then sklearn's own columns
        cv_results.insert(i, key, [point[key] for point in job.labels])
    write_text(job.csv_path, cv_results.to_csv(index=False))

    res = search.cv_results_
    record = GridRecord(
        task=base.task, framework=framework, model=base.model, keys=list(job.keys),
        labels=list(job.labels),
        configs=list(job.configs), cv=job.cv, scoring=SCORING,
        folds_hash=index_hash(*(part for fold in folds for part in fold)),
        split_hash=data.split_hash, train_size=len(data.x_train), test_size=len(data.x_test),
        results=[GridPoint(
            mean_cv_accuracy=float(res["mean_test_score"][i]),
            std_cv_accuracy=float(res["std_test_score"][i]),
            fold_accuracies=[float(res[f"split{f}_test_score"][i]) for f in range(job.cv)],
            mean_fit_seconds=float(res["mean_fit_time"][i]),
            std_fit_seconds=float(res["std_fit_time"][i]),
            rank=int(res["rank_test_score"][i])) for i in range(len(job.configs))],
        best_index=int(search.best_index_), best_cv_accuracy=float(search.best_score_),
        params=backend.count_params(search.best_estimator_),
        test_accuracy=test.accuracy, test_loss=test.loss,
        refit_seconds=float(search.refit_time_), search_seconds=search_seconds,
        excluded_from_timing={"data_loading_seconds": data_seconds},
        cv_results_csv=Path(job.csv_path).name,
        environment=environment(base.threads, device, facts),
    )
    write_json(job.record_path, record)
    return record

