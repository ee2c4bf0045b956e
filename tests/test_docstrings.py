"""Every public function and class of the project says what it takes and returns: a docstring,
read with `ast` (nothing imported). Exempt: methods a framework calls by its own contract
(forward, call, step, ...), and a Trainer's methods, which common.loop.Trainer documents once."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK_HOOKS = {"forward", "call", "compute_output_shape", "step", "initialize", "train",
                   "on_train_batch_begin", "on_train_batch_end", "target_encoder",
                   "keras_layers"}
TRAINER_METHODS = {"train_epoch", "predict", "get_weights", "set_weights", "set_lr"}


def undocumented() -> list[str]:
    files = [ROOT / "compare.py"] + [p for pkg in ("common", "keras_impl", "torch_impl")
                                     for p in sorted((ROOT / pkg).rglob("*.py"))]
    missing = []

    def visit(body: list[ast.stmt], path: Path, owner: str | None) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            exempt = owner is not None and (
                node.name in FRAMEWORK_HOOKS
                or (owner.endswith("Trainer") and node.name in TRAINER_METHODS))
            if not exempt and not ast.get_docstring(node):
                name = f"{owner}.{node.name}" if owner else node.name
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, path, node.name)

    for path in files:
        visit(ast.parse(path.read_text()).body, path, None)
    return missing


def test_every_public_function_and_class_has_a_docstring():
    assert undocumented() == []
