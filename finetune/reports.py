"""Evaluation figures as PNG files: confusion matrix, reliability diagram, age scatter, face galleries.

Matplotlib's object API with the Agg canvas only (no pyplot state), so it runs headless and in threads.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def confusion_matrix_plot(matrix, labels: list[str], path: Path, title: str = "Confusion matrix") -> Path:
    """Rows (true class) normalised to 1; each cell shows the share and the count. A class without faces
    (data from elsewhere) keeps its column of predictions and an empty row, marked as such."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    side = max(3.5, 0.75 * len(labels) + 2.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    empty = totals[:, 0] == 0
    ax.set_yticks(ticks, [f"{name} (no faces)" if empty[i] else name for i, name in enumerate(labels)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            ax.text(j, i, "–" if empty[i] else f"{shares[i, j]:.0%}\n{int(matrix[i, j])}", ha="center",
                    va="center", fontsize=8, color="white" if shares[i, j] > 0.5 else "black")
    ax.set_title(title)
    return _save(fig, path)


def reliability_plot(confidence_before, correct_before, confidence_after, correct_after, path: Path,
                     bins: int = 15, temperature: float = 1.0) -> Path:
    """Accuracy against confidence per bin, before and after temperature scaling, with the sample counts."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = _figure(5.5, 6.0)
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfectly calibrated")
    for confidence, correct, name, colour in (
            (confidence_before, correct_before, "uncalibrated", "tab:orange"),
            (confidence_after, correct_after, f"calibrated (T={temperature:.2f})", "tab:blue")):
        confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
        which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            mask = which == b
            if mask.any():
                xs.append(confidence[mask].mean())
                ys.append(correct[mask].mean())
        ax.plot(xs, ys, marker="o", color=colour, label=name)
        hist.hist(confidence, bins=edges, color=colour, alpha=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram (top-class confidence)")
    ax.legend(loc="upper left", fontsize=8)
    hist.set_xlabel("confidence")
    hist.set_ylabel("faces")
    return _save(fig, path)


def age_scatter_plot(predicted, true, path: Path, interval: tuple[float, float] | None = None) -> Path:
    """Predicted against true age, with the identity line and the stored interval around it."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    top = float(max(predicted.max(initial=1.0), true.max(initial=1.0))) * 1.05
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.scatter(true, predicted, s=6, alpha=0.4)
    line = np.array([0.0, top])
    ax.plot(line, line, color="gray", ls="--", lw=1, label="exact")
    if interval is not None:  # the app shows [pred + low, pred + high]: true lies in it when
        low, high = interval  # pred lies in [true - high, true - low]
        ax.fill_between(line, line - high, line - low, color="tab:blue", alpha=0.12, label="stored interval")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("true age")
    ax.set_ylabel("predicted age")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Predicted vs true age")
    return _save(fig, path)


def gallery_plot(images: list, captions: list[str], path: Path, title: str, columns: int = 6) -> Path:
    """A grid of face crops, each with a caption (true / predicted)."""
    count = max(1, len(images))
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig = _figure(2.0 * columns, 2.1 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, caption in zip(axes, images, captions):
        ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title(caption, fontsize=7)
    if not images:
        axes[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def class_distribution_plot(distribution: dict, path: Path, title: str = "Class distribution") -> Path:
    """Side-by-side bars per class: how often it occurs and how often it is predicted (the seed study's
    check that a model does not simply answer its favourite class)."""
    labels = list(distribution)
    true = [distribution[name]["true"] for name in labels]
    predicted = [distribution[name]["predicted"] for name in labels]
    positions = np.arange(len(labels))
    fig = _figure(max(4.0, 0.9 * len(labels) + 2.0), 3.6)
    ax = fig.add_subplot()
    ax.bar(positions - 0.2, true, width=0.4, label="real", color="tab:gray")
    ax.bar(positions + 0.2, predicted, width=0.4, label="predicted", color="tab:blue")
    ax.set_xticks(positions, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set_ylabel("faces")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)
