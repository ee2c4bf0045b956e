"""Report figures, drawn from records only (plus the test images for the worst-classified grid),
saved atomically (common.records.save_figure). Parent process.

Per invocation: learning curves of every framework on shared axes, a confusion matrix per
framework, and the 10 worst-classified test images per framework (misclassified, ranked by the
lowest predicted probability of the true class), each also as markdown for the report; for a
one-key sweep, test accuracy and training seconds against the swept value.
"""

from __future__ import annotations

from pathlib import Path

# Figure objects, never pyplot: drawing to files changes no global state (the backend of a
# notebook that imports compare stays the user's), and needs no display. matplotlib is imported
# where a figure is drawn: it takes ~0.5 s, and a run with --no-plots, a report or a study
# table needs none.
import numpy as np
import pandas as pd

from common.metrics import class_accuracy
from common.files import save_figure
from common.records import RunRecord, StudyRow

# Distinct colours, markers and widths: with shared weights the curves often coincide, and the
# thicker Keras line must stay visible under the PyTorch one.
FRAMEWORK_STYLE = {
    "keras": {"color": "tab:red", "marker": "o", "linewidth": 3.5, "alpha": 0.6},
    "keras-jax": {"color": "tab:green", "marker": "s", "linewidth": 2.8, "alpha": 0.6},
    "keras-torch": {"color": "tab:orange", "marker": "^", "linewidth": 2.2, "alpha": 0.7},
    "torch": {"color": "tab:blue", "marker": "x", "linewidth": 1.5, "alpha": 1.0},
}


def _subplots(*grid: int, figsize: tuple[float, float], squeeze: bool = True):
    """(figure, axes) like pyplot.subplots, on a Figure that belongs to no pyplot state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, squeeze=squeeze)

def first_repeat(records: list[RunRecord]) -> dict[str, RunRecord]:
    """One record per framework (repeat 0) for per-run figures."""
    chosen: dict[str, RunRecord] = {}
    for r in sorted(records, key=lambda r: r.repeat):
        chosen.setdefault(r.framework, r)
    return chosen


def plot_curves(records: list[RunRecord], path: Path) -> None:
    """Loss and accuracy per epoch (training and validation) of every record, one line per framework
    and split, as a PNG at `path`."""
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    for framework, r in first_repeat(records).items():
        epochs = [h["epoch"] for h in r.history]
        style = FRAMEWORK_STYLE.get(framework, {})
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, [h[f"train_{key}"] for h in r.history], linestyle="--",
                    label=f"{framework} train", **style)
            ax.plot(epochs, [h[f"val_{key}"] for h in r.history], linestyle="-",
                    label=f"{framework} validation", **style)
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("cross-entropy loss")
    axes[1].set_title("accuracy")
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(record: RunRecord, path: Path) -> None:
    """The record's test confusion matrix (rows: true class, columns: predicted) as a PNG at `path`."""
    cm = np.asarray(record.confusion_matrix)
    names = record.class_names
    fig, ax = _subplots(figsize=(1.0 + 0.55 * len(names), 0.8 + 0.5 * len(names)))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{record.framework}: test confusion matrix")
    fig.tight_layout()
    save_figure(fig, path)


def plot_worst(record: RunRecord, x_test: np.ndarray, path: Path) -> None:
    """The record's worst-classified test images (`x_test`: the uint8 NHWC test set the record's
    indices point into) with true and predicted class, as a PNG at `path`."""
    worst = record.worst_test_predictions
    names = record.class_names
    cols = 5
    rows = max(1, -(-len(worst) // cols))
    fig, axes = _subplots(rows, cols, figsize=(2.4 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, w in zip(axes.flat, worst):
        image = x_test[w["index"]]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        ax.set_title(f"#{w['rank']} idx {w['index']}\npred {names[w['predicted']]}\n"
                     f"true {names[w['actual']]} p={w['p_actual']:.3f}", fontsize=8)
    fig.suptitle(f"{record.framework}: worst-classified test images")
    fig.tight_layout()
    save_figure(fig, path)


def worst_table(record: RunRecord) -> str:
    """A markdown table of the record's worst test predictions: rank, image index, true and
    predicted class, p(true class)."""
    names = record.class_names
    rows = [{"rank": w["rank"], "index": w["index"], "predicted": names[w["predicted"]],
             "actual": names[w["actual"]], "p(actual)": f"{w['p_actual']:.4f}"}
            for w in record.worst_test_predictions]
    return pd.DataFrame(rows, columns=["rank", "index", "predicted", "actual", "p(actual)"]) \
        .to_markdown(index=False, disable_numparse=True)


def class_accuracy_table(records: list[RunRecord]) -> str:
    """A markdown table of test accuracy per class (rows) and framework (columns), from each
    framework's first repeat."""
    chosen = first_repeat(records)
    names = next(iter(chosen.values())).class_names
    table = pd.DataFrame({"class": names})
    for framework, r in chosen.items():
        table[framework] = [f"{a:.4f}" for a in class_accuracy(np.asarray(r.confusion_matrix))]
    return table.to_markdown(index=False, disable_numparse=True)


def write_figures(records: list[RunRecord], x_test: np.ndarray, run_dir: Path) -> str:
    """Draw every figure into run_dir; return the markdown section that links them."""
    plot_curves(records, run_dir / "curves.png")
    lines = ["## Figures", "", "Learning curves (repeat 0 of each framework):", "",
             "![learning curves](curves.png)", "", "### Class-wise test accuracy", "",
             class_accuracy_table(records), ""]
    for framework, r in first_repeat(records).items():
        plot_confusion(r, run_dir / f"confusion-{framework}.png")
        plot_worst(r, x_test, run_dir / f"worst-{framework}.png")
        lines += [f"### {framework}", "", f"![{framework} confusion matrix](confusion-{framework}.png)",
                  "", "10 worst-classified test images:", "",
                  f"![{framework} worst-classified](worst-{framework}.png)", "", worst_table(r), ""]
    return "\n".join(lines)


def plot_sweep(rows: list[StudyRow], key: str, numeric: bool, log_axis: bool, path: Path) -> None:
    """Test accuracy and training seconds against the swept value, one line per framework;
    diverged runs get a cross, so a chance-level point is not read as a result."""
    labels = list(dict.fromkeys(row.point[key] for row in rows))
    fig, axes = _subplots(1, 2, figsize=(10, 4))

    def x_of(row: StudyRow) -> float:
        return float(row.point[key]) if numeric else labels.index(row.point[key])

    styles = iter([("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")])  # distinct where lines coincide
    for framework in dict.fromkeys(row.framework for row in rows):
        done = sorted((r for r in rows if r.framework == framework and r.test_accuracy is not None),
                      key=x_of)
        xs = [x_of(r) for r in done]
        marker, linestyle = next(styles)
        for ax, column in zip(axes, ("test_accuracy", "train_seconds")):
            line, = ax.plot(xs, [getattr(r, column) for r in done], marker=marker,
                            linestyle=linestyle, label=framework)
            bad = [(x, getattr(r, column)) for x, r in zip(xs, done) if r.diverged]
            if bad:
                ax.plot(*zip(*bad), "x", color=line.get_color(), markersize=12,
                        label=f"{framework} diverged")
    for ax, column in zip(axes, ("test accuracy", "training seconds")):
        ax.set_xlabel(key)
        ax.set_ylabel(column)
        if log_axis:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"sweep over {key}")
    fig.tight_layout()
    save_figure(fig, path)


def plot_cross_run(labels: list[str], groups: list[list[RunRecord]], path: Path) -> None:
    """Across runs (`compare.py report --plot`): validation loss and accuracy per epoch, one
    line per run and framework (its repeat 0), and test accuracy against training seconds, one
    point per run and framework (the mean over its repeats). A run's configuration keeps one
    colour; the framework sets line style and marker, as in the run's own curves."""
    legend_rows = -(-len(labels) // 4)  # four entries a row, below the panels
    fig, axes = _subplots(1, 3, figsize=(16, 4.4 + 0.25 * legend_rows))
    import matplotlib

    colours = matplotlib.colormaps.get_cmap("tab10" if len(groups) <= 20 else "tab20")
    configs: dict[str, int] = {}
    for label, records in zip(labels, groups):
        first = min(records, key=lambda r: r.repeat)
        framework = first.framework
        config = label.rsplit(" ", 1)[0] if label.endswith(f" {framework}") else label
        colour = colours(configs.setdefault(config, len(configs)) % colours.N)
        style = {**FRAMEWORK_STYLE.get(framework, {}), "color": colour}
        style["linestyle"] = "--" if framework == "torch" else "-"
        epochs = [h["epoch"] for h in first.history]
        for ax, key in zip(axes, ("val_loss", "val_accuracy")):
            ax.plot(epochs, [h[key] for h in first.history], label=label, **style)
        axes[2].plot([np.mean([r.train_seconds for r in records])],
                     [np.mean([r.test_accuracy for r in records])], linestyle="none",
                     marker=style.get("marker", "o"), markersize=10, color=colour,
                     markeredgewidth=2, alpha=0.8, label=label)
    for ax, (title, xlabel, ylabel) in zip(axes, (
            ("validation loss", "epoch", "cross-entropy loss"),
            ("validation accuracy", "epoch", "accuracy"),
            ("test accuracy against training time", "training seconds", "test accuracy"))):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=9,
               frameon=False)
    fig.tight_layout(rect=(0, (0.25 * legend_rows + 0.15) / (4.4 + 0.25 * legend_rows), 1, 1))
    save_figure(fig, path)
