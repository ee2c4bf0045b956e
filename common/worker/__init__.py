"""The framework process: what `python -m common.worker FRAMEWORK JOB.json` runs (__main__.py).

One module per job kind: `train` (a training run -> RunRecord), `transfer` (its two
transfer-learning phases and the weight jobs), `grid` (GridSearchCV -> GridRecord), `parity`
(logits and one optimizer step -> .npz); `process` holds what they share. Only framework
processes import this package: the parent (compare.py, common.cli, common.runner, common.studies,
reports) never does, and this package imports no framework itself (the `*_impl` modules are
imported by name when a job runs). Importing the package runs nothing.
"""
