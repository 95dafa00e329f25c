"""Loss, optimiser, learning-rate schedule and the early-stopping score of a run."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .nets import head_parameter_ids


def make_optimizer(net, cfg: TrainConfig, backbone_scale: float):
    head_ids = head_parameter_ids(net)
    decay, no_decay, head = [], [], []
    for p in net.parameters():
        if not p.requires_grad:
            continue
        (head if id(p) in head_ids else no_decay if p.ndim <= 1 else decay).append(p)
    lr = cfg.lr
    groups = [{"params": decay, "lr": lr * backbone_scale, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "lr": lr * backbone_scale, "weight_decay": 0.0},
              {"params": head, "lr": cfg.head_lr or lr, "weight_decay": cfg.weight_decay}]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int, epochs: int):
    from timm.scheduler import CosineLRScheduler
    return CosineLRScheduler(optimizer, t_initial=max(1, epochs * steps_per_epoch), lr_min=1e-6,
                             warmup_t=int(cfg.warmup_epochs * steps_per_epoch), warmup_lr_init=1e-5,
                             t_in_epochs=False)


def loss_function(cfg: TrainConfig, regression: bool, train_labels, num_classes: int, device):
    if regression:
        return (lambda out, y: F.l1_loss(out[:, 0], y)) if cfg.loss == "l1" else \
               (lambda out, y: F.huber_loss(out[:, 0], y, delta=2.0))
    weight = None
    if cfg.balance == "weights":
        counts = np.bincount(train_labels, minlength=num_classes).astype(np.float32)
        weight = torch.tensor(len(counts) and counts.sum() / (len(counts) * np.maximum(counts, 1)), device=device)
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.loss import SoftTargetCrossEntropy
        return SoftTargetCrossEntropy()
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


def make_mixup(cfg: TrainConfig, regression: bool, num_classes: int):
    if regression or (cfg.mixup <= 0 and cfg.cutmix <= 0):
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                 num_classes=num_classes)


def score(outputs: np.ndarray, targets: np.ndarray, regression: bool) -> float:
    """The early-stopping metric, higher is better: accuracy, or minus the age MAE."""
    if regression:
        return -float(np.abs(outputs[:, 0] - targets).mean())
    return float((outputs.argmax(1) == targets).mean())
