"""The Keras grid-search backend (common.worker runs it in a Keras process). Mirrors
torch_impl/grid.py.

scikit-learn's GridSearchCV (run by common.worker.run_grid_job) over a scikeras KerasClassifier.
The model is the suite's own: built from the ArchSpec by keras_impl.model, started from the shared
initial weights, compiled here with the suite's optimizer hyperparameters (keras_impl.optim) and
cross-entropy on logits, exactly as keras_impl.train compiles it. The network therefore outputs
logits, not probabilities: scikeras' predict (argmax, used by the "accuracy" scorer) is unaffected,
and the test metrics come from the logits through common.metrics.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from scikeras.utils.transformers import ClassifierLabelEncoder
from scikeras.wrappers import KerasClassifier

from common.config import RunConfig
from common.init import initial_weights
from common.loop import EVAL_BATCH_SIZE
from common.specs import ArchSpec
from common.data.prepare import PreparedData
from common.worker.grid import GridBackend
from keras_impl.model import build_model, count_params as count_model_params, load_weights
from keras_impl.optim import make_optimizer
from keras_impl.train import resolve_device


class DatasetClassesClassifier(KerasClassifier):
    """A KerasClassifier whose labels and output layer are the dataset's classes, 0..num_classes-1,
    in every fit. scikeras' default encoder takes the classes present in each fold's training
    labels, so a fold missing a class would build a smaller network than skorch (whose
    module__num_classes and `classes` are fixed) and shift the labels above the missing one.
    `model__num_classes` is the routed build_classifier argument (scikeras stores it as an
    attribute)."""

    @property
    def target_encoder(self) -> ClassifierLabelEncoder:
        return ClassifierLabelEncoder(loss=self.loss,
                                      categories=[np.arange(self.model__num_classes)])


def build_classifier(arch: ArchSpec, optimizer_hp: dict, seed: int, init: str, num_classes: int,
                     meta: dict) -> keras.Model:
    """scikeras' model builder: `meta` carries the input shape of the fit data; `num_classes` is
    the dataset's (never the fold's)."""
    input_shape = tuple(int(d) for d in meta["X_shape_"][1:])
    model = build_model(arch, input_shape, num_classes)
    if init == "shared":
        load_weights(model, initial_weights(arch, input_shape, num_classes, seed))
    # Compiled here, not by scikeras: the optimizer gets every suite hyperparameter explicitly,
    # and the loss is the same cross-entropy on logits that the torch side uses.
    model.compile(optimizer=make_optimizer(optimizer_hp),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def estimator_params(cfg: RunConfig) -> dict:
    """A grid point's config as KerasClassifier parameters (model__* go to build_classifier)."""
    return {"model__arch": cfg.arch, "model__optimizer_hp": cfg.optimizer,
            "model__seed": cfg.seed, "model__init": cfg.init, "batch_size": cfg.batch_size,
            "epochs": cfg.epochs, "random_state": cfg.seed}


def make_estimator(cfg: RunConfig, data: PreparedData) -> DatasetClassesClassifier:
    """The scikit-learn estimator GridSearchCV clones per fold, set up from the grid's first
    config and the prepared data's shape and classes (one GridBackend function; mirrors
    torch_impl.grid.make_estimator)."""
    resolve_device(cfg.device)  # --device cpu hides the GPUs from TensorFlow
    # Every GridSearchCV fit builds a new model, so TensorFlow warns that it "retraced" the
    # predict function; that is expected here, not a performance bug worth a warning per fit.
    tf.get_logger().setLevel("ERROR")
    # shuffle=True: Keras draws each epoch's batch order itself (seeded by random_state); the
    # grid compares folds and scores, not identical mini-batch sequences.
    return DatasetClassesClassifier(model=build_classifier, shuffle=True, verbose=0,
                                    model__num_classes=data.num_classes,
                                    predict__batch_size=EVAL_BATCH_SIZE, **estimator_params(cfg))


def to_input(x: np.ndarray) -> np.ndarray:
    """Prepared NHWC float32 images as this framework's model takes them (NHWC)."""
    return x  # Keras is channels-last, like the prepared arrays


def predict_logits(estimator: KerasClassifier, x: np.ndarray) -> np.ndarray:
    """Logits (N, classes) of the fitted estimator's model for inputs from to_input, inference mode."""
    return estimator.model_.predict(x, batch_size=EVAL_BATCH_SIZE, verbose=0)


def count_params(estimator: KerasClassifier) -> int:
    """Trainable parameters of the fitted estimator's model."""
    return count_model_params(estimator.model_)


BACKEND = GridBackend(make_estimator=make_estimator, estimator_params=estimator_params,
                      to_input=to_input, predict_logits=predict_logits, count_params=count_params)

