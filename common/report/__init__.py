"""Every report text of the suite, built only from result records (parent process).

One module per kind of report:
- `run`: the run table (fixed columns: README "Reading the table"; with --repeats each cell is
  mean ± std), the Keras - PyTorch difference lines with a 95% Welch interval, report.md;
- `parity`: the --check-parity table and the feature agreement of transfer backbones;
- `transfer`: the transfer-learning section of a run's report;
- `studies`: the sweep table and the grid tables of the hyperparameter studies;
- `values`: records flattened to named configuration values and metrics, and results.csv;
- `crossrun`: the table across runs (`compare.py report`, compare.load), pooled per run and
  framework; `formats`: that table in markdown, LaTeX, CSV or HTML.
Importing the package runs nothing; import the module you need.
"""
