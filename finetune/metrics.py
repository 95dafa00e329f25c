"""The numbers of one split: accuracy, F1, calibration error, MAE, and the same per group of people."""
from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from hub.config import AgeBand

from .calibration import INTERVAL_COVERAGE, expected_calibration_error, nll, softmax, years_from

RECALL_COLUMNS_UP_TO = 4  # per-group recall of every class for tasks with this many classes or fewer


def classification_metrics(logits: np.ndarray, targets: np.ndarray, labels: list[str],
                           temperature: float = 1.0) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    targets = np.asarray(targets, dtype=int)
    ids = list(range(len(labels)))
    predicted = logits.argmax(axis=1)
    raw, calibrated = softmax(logits), softmax(logits, temperature)
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=ids,
                                                                     zero_division=0)
    # data from elsewhere may lack some of the model's classes: macro-F1 averages the classes present (a
    # class without faces has no recall), while accuracy and the rest count every face
    present = [i for i in ids if support[i] > 0]
    absent = set(ids) - set(present)
    nan = float("nan")
    return {
        "n": int(len(targets)),
        "accuracy": float(accuracy_score(targets, predicted)) if len(targets) else nan,
        "macro_f1": float(f1_score(targets, predicted, labels=present, average="macro", zero_division=0))
        if present else nan,
        "classes_without_data": [labels[i] for i in sorted(absent)],
        "temperature": float(temperature),
        "ece": expected_calibration_error(calibrated, targets),
        "ece_uncalibrated": expected_calibration_error(raw, targets),
        "nll": nll(logits, targets, temperature),
        "nll_uncalibrated": nll(logits, targets),
        "per_class": {name: {"precision": float(precision[i]) if i not in absent or (predicted == i).any() else nan,
                             "recall": nan if i in absent else float(recall[i]),
                             "f1": nan if i in absent else float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(labels)},
        # the seed study's check: does the model predict each class about as often as it occurs?
        "class_distribution": {name: {"true": int((targets == i).sum()), "predicted": int((predicted == i).sum())}
                               for i, name in enumerate(labels)},
        "confusion_matrix": confusion_matrix(targets, predicted, labels=ids).tolist(),
    }


def regression_metrics(outputs: np.ndarray, targets: np.ndarray, bands: tuple[AgeBand, ...],
                       interval: dict) -> dict:
    targets = np.asarray(targets, float)
    years = years_from(outputs)
    error = years - targets
    low = np.maximum(years + interval["low"], 0.0)
    high = years + interval["high"]
    per_band = {}
    for band in bands:
        mask = (targets >= band.low) & (targets < band.high)
        if mask.any():
            per_band[band.name] = {"n": int(mask.sum()), "mae": float(np.abs(error[mask]).mean()),
                                   "bias": float(error[mask].mean())}
    return {
        "n": int(len(targets)),
        "mae": float(np.abs(error).mean()) if len(error) else float("nan"),
        "rmse": float(np.sqrt((error ** 2).mean())) if len(error) else float("nan"),
        "median_ae": float(np.median(np.abs(error))) if len(error) else float("nan"),
        "bias": float(error.mean()) if len(error) else float("nan"),  # > 0: predicts too old
        "interval": {"low": interval["low"], "high": interval["high"],
                     "coverage_nominal": interval.get("coverage", INTERVAL_COVERAGE),
                     "coverage": float(((targets >= low) & (targets <= high)).mean()) if len(targets) else
                     float("nan")},
        "per_band": per_band,
    }


def _decade(value: float) -> str:
    start = int(value // 10 * 10)
    return f"{start}-{start + 9}"


def group_values(split, column: str, age_bands: tuple[AgeBand, ...]) -> tuple[list[str], list[str]]:
    """Each row's group as text, and the groups in display order (class order, band order). Ages fall
    into the manifest's age bands (decades when it has none)."""
    from datasets import ClassLabel

    feature = split.features[column]
    values = split[column]
    if isinstance(feature, ClassLabel):
        names = feature.names
        return [names[v] if v is not None and v >= 0 else "unknown" for v in values], list(names) + ["unknown"]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
    if numeric and (column == "age" or len(set(values)) > 20):
        if not age_bands:
            text = ["unknown" if v is None else _decade(float(v)) for v in values]
            return text, sorted(set(text) - {"unknown"}, key=lambda t: int(t.split("-")[0])) + ["unknown"]
        text = [next((b.name for b in age_bands if v is not None and b.contains(float(v))), "unknown")
                for v in values]
        return text, [band.name for band in age_bands] + ["unknown"]
    text = ["unknown" if v is None else str(v) for v in values]
    return text, sorted(set(text))


def older_key(column: str, from_age: int) -> str:
    """The name of `column`'s table over the faces `from_age` and over (see group_metrics)."""
    return f"{column}, aged {from_age}+"


OLDER_KEY = re.compile(r"^(?P<column>.*), aged (?P<age>\d+)\+$")  # older_key's names, read back by the card


def group_metrics(split, columns: list[str], kind: str, correct_or_error: np.ndarray,
                  age_bands: tuple[AgeBand, ...], targets: np.ndarray | None = None,
                  labels: list[str] | None = None, from_age: int | None = None) -> dict:
    """Accuracy (classification; with `targets` and few `labels` also each class's recall) or MAE and
    bias (regression) per value of every group column. With `from_age` and an `age` column, the tables
    again over the faces that old and over, as "<column>, aged <from_age>+": groups made of different
    ages (many babies in one) otherwise mix an age effect into the group's figure."""
    result = {}
    for column in columns:
        if column not in split.column_names:
            continue
        values, order = group_values(split, column, age_bands)
        values = np.asarray(values, dtype=object)
        table = {}
        for name in order:
            mask = values == name
            if not mask.any():
                continue
            if kind == "classification":
                table[name] = {"n": int(mask.sum()), "accuracy": float(correct_or_error[mask].mean())}
                if targets is not None and labels and len(labels) <= RECALL_COLUMNS_UP_TO:
                    table[name]["recall"] = {
                        label: float(correct_or_error[mask & (targets == i)].mean())
                        if (mask & (targets == i)).any() else None for i, label in enumerate(labels)}
            else:
                table[name] = {"n": int(mask.sum()), "mae": float(np.abs(correct_or_error[mask]).mean()),
                               "bias": float(correct_or_error[mask].mean())}
        result[column] = table
    if from_age is not None and "age" in split.column_names:
        ages = np.asarray([-1 if a is None else a for a in split["age"]], dtype=float)
        keep = np.flatnonzero(ages >= from_age)
        kept = split.select(keep).add_column("every", ["all"] * len(keep))  # each table ends with all the older
        older = group_metrics(kept, [c for c in columns if c != "age"] + ["every"], kind, correct_or_error[keep],
                              age_bands, None if targets is None else np.asarray(targets)[keep], labels)
        every = older.pop("every", {})
        result.update({older_key(column, from_age): {**table, **every} for column, table in older.items()})
    return result


def to_json(value: Any) -> str:
    """Strict JSON: NaN (an empty split's metrics) becomes null."""
    def clean(item):
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(v) for v in item]
        return item
    return json.dumps(clean(value), indent=2)


def headline(metrics: dict) -> dict:
    """The few numbers stored in config.json (shown by the app) and the model card's model-index."""
    test = metrics["test"]
    if metrics["kind"] == "classification":
        numbers = {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "test_ece": test["ece"]}
    else:
        numbers = {"test_mae": test["mae"], "test_rmse": test["rmse"],
                   "test_interval_coverage": test["interval"]["coverage"]}
    numbers = {k: round(v, 4) if math.isfinite(v) else None for k, v in numbers.items()}
    numbers["test_samples"] = test["n"]
    return numbers


def summary_lines(metrics: dict, split: str = "test") -> list[str]:
    test = metrics["test"]
    if metrics["kind"] == "classification":
        lines = [f"[{split}] accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  (n={test['n']})",
                 f"[calibration] T={test['temperature']:.3f}  ECE {test['ece_uncalibrated']:.4f} -> "
                 f"{test['ece']:.4f}  NLL {test['nll_uncalibrated']:.4f} -> {test['nll']:.4f}"]
        absent = test.get("classes_without_data") or []
        if absent:
            present = len(metrics["labels"]) - len(absent)
            lines.append(f"[classes] no faces of {', '.join(absent)} in this data: macro-F1 is over the {present} "
                         f"classes present; accuracy over all {test['n']} faces")
        return lines
    interval = test["interval"]
    return [f"[{split}] MAE {test['mae']:.2f}  RMSE {test['rmse']:.2f} years  bias {test['bias']:+.2f}  "
            f"(n={test['n']})",
            f"[interval] prediction {interval['low']:+.1f}/{interval['high']:+.1f} years covers "
            f"{interval['coverage']:.1%} of {split} faces (target {interval['coverage_nominal']:.0%})"]
