"""The model card's result tables, from metrics.json: the test figures, the figures' captions, and the
results per group of people (finetune/metrics.py writes them; finetune/card.py places them)."""
from __future__ import annotations

from hub.config import TaskConfig

from .metrics import OLDER_KEY


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.3f}" if value == value else "–"
        return str(value)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def evaluation(task: TaskConfig, metrics: dict) -> str:
    test = metrics["test"]
    parts = [f"Held-out test split, {test['n']} faces (never used for training, early stopping or "
             f"calibration). Full numbers in `metrics.json`."]
    if task.is_classification:
        parts.append(markdown_table(["metric", "value"], [
            ["accuracy", test["accuracy"]], ["macro F1", test["macro_f1"]],
            ["ECE (15 bins), before → after temperature", f"{test['ece_uncalibrated']:.3f} → {test['ece']:.3f}"],
            ["NLL, before → after temperature", f"{test['nll_uncalibrated']:.3f} → {test['nll']:.3f}"]]))
        distribution = test["class_distribution"]
        parts.append("Per class (with how often each class occurs and is predicted):\n\n" + markdown_table(
            ["class", "precision", "recall", "F1", "support", "predicted"],
            [[name, row["precision"], row["recall"], row["f1"], row["support"], distribution[name]["predicted"]]
             for name, row in test["per_class"].items()]))
    else:
        parts.append(markdown_table(["metric", "value"], [
            ["MAE (years)", test["mae"]], ["RMSE (years)", test["rmse"]], ["median absolute error", test["median_ae"]],
            ["bias (mean predicted − true)", test["bias"]], ["interval coverage", test["interval"]["coverage"]]]))
        if test["per_band"]:
            parts.append("By true age band:\n\n" + markdown_table(
                ["band", "faces", "MAE", "bias"],
                [[name, row["n"], row["mae"], row["bias"]] for name, row in test["per_band"].items()]))
    figures = metrics.get("figures", {})
    captions = {"confusion_matrix": "Confusion matrix (rows: true class, normalised; counts below)",
                "reliability": "Reliability diagram before and after temperature scaling",
                "confident_mistakes": "The most confident mistakes", "ambiguous": "The most ambiguous faces",
                "age_scatter": "Predicted vs true age", "largest_errors": "The largest age errors"}
    if figures:
        parts.append("\n\n".join(f"**{captions.get(key, key)}**\n\n![{key}]({name})"
                                 for key, name in figures.items()))
    return "\n\n".join(parts)


def groups(task: TaskConfig, metrics: dict) -> str:
    tables = metrics.get("groups") or {}
    if not tables:
        return ("The training data has no group labels (such as age, gender or skin tone), so how the "
                "errors spread across groups of people could not be measured. Expect them to be uneven.")
    parts = ["Test-split results per group (small groups give noisy numbers; look at the counts):"]
    for column, table in tables.items():
        older = OLDER_KEY.match(column)
        title = (f"{older['column']}, faces aged {older['age']} and over (groups hold different shares of children; "
                 "this leaves their age out)") if older else column
        if task.is_classification:
            classes = list(next(iter(table.values()), {}).get("recall") or {})
            rows = [[value, row["n"], row["accuracy"],
                     *("–" if row["recall"][c] is None else row["recall"][c] for c in classes)]
                    for value, row in table.items()]
            header = [column, "faces", "accuracy", *(f"recall {c}" for c in classes)]
            parts.append(f"By {title}:\n\n" + markdown_table(header, rows))
        else:
            rows = [[value, row["n"], row["mae"], row["bias"]] for value, row in table.items()]
            parts.append(f"By {title}:\n\n" + markdown_table([column, "faces", "MAE", "bias"], rows))
    return "\n\n".join(parts)
