"""The frameworks a comparison can run, as the columns of its table (framework-free).

`keras` is Keras 3 on TensorFlow; `keras-jax` and `keras-torch` are the same keras_impl code on
Keras' JAX and PyTorch backends (the control for "is it Keras or is it TensorFlow?"); `torch` is
native PyTorch (torch_impl). Each runs in its own process (common.worker), which sets
KERAS_BACKEND before anything imports Keras. Whether one is installed is decided by
importlib.util.find_spec, which imports nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from common.errors import UserError


@dataclass(frozen=True)
class Framework:
    """One column of the comparison: a framework (or Keras backend) and what its process needs."""
    name: str
    impl: str  # the package with its code: keras_impl or torch_impl
    keras_backend: str | None  # KERAS_BACKEND for its process; None: not Keras
    needs: tuple[str, ...]  # importable modules it runs on
    install: str  # what to install when one is missing


FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (
    Framework("keras", "keras_impl", "tensorflow", ("keras", "tensorflow"),
              "pip install tensorflow-cpu==2.21.0 keras==3.15.1 (or tensorflow on a GPU machine)"),
    Framework("keras-jax", "keras_impl", "jax", ("keras", "jax"),
              'pip install "jax[cpu]==0.10.2" keras==3.15.1 (on a CUDA machine: "jax[cuda12]")'),
    Framework("keras-torch", "keras_impl", "torch", ("keras", "torch"),
              "pip install torch==2.14.1 keras==3.15.1"),
    Framework("torch", "torch_impl", None, ("torch", "torchvision"),
              "pip install torch==2.14.1 torchvision==0.29.1"),
)}
BOTH = ("keras", "torch")  # --framework both, the default
REFERENCE = "torch"  # differences and parity are against this column when it ran
NAMES_HELP = "both (= keras,torch), all (every installed one), or a comma list of " + ", ".join(FRAMEWORKS)


def missing_modules(name: str) -> list[str]:
    """The modules framework `name` needs that cannot be imported here (found without importing them)."""
    return [m for m in FRAMEWORKS[name].needs if importlib.util.find_spec(m) is None]


def installed() -> tuple[str, ...]:
    """The frameworks whose modules are all installed, in FRAMEWORKS order."""
    return tuple(name for name in FRAMEWORKS if not missing_modules(name))


def parse_frameworks(text: str) -> tuple[str, ...]:
    """--framework: `both`, `all`, or a comma list; every one must be installed (one line)."""
    text = text.strip()
    if text == "all":
        names = installed()
        if not names:
            raise UserError("all: no framework is installed here; pip install -r requirements.txt")
        return names
    names = BOTH if text == "both" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        raise UserError(f"unknown framework {', '.join(unknown) or '(empty list)'}; give "
                        f"{NAMES_HELP}")
    if len(set(names)) != len(names):
        raise UserError(f"{text} names a framework twice")
    for name in names:
        missing = missing_modules(name)
        if missing:
            raise UserError(f"{name} needs {' and '.join(missing)}, which is not installed "
                            f"here: {FRAMEWORKS[name].install}")
    return names


def reference(names: tuple[str, ...] | list[str]) -> str:
    """The column the others are compared with: torch when it ran, else the first."""
    return REFERENCE if REFERENCE in names else names[0]


def is_keras(name: str) -> bool:
    """Whether `name` is Keras on some backend (False for torch and for unknown names)."""
    return FRAMEWORKS[name].keras_backend is not None if name in FRAMEWORKS else False


def check_grid_versions(names: tuple[str, ...] | list[str]) -> None:
    """--grid drives Keras through scikeras, whose estimators break inside GridSearchCV with
    scikit-learn 1.6.x ("'super' object has no attribute '__sklearn_tags__'"; measured with
    scikeras 0.13.0: 1.5.2, 1.7.2 and the pinned 1.9.1 work, 1.6.1 fails, and Colab has shipped
    1.6.1). One line before anything is written instead of a failed fit."""
    if "keras" not in names:
        return
    try:
        sklearn = importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        return
    if sklearn.split(".")[:2] == ["1", "6"]:
        raise UserError(f"--grid on keras: scikeras does not run with scikit-learn {sklearn}; "
                        "pip install 'scikit-learn>=1.7' (or give --framework torch)")
