"""Calibration, test metrics, reports and the model folder; and `python -m finetune evaluate`.

`finish_training` runs at the end of `finetune.train.main` (rank 0, best weights loaded): it fits the
temperature (classification) or the age interval (regression) on the validation split, measures the test
split, and writes the model folder the app loads, with metrics.json, figures and the model card.

`main` measures any model folder of ours on any data with the same metrics and figures:

    python -m finetune evaluate models/age --data ../shared/data/utkface [--split test|all] [--out DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hub.config import AgeBand, TaskConfig, load_manifest

ECE_BINS = 15
INTERVAL_COVERAGE = 0.8   # the age interval holds the 10th..90th percentile of validation residuals
GALLERY_SIZE = 12
# buckets for an `age` group column when the manifest has no age task with bands
FIXED_AGE_BANDS = tuple(AgeBand(name, low, high) for name, low, high in (
    ("0-2", 0, 3), ("3-9", 3, 10), ("10-19", 10, 20), ("20-29", 20, 30), ("30-39", 30, 40),
    ("40-49", 40, 50), ("50-59", 50, 60), ("60-69", 60, 70), ("70+", 70, math.inf)))
UPLOAD_IGNORE = [".train/*", "*.pt", "*.tmp", "eval-*/*", ".cache/*"]


class PushError(RuntimeError):
    """Uploading the model folder to the Hub failed; the message says why and how to retry."""


# --- calibration ---------------------------------------------------------------------------------

def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(targets, dtype=int)]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The T minimising the validation NLL of softmax(logits / T), searched over log T."""
    from scipy.optimize import minimize_scalar

    if len(logits) == 0:
        return 1.0
    found = minimize_scalar(lambda log_t: nll(logits, targets, math.exp(log_t)),
                            bounds=(math.log(low), math.log(high)), method="bounded",
                            options={"xatol": 1e-4})
    return float(math.exp(found.x))


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """|accuracy - confidence| of the top class, averaged over equal-width bins weighted by their size."""
    if len(probs) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(probs))


def fit_age_interval(predicted: np.ndarray, targets: np.ndarray, coverage: float = INTERVAL_COVERAGE) -> dict:
    """Offsets in years added to a prediction: the residual (true - predicted) quantiles around it."""
    if len(predicted) == 0:
        return {"low": -5.0, "high": 5.0, "coverage": coverage}
    residual = np.asarray(targets, float) - np.asarray(predicted, float)
    tail = (1.0 - coverage) / 2.0
    low, high = np.quantile(residual, [tail, 1.0 - tail])
    return {"low": round(float(low), 3), "high": round(float(high), 3), "coverage": coverage}


def years_from(outputs: np.ndarray) -> np.ndarray:
    """What the app shows: the regression output, never below zero (hub.models.AttributeModel._age)."""
    return np.maximum(np.asarray(outputs, float).reshape(len(outputs), -1)[:, 0], 0.0)


# --- metrics -------------------------------------------------------------------------------------------

def classification_metrics(logits: np.ndarray, targets: np.ndarray, labels: list[str],
                           temperature: float = 1.0) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    targets = np.asarray(targets, dtype=int)
    ids = list(range(len(labels)))
    predicted = logits.argmax(axis=1)
    raw, calibrated = softmax(logits), softmax(logits, temperature)
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=ids,
                                                                     zero_division=0)
    return {
        "n": int(len(targets)),
        "accuracy": float(accuracy_score(targets, predicted)),
        "macro_f1": float(f1_score(targets, predicted, labels=ids, average="macro", zero_division=0)),
        "temperature": float(temperature),
        "ece": expected_calibration_error(calibrated, targets),
        "ece_uncalibrated": expected_calibration_error(raw, targets),
        "nll": nll(logits, targets, temperature),
        "nll_uncalibrated": nll(logits, targets),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(labels)},
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


def age_bands_for(task: TaskConfig, manifest=None) -> tuple[AgeBand, ...]:
    """Buckets for an age column: this task's bands, the manifest's age task's, or fixed decades."""
    if task.bands:
        return task.bands
    if manifest is not None:
        for other in manifest.tasks.values():
            if other.kind == "regression" and other.bands:
                return other.bands
    return FIXED_AGE_BANDS


def group_values(split, column: str, age_bands: tuple[AgeBand, ...]) -> tuple[list[str], list[str]]:
    """Each row's group as text, and the groups in display order (class order, band order)."""
    from datasets import ClassLabel

    feature = split.features[column]
    values = split[column]
    if isinstance(feature, ClassLabel):
        names = feature.names
        return [names[v] if v is not None and v >= 0 else "unknown" for v in values], list(names) + ["unknown"]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
    if numeric and (column == "age" or len(set(values)) > 20):
        names = [band.name for band in age_bands]
        text = []
        for v in values:
            band = next((b.name for b in age_bands if v is not None and b.contains(float(v))), "unknown")
            text.append(band)
        return text, names + ["unknown"]
    text = ["unknown" if v is None else str(v) for v in values]
    return text, sorted(set(text))


RECALL_COLUMNS_UP_TO = 4  # per-group recall of every class for tasks with this many classes or fewer


def group_metrics(split, columns: list[str], kind: str, correct_or_error: np.ndarray,
                  age_bands: tuple[AgeBand, ...], targets: np.ndarray | None = None,
                  labels: list[str] | None = None) -> dict:
    """Accuracy (classification; with `targets` and few `labels` also each class's recall) or MAE and
    bias (regression) per value of every group column."""
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
        return [f"[{split}] accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  (n={test['n']})",
                f"[calibration] T={test['temperature']:.3f}  ECE {test['ece_uncalibrated']:.4f} -> "
                f"{test['ece']:.4f}  NLL {test['nll_uncalibrated']:.4f} -> {test['nll']:.4f}"]
    interval = test["interval"]
    return [f"[{split}] MAE {test['mae']:.2f}  RMSE {test['rmse']:.2f} years  bias {test['bias']:+.2f}  "
            f"(n={test['n']})",
            f"[interval] prediction {interval['low']:+.1f}/{interval['high']:+.1f} years covers "
            f"{interval['coverage']:.1%} of {split} faces (target {interval['coverage_nominal']:.0%})"]


# --- one split: metrics + figures ------------------------------------------------------------------

def _gallery(split, indices, captions, path: Path, title: str) -> str:
    from .reports import gallery_plot

    indices = [int(i) for i in indices]
    images = split.select(indices)["image"] if indices else []
    gallery_plot(list(images), captions, path, title)
    return path.name


def evaluate_outputs(outputs: np.ndarray, targets: np.ndarray, split, task: TaskConfig, labels: list[str],
                     groups: list[str], out_dir: Path, *, temperature: float = 1.0,
                     interval: dict | None = None, age_bands: tuple[AgeBand, ...] = FIXED_AGE_BANDS,
                     figures: bool = True) -> dict:
    """Metrics of one split (rows in `split` order) and, with `figures`, its PNG reports in `out_dir`.

    Returns {"test": split metrics, "groups": per-group tables, "figures": {name: file}}.
    """
    from . import reports

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    if task.is_classification:
        targets = np.asarray(targets, dtype=int)
        metrics = classification_metrics(outputs, targets, labels, temperature)
        probs, raw = softmax(outputs, temperature), softmax(outputs)
        predicted = probs.argmax(axis=1)
        correct = (predicted == targets).astype(float)
        tables = group_metrics(split, groups, "classification", correct, age_bands, targets, labels)
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
        tables = group_metrics(split, groups, "regression", error, age_bands)
        if figures:
            reports.age_scatter_plot(years, targets, out_dir / "age_scatter.png",
                                     (interval["low"], interval["high"]))
            written["age_scatter"] = "age_scatter.png"
            worst = np.argsort(-np.abs(error), kind="stable")[:GALLERY_SIZE]
            written["largest_errors"] = _gallery(
                split, worst, [f"true {targets[i]:.0f}\npred {years[i]:.0f}" for i in worst],
                out_dir / "gallery_largest_errors.png", "Largest age errors")
    return {"test": metrics, "groups": tables, "figures": written}


# --- the end of training ---------------------------------------------------------------------------

def _plain_loader(loader):
    """The same data without a DistributedSampler: rank 0 alone measures every row, in order."""
    from torch.utils.data import DataLoader, DistributedSampler

    if not isinstance(loader.sampler, DistributedSampler):
        return loader
    return DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=False, num_workers=0)


def resolved_config(cfg, task: TaskConfig, output: Path):
    """The TrainConfig with the manifest's defaults filled in, so the YAML alone reproduces the run."""
    from .hub_datasets import default_source
    spec = task.dataset
    return dataclasses.replace(
        cfg, data=cfg.data or default_source(spec), model=cfg.model or task.backbone,
        input_size=cfg.input_size or task.input_size, output=str(output),
        image_column=cfg.image_column or spec.image_column, label_column=cfg.label_column or spec.label_column,
        detect_faces=(not spec.already_cropped) if cfg.detect_faces is None else cfg.detect_faces,
        resume=False)


def _inherited(cfg) -> dict:
    """What a model started from another keeps in config.json: where its weights came from, and
    whether its norms stay frozen when it is trained again."""
    from .train import uses_frozen_bn
    kept = {"freeze_bn": True} if uses_frozen_bn(cfg) else {}
    if cfg.init_from:
        from hub.models import read_model_config
        source = read_model_config(Path(cfg.init_from)).get("pretrained_from")
        if source:
            kept["pretrained_from"] = source
    return kept


def finish_training(net, data, task: TaskConfig, cfg, output, device, *, val_loader, test_loader,
                    train_speed: float, best_epoch: int) -> Path:
    """Calibrate on validation, measure on test, write the model folder (+ metrics, figures, card), push."""
    from hub.models import save_checkpoint

    from .card import write_model_card
    from .config import save_config
    from .train import run_inference

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(cfg.manifest)
    resolved = resolved_config(cfg, task, output)
    val_outputs, val_targets = run_inference(net, _plain_loader(val_loader), device, cfg.test_flip)
    test_outputs, test_targets = run_inference(net, _plain_loader(test_loader), device, cfg.test_flip)
    bands = age_bands_for(task, manifest)

    calibration: dict[str, Any]
    if task.is_classification:
        temperature = fit_temperature(val_outputs, val_targets)
        calibration = {"temperature": round(temperature, 4)}
        validation = classification_metrics(val_outputs, val_targets, data.labels, temperature)
        result = evaluate_outputs(test_outputs, test_targets, data.splits["test"], task, data.labels,
                                  data.groups, output, temperature=temperature, age_bands=bands)
    else:
        interval = fit_age_interval(years_from(val_outputs), val_targets)
        calibration = {"age_interval": interval}
        validation = regression_metrics(val_outputs, val_targets, task.bands, interval)
        result = evaluate_outputs(test_outputs, test_targets, data.splits["test"], task, data.labels,
                                  data.groups, output, interval=interval, age_bands=bands)
    validation.pop("confusion_matrix", None)

    metrics = {
        "task": task.name, "kind": task.kind, "labels": list(data.labels), "model": resolved.model,
        "split": "test", **result, "validation": validation, "calibration": calibration,
        "test_time_flip": cfg.test_flip,
        "data": {"source": resolved.data, "sizes": {name: len(part) for name, part in data.splits.items()},
                 "skipped": dict(data.skipped), "group_columns": list(data.groups)},
        "training": {"best_epoch": best_epoch + 1, "epochs": cfg.epochs,
                     "train_speed_img_per_s": round(float(train_speed), 1)},
    }
    metrics["headline"] = headline(metrics)

    save_checkpoint(net, output, labels=list(data.labels), input_size=resolved.input_size,
                    extra={"task": task.name, "kind": task.kind, **calibration, "test_time_flip": cfg.test_flip,
                           "metrics": metrics["headline"], **_inherited(cfg)},
                    dtype=cfg.save_dtype)
    (output / "metrics.json").write_text(to_json(metrics))
    save_config(resolved, output / "train_config.yaml")
    (output / "no_face.log").write_text("".join(f"{row}\n" for row in data.no_face))
    write_model_card(output, task, resolved, metrics, data)

    for line in summary_lines(metrics):
        print(line)
    print(f"[saved] {output}: model.safetensors, config.json, metrics.json, README.md, "
          f"{len(result['figures'])} figures; {len(data.no_face)} image(s) without a face in no_face.log")
    if cfg.push_to_hub:
        try:
            url = push_folder(output, cfg.push_to_hub)
        except PushError as err:
            raise SystemExit(f"error: {err}") from None
        print(f"[hub] uploaded to {url}")
    return output


def push_folder(folder: Path, repo_id: str) -> str:
    """Create the model repo if needed and upload the folder (without training state)."""
    from huggingface_hub import HfApi, get_token

    retry = f"The model is saved in {folder}; upload it later with `hf upload {repo_id} {folder} .`."
    if not get_token():
        raise PushError(f"--push-to-hub {repo_id}: no Hugging Face token found. Run `hf auth login` or set "
                        f"HF_TOKEN (a token with write access). {retry}")
    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          ignore_patterns=UPLOAD_IGNORE, commit_message="Upload model trained with finetune")
    except Exception as err:  # noqa: BLE001 - network, permission, offline mode: one clear message
        raise PushError(f"--push-to-hub {repo_id}: upload failed ({err.__class__.__name__}: {err}). {retry}") \
            from err
    return f"https://huggingface.co/{repo_id}"


# --- `python -m finetune evaluate` ------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune evaluate",
                                     description="Measure a model folder on data: metrics.json and figures.")
    parser.add_argument("model_dir", help="a model folder written by `python -m finetune`")
    parser.add_argument("--data", help="Hub id, parquet/arrow, image folder or index.csv folder; default: "
                        "the data the model was trained on (train_config.yaml), else the manifest's")
    parser.add_argument("--task", help="default: config.json's task")
    parser.add_argument("--split", choices=["test", "all"], default="test",
                        help="test: the held-out split (same seed and fractions as training); all: every row")
    parser.add_argument("--out", help="default: MODEL_DIR/eval-<data name>")
    parser.add_argument("--manifest")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-column")
    parser.add_argument("--label-column")
    parser.add_argument("--detect-faces", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--max-samples", type=int, help="cap per split, for quick runs")
    parser.add_argument("--cache-dir")
    parser.add_argument("--workers", type=int, default=0)
    return parser


def _data_name(source: str) -> str:
    name = Path(source.rstrip("/")).name or "data"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.utils.data import DataLoader

    from hub.models import AttributeModel, read_model_config

    from .config import TrainConfig, from_yaml
    from .data import SPLITS, DataError, load_task_data
    from .hub_datasets import default_source
    from .train import TorchFaces, run_inference

    args = build_parser().parse_args(argv)
    folder = Path(args.model_dir)
    config = read_model_config(folder)
    manifest = load_manifest(args.manifest)
    name = args.task or config.get("task")
    if name not in manifest.tasks:
        raise SystemExit(f"error: which task is {folder}? config.json says {config.get('task')!r}; "
                         f"pass --task (one of {sorted(manifest.tasks)})")
    task = manifest.task(name)
    if task.is_classification and config.get("label_names"):  # user data may have its own classes
        task = dataclasses.replace(task, labels=tuple(config["label_names"]))
    trained = from_yaml(folder / "train_config.yaml") if (folder / "train_config.yaml").is_file() else TrainConfig()
    model = AttributeModel.load(task, str(folder))
    regression = not task.is_classification

    source = args.data or trained.data or default_source(task.dataset)
    data = load_task_data(
        task, source, image_column=args.image_column or trained.image_column,
        label_column=args.label_column or trained.label_column, size=model.input_size,
        detect=args.detect_faces if args.detect_faces is not None else trained.detect_faces,
        margin=manifest.detector.margin, drop_classes=trained.drop_classes, split=trained.split,
        seed=trained.seed, max_samples=args.max_samples, cache_dir=args.cache_dir or trained.cache_dir)
    if args.split == "all":
        from datasets import concatenate_datasets
        split = concatenate_datasets([data.splits[part] for part in SPLITS])
    else:
        split = data.splits["test"]
    if task.is_classification and list(data.labels) != model.labels:
        unknown = sorted(set(data.labels) - set(model.labels))
        if unknown:
            raise DataError(f"the data has class(es) {unknown} the model does not know ({model.labels})")
        remap = {i: model.labels.index(label) for i, label in enumerate(data.labels)}
        features = split.features.copy()
        from datasets import ClassLabel
        features["label"] = ClassLabel(names=model.labels)
        split = split.map(lambda b: {"label": [remap[v] for v in b["label"]]}, batched=True, features=features)

    loader = DataLoader(TorchFaces(split, model.transform, regression), batch_size=args.batch_size,
                        shuffle=False, num_workers=args.workers)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    outputs, targets = run_inference(model.net.to(device), loader, device, model.flip)
    out = Path(args.out) if args.out else folder / f"eval-{_data_name(source)}"
    result = evaluate_outputs(
        outputs, targets, split, task, model.labels, data.groups, out, temperature=model.temperature,
        interval={"low": model.interval[0], "high": model.interval[1],
                  "coverage": (config.get("age_interval") or {}).get("coverage", INTERVAL_COVERAGE)},
        age_bands=age_bands_for(task, manifest))
    metrics = {"task": task.name, "kind": task.kind, "labels": model.labels, "model": str(folder),
               "split": args.split, **result,
               "data": {"source": source, "rows": len(split), "skipped": dict(data.skipped),
                        "group_columns": list(data.groups)}}
    metrics["headline"] = headline(metrics)
    (out / "metrics.json").write_text(to_json(metrics))
    (out / "no_face.log").write_text("".join(f"{row}\n" for row in data.no_face))
    print(f"[eval] {folder} on {source} ({args.split}, {len(split)} faces; skipped {data.skipped})")
    for line in summary_lines(metrics, args.split):
        print(line)
    print(f"[saved] {out}: metrics.json, {len(result['figures'])} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
