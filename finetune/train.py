"""Fine-tune a timm backbone on one face attribute: `python -m finetune --task mood ...`.

Phases, top to bottom: settings (resolved once) -> set-up (distributed, seeds) -> data -> model -> optimiser
-> resume -> train with early stopping -> (rank 0) calibrate, evaluate, save, card, push. Runs unchanged
under torchrun or `accelerate launch` (DistributedDataParallel, a sampler per rank, metrics gathered, only
rank 0 writes).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from . import distill, distributed, runstate
from .config import TrainConfig, save_config
from .data import load_task_data
from .finish import finish_training
from .loaders import eval_transform, make_loader, run_inference, train_transform
from .nets import create_net, set_trainable, start_at, train_mode
from .optim import loss_function, make_mixup, make_optimizer, make_scheduler, score
from .settings import Settings, resolve


def main(cfg: TrainConfig) -> Path | None:
    return run(resolve(cfg))


def run(settings: Settings) -> Path | None:
    # 1. set-up
    cfg, task, size = settings.config, settings.task, settings.input_size
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = distributed.setup_distributed()
    runstate.seed_everything(cfg.seed + rank)
    resolved = settings.as_config()
    log = print if rank == 0 else (lambda *a, **k: None)

    # 2. data, and the teacher's outputs on it (rank 0 crops and caches first, the others then read the cache)
    if rank != 0:
        distributed.barrier()
    data = load_task_data(settings.data)
    log(f"[data] {task.name}: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
        + f"; skipped {data.skipped}; labels {data.labels}")
    guide = distill.teacher_outputs(settings, data, device) if settings.teacher else None
    if rank == 0:
        distributed.barrier()
    regression = settings.regression

    # 3. model
    net = create_net(settings, 1 if regression else len(data.labels))
    if settings.fresh_age_head:
        start_at(net, float(np.mean(data.splits["train"]["label"])))
    net.to(device)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    log(f"[model] {settings.model} {params:.2f}M params, {size}px, {device}"
        + (f", from {settings.init.folder}" if settings.init else ""))
    flips = 0.0 if guide is not None else None  # when distilling, the loader flips (and picks the teacher's outputs)
    train_loader = make_loader(data.splits["train"], train_transform(net, cfg, size, flips), cfg, regression, True,
                               world, teacher=guide)
    val_loader = make_loader(data.splits["validation"], eval_transform(net, size), cfg, regression, False, world)
    criterion = loss_function(cfg, regression, data.splits["train"]["label"], len(data.labels), device)
    if guide is not None:
        criterion = distill.distillation_loss(criterion, cfg, regression)
        log(f"[distil] from {settings.teacher.folder}: loss (1 - {cfg.distill_alpha}) * task + {cfg.distill_alpha} "
            f"* teacher term" + ("" if regression else f", T={cfg.distill_temperature}"))
    mixup = make_mixup(cfg, regression, len(data.labels))

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

    # 5. resume (only a state written by the same resolved configuration)
    start_epoch, best, best_epoch, step = 0, -math.inf, -1, 0
    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    state_path = state_dir / runstate.STATE_FILE
    if cfg.resume and state_path.exists():
        state = runstate.load_state(state_path, resolved, settings.start_digest, device, settings.teacher_digest)
        start_epoch, best, best_epoch, step = state["epoch"] + 1, state["best"], state["best_epoch"], state["step"]
        if start_epoch >= cfg.freeze_epochs > 0:
            optimizer, scheduler = configure(start_epoch)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        runstate.set_rng_state(state["rng"])
        log(f"[resume] from epoch {start_epoch} (best {best:.4f} at epoch {best_epoch})")
    elif rank == 0:
        save_config(resolved, state_dir / "config.yaml")

    # 6. train with early stopping on the validation metric
    from tqdm.auto import tqdm
    speed = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        if epoch == cfg.freeze_epochs and epoch > 0 and epoch != start_epoch:
            optimizer, scheduler = configure(epoch)
            step = 0
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        train_mode(model, settings.freeze_bn)
        started, seen, total = time.time(), 0, 0.0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=rank != 0 or not cfg.progress,
                   leave=False)
        for images, targets, *teacher in bar:  # the teacher's outputs on these faces, when distilling
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            teacher = [t.to(device, non_blocking=True) for t in teacher]
            if mixup is not None:
                images, targets = mixup(images, targets)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = criterion(forward(images).float(), targets, *teacher)
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
                runstate.save_state(state_dir / runstate.BEST_FILE, model=net.state_dict(), epoch=epoch,
                                    metric=metric)
        name = "val_mae" if regression else "val_acc"
        log(f"[epoch {epoch + 1}] loss {total / seen:.4f} {name} {abs(metric):.4f} "
            f"{'*' if improved else ''} {speed:.0f} img/s")
        if rank == 0:
            runstate.save_state(state_path, model=net.state_dict(), optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(), epoch=epoch, best=best, best_epoch=best_epoch,
                                step=step, rng=runstate.rng_state(), config=dataclasses.asdict(resolved),
                                start=settings.start_digest, teacher=settings.teacher_digest)
        if epoch - best_epoch >= cfg.patience:
            log(f"[early stop] no gain for {cfg.patience} epochs")
            break
        if cfg.stop_after and epoch + 1 >= cfg.stop_after:
            log(f"[stop] after {cfg.stop_after} of {cfg.epochs} epochs (stop_after)")
            break

    # 7. finish: best weights, calibrated, evaluated, saved in the app's format
    distributed.barrier()
    if rank != 0:
        distributed.finish()
        return None
    best_state = torch.load(state_dir / runstate.BEST_FILE, map_location=device, weights_only=True)
    net.load_state_dict(best_state["model"])
    test_loader = make_loader(data.splits["test"], eval_transform(net, size), cfg, regression, False, 1)
    result = finish_training(net, data, settings, device, val_loader=val_loader, test_loader=test_loader,
                             train_speed=speed, best_epoch=best_epoch)
    distributed.finish()
    return result
