"""Keras 3 (TensorFlow backend) side of dlcv-compare; mirrors torch_impl file for file."""

import os

# Set before keras/tensorflow are first imported by any module of this package.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
