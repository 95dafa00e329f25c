"""Knowledge distillation: a teacher model's outputs on the training faces, and the loss that follows them.

The teacher (any model folder of ours: another architecture, another input size) sees each training face
through its own preprocessing: the same rows cropped at its own input size (the crop cache its own
training filled) and its own normalisation. Its outputs are worked out once per face and per mirror image,
before the first epoch, and cached (the student's loader flips the faces itself, so it knows which to use).
Why once, on a 2-core CPU: the face MobileNet at 112 px takes about 140 M multiply-adds per face, LeViT-128S
at 64 px about 25 M forward and 75 M with its backward pass; a teacher pass in every step would about triple
each epoch, while the one pass over the faces and their mirror images costs about four student epochs once.
The price: the student's other augmentations (crop scale, RandAugment) are not shown to the teacher, whose
targets describe the whole face.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError, TrainConfig
from .data import TaskData, load_task_data
from .settings import Settings

CACHE_VERSION = "v1"


def _order(settings: Settings, data: TaskData) -> list[int]:
    """The teacher's output columns in the student's class order (matched by name). A student without some
    of the teacher's classes (--drop-classes) learns the teacher's probabilities among the classes it has."""
    teacher = settings.teacher
    if settings.regression:
        if teacher.num_classes != 1:
            raise ConfigError(f"--teacher {teacher.folder}: predicts {teacher.num_classes} classes; an age "
                              "student needs an age model as its teacher")
        return [0]
    missing = [name for name in data.labels if name not in teacher.labels]
    if missing:
        raise ConfigError(f"--teacher {teacher.folder}: it has no class {', '.join(missing)} (its classes: "
                          f"{', '.join(teacher.labels)}); a teacher needs every class of the data")
    return [teacher.labels.index(name) for name in data.labels]


def _cache_key(settings: Settings, data: TaskData, teacher_data) -> str:
    labels = np.asarray(teacher_data.splits["train"]["label"]).tobytes()
    described = json.dumps([CACHE_VERSION, settings.teacher.digest, repr(teacher_data_settings(settings)),
                            data.labels, hashlib.sha256(labels).hexdigest()], default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def teacher_data_settings(settings: Settings):
    return dataclasses.replace(settings.data, size=settings.teacher.input_size)


def teacher_outputs(settings: Settings, data: TaskData, device, batch_size: int = 128) -> np.ndarray:
    """The teacher's outputs (logits, or years) for every training face of `data`, in row order, plain and
    mirrored: shape (faces, 2, outputs), class columns in `data.labels` order."""
    import timm

    from hub.models import forward

    from .loaders import TorchFaces, eval_transform

    teacher = settings.teacher
    order = _order(settings, data)
    ours = load_task_data(teacher_data_settings(settings))  # the same rows: same source, seed and split
    train = ours.splits["train"]
    if len(train) != len(data.splits["train"]) or train["label"] != data.splits["train"]["label"]:
        raise ConfigError(f"--teacher {teacher.folder}: the training faces cropped at its input size "
                          f"({teacher.input_size}px) are not the student's; check that face detection "
                          "finds the same faces (no_face.log)")
    path = settings.data.cache_dir / "teacher" / f"{_cache_key(settings, data, ours)}.npy"
    if path.is_file():
        print(f"[teacher] {teacher.folder}: outputs on {len(train)} faces read from {path}")
        return np.load(path)
    net = timm.create_model(f"local-dir:{teacher.folder}", pretrained=True).to(device).eval()
    loader = torch.utils.data.DataLoader(TorchFaces(train, eval_transform(net, teacher.input_size),
                                                    settings.regression), batch_size=batch_size, shuffle=False)
    outputs = []
    with torch.inference_mode():
        for images, _ in loader:
            images = images.to(device)
            both = forward(net, torch.cat([images, images.flip(-1)]))[:, order].cpu().numpy()
            outputs.append(np.stack([both[: len(images)], both[len(images):]], axis=1))
    result = np.concatenate(outputs).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, result)
    agree = "" if settings.regression else \
        f"; it agrees with {float((result[:, 0].argmax(1) == np.asarray(train['label'])).mean()):.1%} of the labels"
    print(f"[teacher] {teacher.folder} ({teacher.architecture}, {teacher.input_size}px): outputs on "
          f"{len(train)} faces and their mirror images{agree}")
    return result


def distillation_loss(criterion, cfg: TrainConfig, regression: bool):
    """(1 - alpha) * the task loss + alpha * the teacher term. Classes: T^2 * KL(teacher || student) of the
    temperature-softened probabilities (DeiT's soft distillation; the mean over faces, as in Hinton et al.).
    Age: the task loss (L1 or Huber) against the teacher's years, as a second target."""
    alpha, temperature = cfg.distill_alpha, cfg.distill_temperature

    def loss(outputs, targets, teacher):
        if regression:
            guide = criterion(outputs, teacher[:, 0])
        else:
            guide = F.kl_div(F.log_softmax(outputs / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                             reduction="batchmean", log_target=True) * temperature ** 2
        if alpha >= 1.0:
            return guide
        return (1.0 - alpha) * criterion(outputs, targets) + alpha * guide
    return loss
