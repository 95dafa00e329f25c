"""The end of a run (rank 0, best weights loaded): calibrate on validation, measure on test, and write
the model folder the app loads, with metrics.json, figures, train_config.yaml and the model card."""
from __future__ import annotations

from typing import Any

import torch

from hub.models import save_checkpoint

from .calibration import fit_age_interval, fit_temperature, years_from
from .card import write_model_card
from .config import save_config
from .data import TaskData
from .loaders import plain_loader, run_inference
from .measure import measure_split
from .metrics import classification_metrics, headline, regression_metrics, summary_lines, to_json
from .push import PushError, push_folder
from .settings import Settings, shown


def _inherited(settings: Settings) -> dict:
    """What a model started from another keeps in config.json: where its weights came from, and
    whether its norms stay frozen when it is trained again."""
    kept: dict[str, Any] = {"freeze_bn": True} if settings.freeze_bn else {}
    if settings.init and settings.init.pretrained_from:
        kept["pretrained_from"] = settings.init.pretrained_from
    return kept


def as_saved(net, dtype: str | None) -> None:
    """Round the weights, in place, to the precision model.safetensors will hold, so that the figures below are
    those of the file that ships (float16 moved 4 of 1,899 gender test faces, none of 3,797 validation ones)."""
    if dtype:
        with torch.no_grad():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.to(getattr(torch, dtype)))


def finish_training(net, data: TaskData, settings: Settings, device, *, val_loader, test_loader,
                    train_speed: float, best_epoch: int):
    """Calibrate on validation, measure on test, write the model folder (+ metrics, figures, card), push."""
    cfg, task, output = settings.config, settings.task, settings.output
    output.mkdir(parents=True, exist_ok=True)
    resolved = settings.as_config()
    as_saved(net, cfg.save_dtype)
    val_outputs, val_targets = run_inference(net, plain_loader(val_loader), device, cfg.test_flip)
    test_outputs, test_targets = run_inference(net, plain_loader(test_loader), device, cfg.test_flip)
    bands = settings.manifest.age_bands

    calibration: dict[str, Any]
    if task.is_classification:
        temperature = fit_temperature(val_outputs, val_targets)
        calibration = {"temperature": round(temperature, 4)}
        validation = classification_metrics(val_outputs, val_targets, data.labels, temperature)
        result = measure_split(test_outputs, test_targets, data.splits["test"], task, data.labels, data.groups,
                               output, temperature=temperature, age_bands=bands)
    else:
        interval = fit_age_interval(years_from(val_outputs), val_targets)
        calibration = {"age_interval": interval}
        validation = regression_metrics(val_outputs, val_targets, task.bands, interval)
        result = measure_split(test_outputs, test_targets, data.splits["test"], task, data.labels, data.groups,
                               output, interval=interval, age_bands=bands)
    validation.pop("confusion_matrix", None)

    metrics = {
        "task": task.name, "kind": task.kind, "labels": list(data.labels), "model": settings.model,
        "split": "test", **result, "validation": validation, "calibration": calibration,
        "test_time_flip": cfg.test_flip,
        "data": {"source": settings.data.shown_source, "sizes": {name: len(part) for name, part in data.splits.items()},
                 "skipped": dict(data.skipped), "group_columns": list(data.groups)},
        "training": {"best_epoch": best_epoch + 1, "epochs": cfg.epochs,
                     "train_speed_img_per_s": round(float(train_speed), 1)},
    }
    teacher = settings.teacher
    if teacher:
        metrics["training"]["teacher"] = {"folder": shown(teacher.folder), "architecture": teacher.architecture,
                                          "input_size": teacher.input_size, "alpha": cfg.distill_alpha,
                                          "temperature": cfg.distill_temperature}
    metrics["headline"] = headline(metrics)

    save_checkpoint(net, output, labels=list(data.labels), input_size=settings.input_size,
                    extra={"task": task.name, "kind": task.kind, **calibration, "test_time_flip": cfg.test_flip,
                           "metrics": metrics["headline"], **_inherited(settings)},
                    dtype=cfg.save_dtype)
    (output / "metrics.json").write_text(to_json(metrics))
    save_config(resolved, output / "train_config.yaml")
    (output / "no_face.log").write_text("".join(f"{row}\n" for row in data.no_face))
    write_model_card(output, settings, metrics, data)

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
