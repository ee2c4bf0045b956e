"""Keras 3 side of dlcv-compare; mirrors torch_impl file for file.

Imported first in every Keras process (common.worker imports its modules by name). The backend
(KERAS_BACKEND: tensorflow, the default, jax or torch) is fixed before Keras is first imported.
"""

import os

# Set before keras/tensorflow are first imported by any module of this package.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines below errors

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import importlib

    from common.worker.process import silenced_stderr

    # TensorFlow's C++ start-up lines ("oneDNN custom operations are on", absl's notice) come
    # from static initialisers that no log level reaches: import it once with stderr closed.
    with silenced_stderr():
        importlib.import_module("tensorflow")
else:
    from keras.src.utils import module_utils

    # Where Keras checks for TensorFlow it imports it if installed, whatever the backend
    # (keras.utils.set_random_seed also seeds it, for tf.data): mark it absent, as on a machine
    # without it, so that a JAX or PyTorch-backend process never loads it (TensorFlow and
    # PyTorch in one process can crash). Importing Keras itself does not load it.
    module_utils.tensorflow._available = False
