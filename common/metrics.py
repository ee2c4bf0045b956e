"""The one metric implementation: both frameworks hand over logits, this computes the numbers.

Validation and test loss/accuracy in every record come from here, so a difference between the
frameworks can never be a difference in how the metric was computed. Accuracy and the confusion
matrix are numpy one-liners with scikit-learn's definitions (accuracy_score,
confusion_matrix; tests/test_common.py checks them against scikit-learn): every framework
process computes them, and importing scikit-learn would add about a second to its start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax


@dataclass(frozen=True)
class Scores:
    """Loss and accuracy of one set of predictions (common.metrics.score)."""
    loss: float  # mean softmax cross-entropy (natural log), computed in float64
    accuracy: float  # fraction in [0, 1]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of integer labels under softmax(logits); stable for large logits."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def score(logits: np.ndarray, labels: np.ndarray) -> Scores:
    """Loss and accuracy of `logits` (N, classes) against int `labels` (N,).

    Loss: mean softmax cross-entropy in nats, computed in float64; nan when any logit is not
    finite (the accuracy is still the argmax's); both nan for no labels. Accuracy: a fraction in
    [0, 1]. Raises
    ValueError when logits are not 2-D or their count differs from the labels'."""
    logits = np.asarray(logits)
    if len(labels) == 0:  # no validation set (--val-size 0): nothing to score
        return Scores(loss=float("nan"), accuracy=float("nan"))
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits of shape {logits.shape} do not match {len(labels)} labels")
    if not np.all(np.isfinite(logits)):
        return Scores(loss=float("nan"), accuracy=accuracy(logits, labels))
    return Scores(loss=cross_entropy(logits, labels), accuracy=accuracy(logits, labels))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of rows of `logits` (N, classes) whose argmax is the int label (N,):
    sklearn.metrics.accuracy_score(labels, argmax) for 1-D labels. Raises ValueError when the
    counts differ."""
    predicted, labels = np.asarray(logits).argmax(axis=1), np.asarray(labels)
    if labels.shape != predicted.shape:
        raise ValueError(f"logits of shape {np.shape(logits)} do not match labels {labels.shape}")
    return float(np.mean(predicted == labels))


def confusion(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (the argmax of `logits` (N, classes)) of int
    `labels` (N,): an int64 array (num_classes, num_classes), sklearn.metrics.confusion_matrix
    with labels=range(num_classes). Raises ValueError for labels or predictions outside the
    classes."""
    predicted = np.asarray(logits).argmax(axis=1)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or len(labels) != len(predicted) or np.any(labels < 0) or np.any(
            labels >= num_classes) or np.any(predicted >= num_classes):
        raise ValueError(f"labels {labels.shape} and logits {np.shape(logits)} do not fit "
                         f"{num_classes} classes")
    cells = labels * num_classes + predicted
    return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes,
                                                                           num_classes)


def worst_predictions(logits: np.ndarray, labels: np.ndarray, k: int = 10) -> list[dict]:
    """The k misclassified examples with the lowest predicted probability of their true class."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    predicted = logp.argmax(axis=1)
    p_true = np.exp(logp[np.arange(len(labels)), labels])
    wrong = np.flatnonzero(predicted != labels)
    ranked = wrong[np.argsort(p_true[wrong], kind="stable")][:k]
    return [{"rank": r + 1, "index": int(i), "predicted": int(predicted[i]),
             "actual": int(labels[i]), "p_actual": float(p_true[i])} for r, i in enumerate(ranked)]


def class_accuracy(confusion_matrix: np.ndarray) -> np.ndarray:
    """Per true class: correct / total (nan for a class absent from the test set)."""
    cm = np.asarray(confusion_matrix, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(axis=1)
