"""One head-only training, data to model folder: embed the cropped splits, fit the head, measure it on
validation and test against the majority-class baseline, and write the folder (weights, config.json,
metrics.json, the study's figures, model card). Shared by the app's tab and `--head-only`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hub.config import TaskConfig

from .data import SPLITS, TaskData
from .head_only import Deadline, Head, HeadSettings, Progress, fit_head, majority_baseline, save_model, split_features

# the seed study's conclusion, shown with every report
CAVEAT = ("Such a model shows what a network latches onto in these photos (lighting, photo style, age, "
          "gender, clothing, who happened to be photographed), not what a face reveals about a person. "
          "Do not use it to judge or decide about anyone.")


@dataclass
class HeadResult:
    output: Path
    metrics: dict
    head: Head
    labels: list[str]


def _stage(progress: Progress | None, low: float, high: float) -> Progress | None:
    """A progress callback for one stage, mapped into [low, high] of the whole bar."""
    if progress is None:
        return None
    return lambda fraction, what: progress(low + (high - low) * fraction, what)


def train_head(task: TaskConfig, data: TaskData, settings: HeadSettings, output: str | Path, cfg, *,
               progress: Progress | None = None, deadline: Deadline | None = None,
               cache_dir: Path | None = None, source: str = "", started: float | None = None) -> HeadResult:
    """`cfg` is the TrainConfig written beside the model (train_config.yaml, the card)."""
    from .card import write_model_card
    from .config import save_config
    from .evaluate import classification_metrics, evaluate_outputs, headline, to_json
    from .reports import class_distribution_plot

    started = time.perf_counter() if started is None else started
    output = Path(output)
    labels = list(data.labels)
    task = dataclasses.replace(task, labels=tuple(labels))
    embedded = time.perf_counter()
    features, targets = {}, {}
    for index, name in enumerate(SPLITS):
        stage = _stage(progress, index / len(SPLITS), (index + 1) / len(SPLITS))
        features[name] = split_features(data.splits[name], settings, name, cache_dir, stage, deadline)
        targets[name] = np.asarray(data.splits[name]["label"], dtype=int)
    embedded = time.perf_counter() - embedded
    if deadline:
        deadline.check()
    if progress:
        progress(1.0, "fitting the head")
    fitted = time.perf_counter()
    head = fit_head(features["train"], targets["train"], features["validation"], targets["validation"], len(labels))
    fitted = time.perf_counter() - fitted

    val_logits, test_logits = head.logits(features["validation"]), head.logits(features["test"])
    validation = classification_metrics(val_logits, targets["validation"], labels, head.temperature)
    validation.pop("confusion_matrix", None)
    result = evaluate_outputs(test_logits, targets["test"], data.splits["test"], task, labels, data.groups, output,
                              temperature=head.temperature)
    class_distribution_plot(result["test"]["class_distribution"], output / "class_distribution.png",
                            f"Test faces: real vs predicted (n={len(targets['test'])})")
    result["figures"]["class_distribution"] = "class_distribution.png"
    majority = int(np.bincount(targets["train"], minlength=len(labels)).argmax())
    metrics = {
        "task": task.name, "kind": task.kind, "labels": labels, "model": settings.backbone, "split": "test",
        **result, "validation": validation, "calibration": {"temperature": round(head.temperature, 4)},
        "baseline": {"majority_class": labels[majority],
                     "validation": majority_baseline(targets["train"], targets["validation"]),
                     "test": majority_baseline(targets["train"], targets["test"])},
        "test_time_flip": settings.flip,
        "data": {"source": source or cfg.data, "sizes": {name: len(data.splits[name]) for name in SPLITS},
                 "skipped": dict(data.skipped), "group_columns": list(data.groups)},
        "training": {"head_only": True, "c": head.c, "input_size": settings.input_size,
                     "features": int(head.weight.shape[1]),
                     "seconds": {"embedding": round(embedded, 2), "fitting": round(fitted, 2)},
                     "procedure": procedure_text(settings, head)},
    }
    metrics["headline"] = headline(metrics)
    save_model(settings, head, labels, output, {"task": task.name, "kind": task.kind, "metrics": metrics["headline"]})
    metrics["training"]["seconds"]["total"] = round(time.perf_counter() - started, 2)
    (output / "metrics.json").write_text(to_json(metrics))
    save_config(cfg, output / "train_config.yaml")
    (output / "no_face.log").write_text("".join(f"{row}\n" for row in data.no_face))
    write_model_card(output, task, cfg, metrics, data)
    return HeadResult(output=output, metrics=metrics, head=head, labels=labels)


def procedure_text(settings: HeadSettings, head: Head) -> str:
    return (f"Head only: the face backbone `{settings.backbone}` stayed frozen. Each face crop "
            f"({settings.input_size}px{', averaged with its mirror image' if settings.flip else ''}) was "
            f"embedded once into {head.weight.shape[1]} pooled features, and an L2-regularised logistic "
            f"regression (scikit-learn; C = {head.c:g}, chosen on the validation split's log-loss; features "
            "standardised, the standardisation folded into the weights) became the model's Linear classifier. "
            f"Temperature {head.temperature:.3f} fitted on the validation split.")


def summary_lines(metrics: dict) -> list[str]:
    """The report's headline, as the CLI prints it and the app shows it."""
    baseline, test, val = metrics["baseline"], metrics["test"], metrics["validation"]
    return [f"[validation] accuracy {val['accuracy']:.3f} (n={val['n']}); always answering "
            f"'{baseline['majority_class']}': {baseline['validation']:.3f}",
            f"[test] accuracy {test['accuracy']:.3f} (n={test['n']}); always answering "
            f"'{baseline['majority_class']}': {baseline['test']:.3f}"]


def main(cfg) -> Path:
    """`python -m finetune --task field --data DIR --head-only`: the app's fast path from the command line,
    features cached in --cache-dir (a second run on the same data only fits the head)."""
    from hub.config import load_manifest

    from .data import load_task_data
    from .evaluate import PushError, push_folder, resolved_config
    from .head_only import torch_threads

    started = time.perf_counter()
    manifest = load_manifest(cfg.manifest)
    task = manifest.task(cfg.task)
    if not task.is_classification:
        raise SystemExit(f"error: --head-only fits a classifier; task {task.name!r} is a {task.kind}")
    own = manifest.train_your_own
    backbone = cfg.init_from or manifest.resolve(own.backbone)
    settings = HeadSettings(backbone=backbone, input_size=cfg.input_size or own.input_size, flip=cfg.test_flip,
                            seed=cfg.seed, threads=cfg.threads)
    output = Path(cfg.output or manifest.resolve(task.models[0]))
    resolved = dataclasses.replace(resolved_config(cfg, task, output), model=backbone, init_from=backbone,
                                   input_size=settings.input_size, epochs=0)
    shown = {"what": None}

    def report(fraction: float, what: str) -> None:
        if what != shown["what"]:
            print(f"[head-only] {what}", flush=True)
            shown["what"] = what

    with torch_threads(cfg.threads):
        data = load_task_data(task, cfg.data, image_column=cfg.image_column, label_column=cfg.label_column,
                              size=settings.input_size, detect=cfg.detect_faces, margin=manifest.detector.margin,
                              drop_classes=cfg.drop_classes, split=cfg.split, seed=cfg.seed,
                              max_samples=cfg.max_samples, cache_dir=cfg.cache_dir)
        print(f"[data] {task.name}: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
              + f"; skipped {data.skipped}; labels {data.labels}")
        result = train_head(task, data, settings, output, resolved, progress=report,
                            cache_dir=Path(cfg.cache_dir), source=resolved.data, started=started)
    for line in summary_lines(result.metrics):
        print(line)
    seconds = result.metrics["training"]["seconds"]
    print(f"[saved] {output} in {seconds['total']:.1f} s (embedding {seconds['embedding']:.1f} s, head "
          f"{seconds['fitting']:.1f} s); {len(data.no_face)} image(s) without a face in no_face.log")
    if list(task.labels) != result.labels:
        print(f"[next] the app serves it once spaces.yaml says tasks.{task.name}.labels: {result.labels}")
    if cfg.push_to_hub:
        try:
            print(f"[hub] uploaded to {push_folder(output, cfg.push_to_hub)}")
        except PushError as err:
            raise SystemExit(f"error: {err}") from None
    return output
