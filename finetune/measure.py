"""One split measured: its metrics, per-group tables and figures (PNG files in a folder)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hub.config import AgeBand, TaskConfig

from . import reports
from .calibration import ECE_BINS, INTERVAL_COVERAGE, softmax, years_from
from .metrics import classification_metrics, group_metrics, regression_metrics

GALLERY_SIZE = 12


def _gallery(split, indices, captions, path: Path, title: str) -> str:
    indices = [int(i) for i in indices]
    images = split.select(indices)["image"] if indices else []
    reports.gallery_plot(list(images), captions, path, title)
    return path.name


def measure_split(outputs: np.ndarray, targets: np.ndarray, split, task: TaskConfig, labels: list[str],
                  groups: list[str], out_dir: Path, *, age_bands: tuple[AgeBand, ...], temperature: float = 1.0,
                  interval: dict | None = None, figures: bool = True) -> dict:
    """Metrics of one split (rows in `split` order) and, with `figures`, its PNG reports in `out_dir`.

    Returns {"test": split metrics, "groups": per-group tables, "figures": {name: file}}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    if task.is_classification:
        targets = np.asarray(targets, dtype=int)
        metrics = classification_metrics(outputs, targets, labels, temperature)
        probs, raw = softmax(outputs, temperature), softmax(outputs)
        predicted = probs.argmax(axis=1)
        correct = (predicted == targets).astype(float)
        tables = group_metrics(split, groups, "classification", correct, age_bands, targets, labels,
                               from_age=task.dataset.groups_from_age)
        if figures:
            reports.confusion_matrix_plot(metrics["confusion_matrix"], labels, out_dir / "confusion_matrix.png",
                                          f"{task.title}: confusion matrix (n={len(targets)})")
            written["confusion_matrix"] = "confusion_matrix.png"
            reports.reliability_plot(raw.max(1), raw.argmax(1) == targets, probs.max(1), correct,
                                     out_dir / "reliability.png", bins=ECE_BINS, temperature=temperature)
            written["reliability"] = "reliability.png"
            confidence = probs.max(axis=1)
            wrong = np.flatnonzero(correct == 0)
            wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:GALLERY_SIZE]
            written["confident_mistakes"] = _gallery(
                split, wrong, [f"true {labels[targets[i]]}\npred {labels[predicted[i]]} {confidence[i]:.0%}"
                               for i in wrong], out_dir / "gallery_confident_mistakes.png",
                "Most confident mistakes")
            ranked = np.sort(probs, axis=1)
            margin = ranked[:, -1] - (ranked[:, -2] if probs.shape[1] > 1 else 0.0)
            order = np.argsort(probs, axis=1)
            ambiguous = np.argsort(margin, kind="stable")[:GALLERY_SIZE]
            written["ambiguous"] = _gallery(
                split, ambiguous, [f"true {labels[targets[i]]}\n{labels[order[i, -1]]} {probs[i, order[i, -1]]:.0%}"
                                   f" / {labels[order[i, -2]]} {probs[i, order[i, -2]]:.0%}" for i in ambiguous],
                out_dir / "gallery_ambiguous.png", "Most ambiguous faces (smallest top-2 margin)")
    else:
        interval = interval or {"low": -5.0, "high": 5.0, "coverage": INTERVAL_COVERAGE}
        metrics = regression_metrics(outputs, targets, task.bands, interval)
        years = years_from(outputs)
        error = years - np.asarray(targets, float)
        tables = group_metrics(split, groups, "regression", error, age_bands,
                               from_age=task.dataset.groups_from_age)
        if figures:
            reports.age_scatter_plot(years, targets, out_dir / "age_scatter.png",
                                     (interval["low"], interval["high"]))
            written["age_scatter"] = "age_scatter.png"
            worst = np.argsort(-np.abs(error), kind="stable")[:GALLERY_SIZE]
            written["largest_errors"] = _gallery(
                split, worst, [f"true {targets[i]:.0f}\npred {years[i]:.0f}" for i in worst],
                out_dir / "gallery_largest_errors.png", "Largest age errors")
    return {"test": metrics, "groups": tables, "figures": written}
