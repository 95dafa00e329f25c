"""Fine-tune a timm backbone on one face attribute: `python -m finetune --task mood ...`.

Phases, top to bottom: set-up (distributed, seeds) -> data -> model -> optimiser -> resume -> train with
early stopping -> (rank 0) calibrate, evaluate, save, card, push. Runs unchanged under torchrun or
`accelerate launch` (DistributedDataParallel, a sampler per rank, metrics gathered, only rank 0 writes).
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, WeightedRandomSampler

from hub.config import load_manifest

from .config import TrainConfig, save_config
from .data import TaskData, load_task_data

STATE_FILE = "last.pt"


# --- distributed helpers ---------------------------------------------------------------------

def setup_distributed() -> tuple[int, int, torch.device]:
    """torchrun and accelerate both set WORLD_SIZE/RANK/LOCAL_RANK; gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def gather(array: np.ndarray) -> np.ndarray:
    if not dist.is_initialized():
        return array
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate(parts)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --- data -----------------------------------------------------------------------------------------

class TorchFaces(torch.utils.data.Dataset):
    """A cropped split as (tensor, target) pairs through a timm transform."""

    def __init__(self, split, transform, regression: bool):
        self.split, self.transform, self.regression = split, transform, regression

    def __len__(self):
        return len(self.split)

    def __getitem__(self, index):
        row = self.split[int(index)]
        target = torch.tensor(row["label"], dtype=torch.float32 if self.regression else torch.long)
        return self.transform(row["image"]), target


def eval_transform(net, size: int):
    """The app's preprocessing (the saved config.json gives hub.models.AttributeModel the same)."""
    import timm.data
    config = timm.data.resolve_data_config(model=net)
    config.update(input_size=(3, size, size), crop_pct=1.0)
    return timm.data.create_transform(**config)


def train_transform(net, cfg: TrainConfig, size: int):
    import timm.data
    config = timm.data.resolve_data_config(model=net)
    return timm.data.create_transform(
        input_size=(3, size, size), is_training=True, scale=(cfg.scale_min, 1.0), ratio=(0.9, 1.1),
        hflip=cfg.hflip, vflip=0.0, color_jitter=None, auto_augment=cfg.auto_augment,
        interpolation="bicubic", mean=config["mean"], std=config["std"])


def make_loader(split, transform, cfg: TrainConfig, regression: bool, train: bool, world: int,
                seed_offset: int = 0) -> DataLoader:
    dataset = TorchFaces(split, transform, regression)
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


# --- model ------------------------------------------------------------------------------------------

def create_net(cfg: TrainConfig, backbone: str, num_outputs: int, size: int):
    import timm

    kwargs = dict(num_classes=num_outputs, drop_path_rate=cfg.drop_path, **cfg.model_kwargs)
    if cfg.init_from:  # a model of ours: same architecture, new head when the classes differ
        from hub.models import read_model_config

        config = read_model_config(Path(cfg.init_from))
        if cfg.input_size and cfg.input_size != config["pretrained_cfg"]["input_size"][-1]:
            net = _resized_from(cfg.init_from, config, size, kwargs)
            if net is not None:
                return net
        net = timm.create_model(f"local-dir:{cfg.init_from}", pretrained=True)
        if net.num_classes != num_outputs:
            net.reset_classifier(num_outputs)
        return net
    try:
        return timm.create_model(backbone, pretrained=cfg.pretrained, img_size=size, **kwargs)
    except TypeError:  # backbones without an img_size argument (convnets) adapt by themselves
        return timm.create_model(backbone, pretrained=cfg.pretrained, **kwargs)


def _new_head(cfg: TrainConfig) -> bool:
    """Whether the net's head starts untrained: from scratch, or from a model of ours for another task
    (e.g. age from the gender model), whose head create_net replaced."""
    if not cfg.init_from:
        return True
    from hub.models import read_model_config
    return read_model_config(Path(cfg.init_from)).get("num_classes") != 1


def _resized_from(folder: str, config: dict, size: int, kwargs: dict):
    """Our model at another input size: every weight whose shape does not depend on the size (all
    but position-dependent tables, such as LeViT's attention biases) starts from the checkpoint.
    None for architectures without a fixed size."""
    import timm
    from safetensors.torch import load_file

    from hub.models import WEIGHTS_FILE

    model_args = {k: v for k, v in config.get("model_args", {}).items() if k != "img_size"}
    try:
        net = timm.create_model(config["architecture"], pretrained=False, img_size=size,
                                **{**model_args, **kwargs})
    except TypeError:  # a convnet takes any input size: the checkpoint loads as it is
        return None
    own = net.state_dict()
    saved = load_file(str(Path(folder) / WEIGHTS_FILE))
    fits = {k: v.to(own[k].dtype) for k, v in saved.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(fits, strict=False)
    print(f"[init] {folder} at {size}px: {len(fits)} of {len(own)} tensors loaded; new: "
          f"{sorted({k.rsplit('.', 1)[-1] for k in own if k not in fits})}")
    return net


def uses_frozen_bn(cfg: TrainConfig) -> bool:
    """Whether batch norms keep their statistics: asked for, or inherited from the --init-from model
    (a converted backbone's norms hold folded weights that batch statistics would undo)."""
    if cfg.freeze_bn is not None:
        return cfg.freeze_bn
    if not cfg.init_from:
        return False
    from hub.models import read_model_config
    return bool(read_model_config(Path(cfg.init_from)).get("freeze_bn", False))


def train_mode(model, frozen_bn: bool) -> None:
    model.train()
    if frozen_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def backbone_stages(net) -> list[torch.nn.Module]:
    for name in ("blocks", "stages", "layers"):
        stages = getattr(net, name, None)
        if isinstance(stages, torch.nn.Sequential) or isinstance(stages, torch.nn.ModuleList):
            return list(stages)
    return []


def head_parameter_ids(net) -> set[int]:
    heads = net.get_classifier()  # a tuple for distilled models (LeViT, DeiT): head and head_dist
    heads = heads if isinstance(heads, tuple) else (heads,)
    return {id(p) for head in heads for p in head.parameters()}


def set_trainable(net, head_only: bool, last_blocks: int) -> None:
    """Seed study's two steps: the head on a frozen backbone, then the last N blocks (-1: all)."""
    head_params = head_parameter_ids(net)
    for p in net.parameters():
        p.requires_grad = not head_only or id(p) in head_params
    if head_only or last_blocks < 0:
        return
    stages = backbone_stages(net)
    for p in net.parameters():
        p.requires_grad = id(p) in head_params
    for stage in stages[len(stages) - last_blocks:]:
        for p in stage.parameters():
            p.requires_grad = True
    for name, module in net.named_children():  # norms after the blocks train with them
        if "norm" in name:
            for p in module.parameters():
                p.requires_grad = True


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


# --- training and inference -----------------------------------------------------------------------

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


def score(outputs: np.ndarray, targets: np.ndarray, regression: bool) -> float:
    """The early-stopping metric, higher is better: accuracy, or minus the age MAE."""
    if regression:
        return -float(np.abs(outputs[:, 0] - targets).mean())
    return float((outputs.argmax(1) == targets).mean())


def loss_function(cfg: TrainConfig, data: TaskData, device):
    if data.kind == "regression":
        return (lambda out, y: F.l1_loss(out[:, 0], y)) if cfg.loss == "l1" else \
               (lambda out, y: F.huber_loss(out[:, 0], y, delta=2.0))
    weight = None
    if cfg.balance == "weights":
        counts = np.bincount(data.splits["train"]["label"], minlength=len(data.labels)).astype(np.float32)
        weight = torch.tensor(len(counts) and counts.sum() / (len(counts) * np.maximum(counts, 1)), device=device)
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.loss import SoftTargetCrossEntropy
        return SoftTargetCrossEntropy()
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


def save_state(path: Path, **state) -> None:
    """Atomic: a crash mid-write leaves the previous state intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def main(cfg: TrainConfig) -> Path | None:
    # 1. set-up
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = setup_distributed()
    seed_everything(cfg.seed + rank)
    manifest = load_manifest(cfg.manifest)
    task = manifest.task(cfg.task)
    output = Path(cfg.output or manifest.resolve(task.models[0]))
    # resumable state beside the model folder, never inside it (that folder is what gets published)
    state_dir = Path(cfg.state_dir) if cfg.state_dir else output.parent / ".train" / output.name
    size = cfg.input_size or task.input_size
    backbone = cfg.model or task.backbone
    log = print if rank == 0 else (lambda *a, **k: None)

    # 2. data (rank 0 crops and caches first, the others then read the cache)
    if rank != 0:
        dist.barrier()
    data = load_task_data(task, cfg.data, image_column=cfg.image_column, label_column=cfg.label_column,
                          size=size, detect=cfg.detect_faces, margin=manifest.detector.margin,
                          drop_classes=cfg.drop_classes, split=cfg.split, seed=cfg.seed,
                          max_samples=cfg.max_samples, cache_dir=cfg.cache_dir)
    if rank == 0 and world > 1:
        dist.barrier()
    regression = data.kind == "regression"
    log(f"[data] {task.name}: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
        + f"; skipped {data.skipped}; labels {data.labels}")

    # 3. model
    net = create_net(cfg, backbone, 1 if regression else len(data.labels), size)
    if regression and _new_head(cfg):
        with torch.no_grad():  # start from the mean age so early steps learn faces, not the offset
            heads = net.get_classifier()
            for head in heads if isinstance(heads, tuple) else (heads,):
                linear = getattr(head, "linear", head)  # LeViT's NormLinear keeps its bias in .linear
                linear.bias.fill_(float(np.mean(data.splits["train"]["label"])))
    net.to(device)
    frozen_bn = uses_frozen_bn(cfg)
    log(f"[model] {backbone} {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params, {size}px, {device}")
    train_loader = make_loader(data.splits["train"], train_transform(net, cfg, size), cfg, regression, True, world)
    val_loader = make_loader(data.splits["validation"], eval_transform(net, size), cfg, regression, False, world)
    criterion = loss_function(cfg, data, device)
    mixup = None
    if (cfg.mixup > 0 or cfg.cutmix > 0) and not regression:
        from timm.data import Mixup
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                      num_classes=len(data.labels))

    # 4. optimiser (rebuilt when the seed study's step 2 unfreezes the backbone)
    def configure(epoch: int):
        head_only = epoch < cfg.freeze_epochs
        set_trainable(net, head_only, cfg.unfreeze_blocks)
        scale = cfg.backbone_lr_scale if cfg.freeze_epochs > 0 else 1.0
        phase_epochs = cfg.freeze_epochs if head_only else cfg.epochs - cfg.freeze_epochs
        optimizer = make_optimizer(net, cfg, scale)
        return optimizer, make_scheduler(optimizer, cfg, len(train_loader), phase_epochs)

    optimizer, scheduler = configure(0)
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    forward = torch.compile(model) if cfg.compile and device.type == "cuda" else model
    amp = cfg.amp and device.type == "cuda"

    # 5. resume
    start_epoch, best, best_epoch, step = 0, -math.inf, -1, 0
    state_dir.mkdir(parents=True, exist_ok=True)
    state_path = state_dir / STATE_FILE
    if cfg.resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        start_epoch, best, best_epoch, step = state["epoch"] + 1, state["best"], state["best_epoch"], state["step"]
        if start_epoch >= cfg.freeze_epochs > 0:
            optimizer, scheduler = configure(start_epoch)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        log(f"[resume] from epoch {start_epoch} (best {best:.4f} at epoch {best_epoch})")
    elif rank == 0:
        save_config(cfg, state_dir / "config.yaml")

    # 6. train with early stopping on the validation metric
    from tqdm.auto import tqdm
    speed = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        if epoch == cfg.freeze_epochs and epoch > 0 and epoch != start_epoch:
            optimizer, scheduler = configure(epoch)
            step = 0
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        train_mode(model, frozen_bn)
        started, seen, total = time.time(), 0, 0.0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=rank != 0 or not cfg.progress,
                   leave=False)
        for images, targets in bar:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if mixup is not None:
                images, targets = mixup(images, targets)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = criterion(forward(images).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            step += 1
            scheduler.step_update(step)
            seen += len(images)
            total += loss.item() * len(images)
            bar.set_postfix(loss=f"{total / seen:.3f}")
        speed = seen * world / (time.time() - started)
        outputs, targets = run_inference(net, val_loader, device, cfg.test_flip)
        metric = score(outputs, targets, regression)
        improved = metric > best
        if improved:
            best, best_epoch = metric, epoch
            if rank == 0:
                save_state(state_dir / "best.pt", model=net.state_dict(), epoch=epoch, metric=metric)
        name = "val_mae" if regression else "val_acc"
        log(f"[epoch {epoch + 1}] loss {total / seen:.4f} {name} {abs(metric):.4f} "
            f"{'*' if improved else ''} {speed:.0f} img/s")
        if rank == 0:
            save_state(state_path, model=net.state_dict(), optimizer=optimizer.state_dict(),
                       scheduler=scheduler.state_dict(), epoch=epoch, best=best, best_epoch=best_epoch,
                       step=step, rng=rng_state(), config=dataclasses.asdict(cfg))
        if epoch - best_epoch >= cfg.patience:
            log(f"[early stop] no gain for {cfg.patience} epochs")
            break

    # 7. finish: best weights, calibrated, evaluated, saved in the app's format
    if world > 1:
        dist.barrier()
    if rank != 0:
        dist.destroy_process_group() if dist.is_initialized() else None
        return None
    from .evaluate import finish_training
    net.load_state_dict(torch.load(state_dir / "best.pt", map_location=device, weights_only=True)["model"])
    result = finish_training(net, data, task, cfg, output, device, val_loader=val_loader,
                             test_loader=make_loader(data.splits["test"], eval_transform(net, size), cfg, regression,
                                                     False, 1),
                             train_speed=speed, best_epoch=best_epoch)
    if dist.is_initialized():
        dist.destroy_process_group()
    return result
