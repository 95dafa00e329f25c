"""The fast path: a logistic-regression head on frozen face features. The app's "Train your own" tab and
`python -m finetune --task field --data DIR --head-only` share it, so a model from one loads in the other.

Faces are cropped by `finetune.data` (the app's own crop), embedded once by the frozen backbone
(spaces.yaml `train_your_own`), and the head is fitted by scikit-learn on the pooled features. The
saved model is an ordinary model folder of ours: the backbone's weights plus a Linear classifier whose
weights are the fitted regression (standardisation folded in), so timm, transformers and the app load it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

# inverse L2 strength, chosen on validation log-loss. Small C wins on a few hundred faces: gender heads on 300
# UTKFace faces, 12 draws, scored on 1,000 others: C = 0.01 fixed 0.910, this grid 0.906, a grid up to 1.0 0.905
C_GRID = (0.003, 0.01, 0.03, 0.1)
BATCH = 32
Progress = Callable[[float, str], None]      # (fraction done, what is happening)


class TrainingStopped(RuntimeError):
    """Training went over its time limit; the message says so in plain words."""


@dataclass(frozen=True)
class HeadSettings:
    backbone: str          # a model folder (or hf-hub:) with num_classes 0: pooled features out
    input_size: int = 160  # faces are cropped, embedded and served at this size
    flip: bool = True      # features averaged with the mirrored face's (the served model does the same)
    seed: int = 0
    threads: int | None = None
    digest: str = ""       # of the backbone's weights (finetune.settings.digest): part of the feature cache key


@dataclass
class Head:
    """A linear classifier on raw features: logits = features @ weight.T + bias."""
    weight: np.ndarray     # (classes, features)
    bias: np.ndarray       # (classes,)
    temperature: float
    c: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight.T + self.bias


class Deadline:
    """Raises TrainingStopped once `seconds` have passed since it was made (None: never)."""

    def __init__(self, seconds: float | None):
        self.started = time.monotonic()
        self.seconds = seconds

    def check(self) -> None:
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            raise TrainingStopped(f"Training stopped: it took longer than this server allows "
                                  f"({self.seconds:.0f} s). Use fewer photos, or train on your own "
                                  "computer with `python -m finetune --head-only`.")


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Torch's CPU threads set for the block, then put back (on a busy 2-core machine one thread
    embeds faster than two fighting for a core, and leaves the other for the app's requests)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- the frozen backbone ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def load_backbone(location: str):
    """The feature extractor, loaded once per process (shared by every session's model)."""
    import timm

    from hub.models import fetch_location, read_model_config

    folder = fetch_location(location)
    config = read_model_config(folder)
    net = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0).eval()
    net.requires_grad_(False)
    net.source_config = config  # pretrained_from etc., carried into the trained model's config.json
    return net


def embed(net, images, size: int, flip: bool, progress: Progress | None = None,
          deadline: Deadline | None = None, what: str = "faces") -> np.ndarray:
    """Pooled features of PIL face crops, (N, features) float32; with `flip`, averaged with the mirror's."""
    from hub.models import forward

    from .loaders import eval_transform  # the served model's preprocessing, as in finetune's own training

    transform = eval_transform(net, size)
    images = list(images)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            if deadline:
                deadline.check()
            batch = torch.stack([transform(image.convert("RGB")) for image in images[start:start + BATCH]])
            parts.append(forward(net, batch, flip).numpy())
            if progress:
                progress(min(1.0, (start + BATCH) / len(images)), f"embedding {what}")
    return np.concatenate(parts) if parts else np.zeros((0, net.num_features), np.float32)


def split_features(split, settings: HeadSettings, name: str, cache_dir: Path | None = None,
                   progress: Progress | None = None, deadline: Deadline | None = None) -> np.ndarray:
    """Features of a cropped split; cached in `cache_dir` by data, backbone, size and flip (the CLI)."""
    path = None
    if cache_dir is not None:
        key = json.dumps([split._fingerprint, settings.digest, settings.input_size,
                          settings.flip, "v1"])
        path = Path(cache_dir) / "features" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
        if path.is_file():
            return np.load(path)
    features = embed(load_backbone(settings.backbone), split["image"], settings.input_size, settings.flip,
                     progress, deadline, what=f"{name} faces")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, features)
    return features


# --- the head -------------------------------------------------------------------------------------

def fit_head(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
             classes: int, grid=C_GRID) -> Head:
    """Standardised L2 logistic regression, C chosen by validation log-loss, then temperature-scaled
    on the validation split; returned as one Linear layer on the raw features."""
    from sklearn.linear_model import LogisticRegression

    from .calibration import fit_temperature, nll

    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    scaled_train, scaled_val = (train_x - mean) / std, (val_x - mean) / std
    best = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=5000).fit(scaled_train, train_y)
        weight, bias = _softmax_form(model, classes)
        loss = nll(scaled_val @ weight.T + bias, val_y) if len(val_y) else -c  # no validation: largest C
        if best is None or loss < best[0]:
            best = (loss, c, weight, bias)
    _, c, weight, bias = best
    weight = weight / std                      # fold the standardisation into the layer
    bias = bias - weight @ mean
    head = Head(weight=weight.astype(np.float32), bias=bias.astype(np.float32), temperature=1.0, c=c)
    if len(val_y):
        head.temperature = fit_temperature(head.logits(val_x), val_y)
    return head


def _softmax_form(model, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's coefficients as (classes, features) softmax logits: a binary model's single
    logit z becomes [0, z], which gives the same probabilities."""
    weight = np.zeros((classes, model.coef_.shape[1]))
    bias = np.zeros(classes)
    seen = model.classes_.astype(int)
    if len(seen) == 2 and model.coef_.shape[0] == 1:
        weight[seen[1]], bias[seen[1]] = model.coef_[0], model.intercept_[0]
        weight[seen[0]] = 0.0
    else:
        weight[seen], bias[seen] = model.coef_, model.intercept_
        bias[[i for i in range(classes) if i not in set(seen)]] = -1e4  # a class absent from training
    return weight, bias


def majority_baseline(train_y: np.ndarray, targets: np.ndarray) -> float:
    """Accuracy of always answering the most frequent training class."""
    if len(targets) == 0:
        return float("nan")
    return float((np.asarray(targets) == np.bincount(train_y).argmax()).mean())


# --- the model ------------------------------------------------------------------------------------

def classifier_model(settings: HeadSettings, head: Head, labels: list[str]):
    """The backbone with the head as its timm classifier: what is saved, and loads anywhere."""
    import timm

    from hub.models import fetch_location

    folder = fetch_location(settings.backbone)
    net = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=len(labels)).eval()
    with torch.no_grad():
        net.get_classifier().weight.copy_(torch.from_numpy(head.weight))
        net.get_classifier().bias.copy_(torch.from_numpy(head.bias))
    net.pretrained_cfg = {**net.pretrained_cfg, "input_size": (3, settings.input_size, settings.input_size),
                          "crop_pct": 1.0}
    return net


class SharedBackboneNet(torch.nn.Module):
    """The same model for serving in this process: the one loaded backbone plus this head's Linear,
    so each session's model costs a few kB. Looks like a timm net to hub.models.AttributeModel."""

    def __init__(self, settings: HeadSettings, head: Head, labels: list[str]):
        super().__init__()
        backbone = load_backbone(settings.backbone)
        self.shared = (backbone,)  # a tuple: not registered, so never copied, moved or trained with this one
        self.classifier = torch.nn.Linear(head.weight.shape[1], len(labels))
        self.num_classes = len(labels)
        self.pretrained_cfg = {**backbone.pretrained_cfg, "num_classes": len(labels), "crop_pct": 1.0,
                               "input_size": (3, settings.input_size, settings.input_size)}
        with torch.no_grad():
            self.classifier.weight.copy_(torch.from_numpy(head.weight))
            self.classifier.bias.copy_(torch.from_numpy(head.bias))
        self.eval()

    def forward(self, images):
        return self.classifier(self.shared[0](images))


def save_model(settings: HeadSettings, head: Head, labels: list[str], output: Path, extra: dict) -> Path:
    """config.json + model.safetensors: the backbone's weights stored as the backbone stores them (float16
    as shipped), the head as float32, so the file loads to exactly the model that was measured."""
    from safetensors.torch import load_file, save_file

    from hub.models import WEIGHTS_FILE, fetch_location, save_checkpoint

    net = classifier_model(settings, head, labels)
    source = load_backbone(settings.backbone).source_config
    inherited = {key: source[key] for key in ("pretrained_from", "freeze_bn") if key in source}
    save_checkpoint(net, output, labels=labels, input_size=settings.input_size,
                    extra={**inherited, "temperature": round(head.temperature, 4),
                           "test_time_flip": settings.flip, "head_only": True, **extra})
    stored = {name: t.dtype for name, t in load_file(fetch_location(settings.backbone) / WEIGHTS_FILE).items()}
    path = Path(output) / WEIGHTS_FILE
    weights = {name: t.to(stored[name]) if name in stored else t for name, t in load_file(path).items()}
    save_file(weights, path, metadata={"format": "pt"})
    return Path(output)
