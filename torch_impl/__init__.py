"""PyTorch side of dlcv-compare; mirrors keras_impl file for file, function for function (except
resnet50v2.py: PyTorch's twin of a graph only Keras ships)."""
