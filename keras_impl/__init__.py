"""Keras 3 side of dlcv-compare; mirrors torch_impl file for file.

Imported first in every Keras process (common.worker imports its modules by name). The backend
(KERAS_BACKEND: tensorflow, the default, jax or torch) is fixed before Keras is first imported.
"""

import importlib
import os
import sys
from contextlib import contextmanager
from typing import Iterator

# Set before keras/tensorflow are first imported by any module of this package.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines below errors


@contextmanager
def _hidden(*modules: str) -> Iterator[None]:
    """Inside, `import M` raises ImportError for each of `modules` not yet imported (a None
    entry in sys.modules, Python's own rule), as on a machine without them; restored after."""
    hide = [m for m in modules if m not in sys.modules]
    sys.modules.update(dict.fromkeys(hide))
    try:
        yield
    finally:
        for m in hide:
            del sys.modules[m]


# Importing Keras (TensorFlow imports it too, as tf.keras) imports scikit-learn (0.75 s here) for
# its own keras.wrappers.SKLearn*, and pandas (0.3 s) to accept DataFrames in fit(): this suite
# uses neither (grid search goes through scikeras, which imports scikit-learn itself), so Keras
# is imported with both hidden and takes its branch for their absence (keras/src/wrappers/
# {sklearn_wrapper,utils,fixes}.py, keras/src/trainers/data_adapters/array_slicing.py: `try:
# import ... except ImportError`). A job that needs either imports it afterwards as usual.
with _hidden("sklearn", "pandas"):
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        from common.worker.process import silenced_stderr

        # TensorFlow's C++ start-up lines ("oneDNN custom operations are on", absl's notice)
        # come from static initialisers that no log level reaches: import it with stderr closed.
        with silenced_stderr():
            importlib.import_module("tensorflow")
    importlib.import_module("keras")

if os.environ["KERAS_BACKEND"] != "tensorflow":
    from keras.src.utils import module_utils

    # Where Keras checks for TensorFlow it imports it if installed, whatever the backend
    # (keras.utils.set_random_seed also seeds it, for tf.data): mark it absent, as on a machine
    # without it, so that a JAX or PyTorch-backend process never loads it (TensorFlow and
    # PyTorch in one process can crash). Importing Keras itself does not load it.
    module_utils.tensorflow._available = False
