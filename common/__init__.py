"""Framework-free core of dlcv-compare; importing it never imports torch, TensorFlow, Keras or JAX.

The pipeline, stage by stage (P: the parent process, compare.py; W: a framework process):
- config: flags (P), plan (P), config, tasks, specs, knobs, transfer, optim, augment, frameworks;
- data: data/ (loaders, cache, images; P and W), data/prepare (W: split and standardise);
- run: launch, preflight and runner (P) start `python -m common.worker` (W), which trains with
  loop, init, splits, metrics and machine; jobs carries the work from P to W;
- results: records and files (both), report/, figures, studies (P); cli ties P together.
tests/test_layering.py keeps the two processes' code apart.
"""
