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

from .data import SPLITS, TaskData
from .head_only import Deadline, Head, HeadSettings, Progress, fit_head, majority_baseline, save_model, split_features
from .settings import Settings

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


def train_head(settings: Settings, data: TaskData, head: HeadSettings, *, progress: Progress | None = None,
               deadline: Deadline | None = None, cache_dir: Path | None = None, started: float | None = None,
               shown: Settings | None = None) -> HeadResult:
    """`settings` (finetune.settings.resolve, with the backbone as --init-from) name the task, the output
    folder and what the card and train_config.yaml say (or `shown`'s, e.g. without the server's temporary
    paths); `head` how to embed and fit."""
    from .card import write_model_card
    from .config import save_config
    from .measure import measure_split
    from .metrics import classification_metrics, headline, to_json
    from .reports import class_distribution_plot

    started = time.perf_counter() if started is None else started
    output, labels = settings.output, list(data.labels)
    task = dataclasses.replace(settings.task, labels=tuple(labels))
    embedded = time.perf_counter()
    features, targets = {}, {}
    for index, name in enumerate(SPLITS):
        stage = _stage(progress, index / len(SPLITS), (index + 1) / len(SPLITS))
        features[name] = split_features(data.splits[name], head, name, cache_dir, stage, deadline)
        targets[name] = np.asarray(data.splits[name]["label"], dtype=int)
    embedded = time.perf_counter() - embedded
    if deadline:
        deadline.check()
    if progress:
        progress(1.0, "fitting the head")
    fitted = time.perf_counter()
    fit = fit_head(features["train"], targets["train"], features["validation"], targets["validation"], len(labels))
    fitted = time.perf_counter() - fitted

    val_logits, test_logits = fit.logits(features["validation"]), fit.logits(features["test"])
    validation = classification_metrics(val_logits, targets["validation"], labels, fit.temperature)
    validation.pop("confusion_matrix", None)
    result = measure_split(test_logits, targets["test"], data.splits["test"], task, labels, data.groups, output,
                           age_bands=settings.manifest.age_bands, temperature=fit.temperature)
    class_distribution_plot(result["test"]["class_distribution"], output / "class_distribution.png",
                            f"Test faces: real vs predicted (n={len(targets['test'])})")
    result["figures"]["class_distribution"] = "class_distribution.png"
    majority = int(np.bincount(targets["train"], minlength=len(labels)).argmax())
    metrics = {
        "task": task.name, "kind": task.kind, "labels": labels, "model": settings.model, "split": "test",
        **result, "validation": validation, "calibration": {"temperature": round(fit.temperature, 4)},
        "baseline": {"majority_class": labels[majority],
                     "validation": majority_baseline(targets["train"], targets["validation"]),
                     "test": majority_baseline(targets["train"], targets["test"])},
        "test_time_flip": head.flip,
        "data": {"source": settings.data.shown_source, "sizes": {name: len(data.splits[name]) for name in SPLITS},
                 "skipped": dict(data.skipped), "group_columns": list(data.groups)},
        "training": {"head_only": True, "c": fit.c, "input_size": head.input_size,
                     "features": int(fit.weight.shape[1]),
                     "seconds": {"embedding": round(embedded, 2), "fitting": round(fitted, 2)},
                     "procedure": procedure_text(shown or settings, head, fit)},
    }
    metrics["headline"] = headline(metrics)
    save_model(head, fit, labels, output, {"task": task.name, "kind": task.kind, "metrics": metrics["headline"]})
    metrics["training"]["seconds"]["total"] = round(time.perf_counter() - started, 2)
    (output / "metrics.json").write_text(to_json(metrics))
    save_config((shown or settings).as_config(), output / "train_config.yaml")
    (output / "no_face.log").write_text("".join(f"{row}\n" for row in data.no_face))
    write_model_card(output, shown or settings, metrics, data)
    return HeadResult(output=output, metrics=metrics, head=fit, labels=labels)


def procedure_text(settings: Settings, head: HeadSettings, fit: Head) -> str:
    return (f"Head only: the face backbone `{settings.init.folder if settings.init else head.backbone}` "
            f"({settings.model}) stayed frozen. Each face crop ({head.input_size}px"
            f"{', averaged with its mirror image' if head.flip else ''}) was embedded once into "
            f"{fit.weight.shape[1]} pooled features, and an L2-regularised logistic regression (scikit-learn; "
            f"C = {fit.c:g}, chosen on the validation split's log-loss; features standardised, the "
            "standardisation folded into the weights) became the model's Linear classifier. Temperature "
            f"{fit.temperature:.3f} fitted on the validation split.")


def summary_lines(metrics: dict) -> list[str]:
    """The report's headline, as the CLI prints it and the app shows it."""
    baseline, test, val = metrics["baseline"], metrics["test"], metrics["validation"]
    return [f"[validation] accuracy {val['accuracy']:.3f} (n={val['n']}); always answering "
            f"'{baseline['majority_class']}': {baseline['validation']:.3f}",
            f"[test] accuracy {test['accuracy']:.3f} (n={test['n']}); always answering "
            f"'{baseline['majority_class']}': {baseline['test']:.3f}"]


def head_settings(settings: Settings) -> HeadSettings:
    """How the head-only path embeds, from resolved settings whose --init-from is the backbone."""
    return HeadSettings(backbone=settings.init.folder, input_size=settings.input_size,
                        flip=settings.config.test_flip, seed=settings.config.seed, threads=settings.config.threads,
                        digest=settings.init.digest)


def resolve_head_only(cfg, manifest=None) -> Settings:
    """`cfg` resolved with the manifest's backbone (train_your_own.backbone) as --init-from and its input
    size, unless the flags name others."""
    from hub.config import load_manifest

    from .config import ConfigError
    from .settings import resolve, shown

    manifest = manifest or load_manifest(cfg.manifest)
    own = manifest.train_your_own
    backbone = cfg.init_from or shown(manifest.resolve(own.backbone))
    cfg = dataclasses.replace(cfg, head_only=True, init_from=backbone,
                              input_size=cfg.input_size or own.input_size, epochs=0)
    settings = resolve(cfg, manifest)
    if not settings.task.is_classification:
        raise ConfigError(f"--head-only fits a classifier; task {settings.task.name!r} is a {settings.task.kind}")
    return settings


def main(cfg, manifest=None) -> Path:
    """`python -m finetune --task field --data DIR --head-only` (or a recipe stage with `head_only: true`): the
    app's fast path from the command line, features cached in --cache-dir (a second run only fits the head)."""
    from .data import load_task_data
    from .head_only import torch_threads
    from .push import PushError, push_folder

    started = time.perf_counter()
    settings = resolve_head_only(cfg, manifest)
    head = head_settings(settings)
    shown = {"what": None}

    def report(fraction: float, what: str) -> None:
        if what != shown["what"]:
            print(f"[head-only] {what}", flush=True)
            shown["what"] = what

    with torch_threads(cfg.threads):
        data = load_task_data(settings.data)
        print(f"[data] {settings.task.name}: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
              + f"; skipped {data.skipped}; labels {data.labels}")
        result = train_head(settings, data, head, progress=report, cache_dir=settings.data.cache_dir,
                            started=started)
    for line in summary_lines(result.metrics):
        print(line)
    seconds = result.metrics["training"]["seconds"]
    print(f"[saved] {settings.output} in {seconds['total']:.1f} s (embedding {seconds['embedding']:.1f} s, head "
          f"{seconds['fitting']:.1f} s); {len(data.no_face)} image(s) without a face in no_face.log")
    if list(settings.task.labels) != result.labels:
        print(f"[next] the app serves it once spaces.yaml says tasks.{settings.task.name}.labels: {result.labels}")
    if cfg.push_to_hub:
        try:
            print(f"[hub] uploaded to {push_folder(settings.output, cfg.push_to_hub)}")
        except PushError as err:
            raise SystemExit(f"error: {err}") from None
    return settings.output
