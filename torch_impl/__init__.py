"""PyTorch side of dlcv-compare; mirrors keras_impl file for file, function for function."""
