"""Cropped splits as PyTorch batches (timm transforms, samplers), and model outputs over a loader."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, WeightedRandomSampler

from .config import TrainConfig
from .distributed import gather


class TorchFaces(torch.utils.data.Dataset):
    """A cropped split as (tensor, target) pairs through a timm transform. With `teacher` (a teacher's
    outputs per face, plain and mirrored: finetune.distill) the faces are flipped here, with probability
    `hflip`, and each comes with the teacher's outputs for the image as flipped: (tensor, target, outputs)."""

    def __init__(self, split, transform, regression: bool, teacher: np.ndarray | None = None, hflip: float = 0.0):
        self.split, self.transform, self.regression = split, transform, regression
        self.teacher, self.hflip = teacher, hflip

    def __len__(self):
        return len(self.split)

    def __getitem__(self, index):
        row = self.split[int(index)]
        target = torch.tensor(row["label"], dtype=torch.float32 if self.regression else torch.long)
        if self.teacher is None:
            return self.transform(row["image"]), target
        flipped = bool(torch.rand(()) < self.hflip)
        image = row["image"].transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flipped else row["image"]
        return self.transform(image), target, torch.from_numpy(self.teacher[int(index), int(flipped)])


def eval_transform(net, size: int):
    """The app's preprocessing (the saved config.json gives hub.models.AttributeModel the same)."""
    import timm.data
    config = timm.data.resolve_data_config(model=net)
    config.update(input_size=(3, size, size), crop_pct=1.0)
    return timm.data.create_transform(**config)


def train_transform(net, cfg: TrainConfig, size: int, hflip: float | None = None):
    """timm's training augmentation; `hflip=0` when the caller flips the faces itself (distillation)."""
    import timm.data
    config = timm.data.resolve_data_config(model=net)
    return timm.data.create_transform(
        input_size=(3, size, size), is_training=True, scale=(cfg.scale_min, 1.0), ratio=(0.9, 1.1),
        hflip=cfg.hflip if hflip is None else hflip, vflip=0.0, color_jitter=None, auto_augment=cfg.auto_augment,
        interpolation="bicubic", mean=config["mean"], std=config["std"])


def make_loader(split, transform, cfg: TrainConfig, regression: bool, train: bool, world: int,
                seed_offset: int = 0, teacher: np.ndarray | None = None) -> DataLoader:
    dataset = TorchFaces(split, transform, regression, teacher, cfg.hflip if train else 0.0)
    sampler = None
    if train and cfg.balance == "sampler" and not regression:
        counts = np.bincount(split["label"], minlength=max(split["label"]) + 1).astype(float)
        weights = (1.0 / np.maximum(counts, 1))[split["label"]]
        sampler = WeightedRandomSampler(weights, num_samples=len(split),
                                        generator=torch.Generator().manual_seed(cfg.seed + seed_offset))
    elif world > 1:
        sampler = DistributedSampler(dataset, shuffle=train, seed=cfg.seed, drop_last=False)
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=train and sampler is None,
                      sampler=sampler, num_workers=cfg.workers, drop_last=train and len(split) > cfg.batch_size,
                      persistent_workers=cfg.workers > 0, pin_memory=torch.cuda.is_available())


def plain_loader(loader: DataLoader) -> DataLoader:
    """The same data without a DistributedSampler: rank 0 alone measures every row, in order."""
    if not isinstance(loader.sampler, DistributedSampler):
        return loader
    return DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=False, num_workers=0)


def run_inference(net, loader, device, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Outputs (logits, or years) and targets for a loader, gathered across ranks when the loader is
    sharded (a DistributedSampler); a plain loader (rank 0 alone, at the end) is not gathered.
    `flip` averages with the mirrored images, as the app does for models saved with it."""
    from hub.models import forward

    net.eval()
    outputs, targets = [], []
    with torch.inference_mode():
        for images, target in loader:
            out = forward(net, images.to(device, non_blocking=True), flip)
            outputs.append(out.cpu().numpy())
            targets.append(target.numpy())
    outputs, targets = np.concatenate(outputs), np.concatenate(targets)
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        return gather(outputs), gather(targets)
    return outputs, targets
