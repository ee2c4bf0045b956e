"""Checks that need the data, a device or a framework process, after the plan and before anything
is written: devices, sizes and classes against the loaded data, transfer weights in each
framework's cache. Parent process (it asks framework processes through common.launch).
"""

from __future__ import annotations

import dataclasses

from common.augment import parse_augment
from common.data import Dataset
from common.errors import UserError
from common.launch import call_worker
from common.plan import Plan
from common.specs import layer_table
from common.splits import make_split
from common.transfer import is_path


def check_devices(plan: Plan) -> None:
    """--device cuda: each framework's process says whether it can use a GPU, before anything
    is written (auto and cpu always work); --precision mixed_float16 also needs every framework
    on a GPU (CPUs train in bfloat16, not float16)."""
    cfg = plan.config
    if cfg.device != "cuda" and cfg.precision != "mixed_float16":
        return
    if plan.executor.kind == "ray":  # the GPUs are the cluster's: common.ray_executor checks
        return
    for framework in plan.frameworks:
        device = call_worker(framework, {"kind": "device", "device": cfg.device}).splitlines()[-1]
        if cfg.precision == "mixed_float16" and device != "cuda":
            raise UserError(f"--precision mixed_float16: {framework} runs on the CPU here, which "
                            "does not train in float16; use --precision mixed_bfloat16 or "
                            "float32, or a GPU")


def check_data(plan: Plan, ds: Dataset) -> None:
    """Sizes, shapes and augmentations against the loaded data: one line, nothing written."""
    shape = input_shape(ds)
    for cfg in plan.points:
        split = make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
        if plan.study_kind == "grid":
            check_cv_classes(ds.y_train[split.train], ds.class_names, plan.cv)
        if not cfg.transfer:
            layer_table(cfg.arch, shape, len(ds.class_names))
        parse_augment(",".join(cfg.augment), channels=shape[-1])
        if cfg.normalize == "imagenet" and not cfg.transfer and shape[-1] != 3:
            raise UserError(f"--normalize imagenet needs RGB images; {cfg.task} has "
                            f"{shape[-1]} channel(s): use standardize, unit or symmetric")


def check_cv_classes(y_train, class_names: tuple[str, ...], cv: int) -> None:
    """--grid's stratified folds need every class at least `cv` times in the training split:
    StratifiedKFold would otherwise leave a class out of some folds' training data (scikit-learn
    only warns). Raises UserError naming the classes that are too small."""
    counts = {name: int((y_train == label).sum()) for label, name in enumerate(class_names)}
    small = {name: n for name, n in counts.items() if n < cv}
    if small:
        listed = ", ".join(f"{name!r} ({n})" for name, n in small.items())
        raise UserError(f"--cv {cv}: {len(small)} classes have fewer training images than folds: "
                        f"{listed}; lower --cv or add images to those classes")


def check_weights(plan: Plan) -> None:
    """Before anything is written: PATH weights are converted once for Keras by a PyTorch
    process (which reads them with torch.load, weights_only); `imagenet` weights must be in each
    framework's cache (downloaded now unless --no-download). A backbone torchvision lacks
    (`torch_from_keras`: ResNet50V2) runs Keras' ImageNet weights on the PyTorch side too: a
    Keras process fetches them and converts them once to plain arrays for the PyTorch twin (so
    offline, the one line names Keras' file also for --framework torch)."""
    cfg, transfer = plan.config, plan.config.transfer
    job = {"transfer": dataclasses.asdict(transfer), "cache_dir": cfg.cache_dir}
    if is_path(transfer.weights):
        call_worker("torch", {"kind": "convert", **job})
    elif transfer.weights == "imagenet":  # every framework's missing file named in the one line
        kinds = {framework: "fetch" for framework in plan.frameworks}
        if "torch" in kinds and transfer.info.torch_from_keras:
            del kinds["torch"]
            kinds["keras"] = "convert-imagenet"  # fetches Keras' file too: one job, one line
        errors = []
        for framework, kind in kinds.items():
            try:
                call_worker(framework, {"kind": kind, **job, "download": cfg.download})
            except UserError as err:
                errors.append(str(err))
        if errors:
            raise UserError("; ".join(errors))


def input_shape(ds: Dataset) -> tuple[int, int, int]:
    """The (H, W, C) of the dataset's images."""
    return tuple(int(d) for d in ds.x_train.shape[1:])

