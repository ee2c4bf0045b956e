"""Keras 3 (TensorFlow backend) side of dlcv-compare; mirrors torch_impl file for file."""
