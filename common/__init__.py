"""Framework-free core of dlcv-compare: data, splits, architecture specs, configs, metrics,
records and reports. Importing this package never imports torch or tensorflow."""
