"""The machine's sections of `python -m benchmarks`: how much of the CPU the models use (hardware), how
fast each default model's recipe stage trains (training), and the app's "Train your own" (train_your_own)."""
from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

from .common import (DEFAULT_TASKS, ROOT, TARGETS, Context, Row, app_predictor, model_ready, ms, one_face_photo,
                     save_jpeg, summary, timed, training_running)


def _matmul_gflops(size: int = 2048, runs: int = 10) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = min(timed(lambda: torch.mm(a, b), runs, warmup=3))
    return 2 * size ** 3 / best / 1e9


def _forward_gflops(net, batch, runs: int) -> tuple[float, float, float]:
    """(GFLOP per forward, median seconds, GFLOP/s) of net(batch) under inference_mode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            net(batch)
        seconds = summary(timed(lambda: net(batch), runs))[0]
    flops = counter.get_total_flops() / 1e9
    return flops, seconds, flops / seconds


def section_hardware(ctx: Context) -> list[Row]:
    import torch

    from hub.decode import load_image
    from hub.predict import crops_for

    predictor = app_predictor(ctx)
    peak = _matmul_gflops()
    rows = [Row("hardware", "fp32 matmul 2048^3", f"{peak:.1f} GFLOP/s",
                f"torch.mm, {torch.get_num_threads()} threads: the reference")]
    photo = save_jpeg(one_face_photo(), ctx.work / "e2e" / "astronaut_640x480.jpg")
    image = load_image(photo)
    faces = predictor.detector.detect(image)
    manifest = predictor.manifest
    runs = max(10, ctx.runs)
    for batch_faces in (len(faces), 30, 256):
        total_flops = total_time = 0.0
        for name in DEFAULT_TASKS:
            model, task = predictor.store.get(name), manifest.task(name)
            crops = crops_for(image, faces, task, manifest, model.input_size)
            batch = model.batch((crops * batch_faces)[:batch_faces])
            flops, seconds, _ = _forward_gflops(model.net, batch, runs if batch_faces < 100 else 5)
            total_flops += flops
            total_time += seconds
        achieved = total_flops / total_time
        label = "e2e (1 face)" if batch_faces == len(faces) else f"{batch_faces} faces"
        note = f"{total_flops * 1000:.0f} MFLOP in {ms(total_time)} for {len(DEFAULT_TASKS)} models"
        if batch_faces == len(faces):
            target = TARGETS["hardware_ratio"]
            ok = "meets" if achieved / peak >= target else f"misses (target >= {target})"
            note += f"; {ok}"
            ctx.extra["model_ratio"] = achieved / peak
        rows.append(Row("hardware", f"models, batch = {label}",
                        f"{achieved:.1f} GFLOP/s = {achieved / peak:.2f}x", note))
    # the detector's nets in the e2e run
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        predictor.detector.detect(image)
    detect = summary(timed(lambda: predictor.detector.detect(image), max(10, ctx.runs // 2)))[0]
    gflops = counter.get_total_flops() / 1e9
    rows.append(Row("hardware", "MTCNN detect, 640x480", f"{gflops / detect:.1f} GFLOP/s = {gflops / detect / peak:.2f}x",
                    f"{gflops * 1000:.0f} MFLOP in {ms(detect)} (whole detect: resizes, NMS, crops)"))
    return rows


EPOCH_LINE = re.compile(r"\[epoch (\d+)\].*?(\d+) img/s")


def section_training(ctx: Context) -> list[Row]:
    """Each default model's published recipe stage (finetune/recipes.yaml) for one epoch of 2048 faces,
    started from the default model itself (same architecture and size, so the same speed)."""
    from finetune.recipe import load_recipes, stage_options
    from finetune.recipe_run import command_line
    from hub.config import read_manifest

    manifest = read_manifest(ctx.manifest_path)
    recipes = load_recipes(manifest)
    rows = []
    running = training_running()
    for name in DEFAULT_TASKS:
        recipe = recipes[name]
        label = f"finetune {name} (recipe stage {recipe.publish})"
        if running:  # the cores are taken: quote the running logs instead of measuring a slowed run
            log = ROOT / "runs" / f"{name}.log"
            speeds = [int(m.group(2)) for m in EPOCH_LINE.finditer(log.read_text(errors="replace"))] \
                if log.is_file() else []
            value = f"{statistics.median(speeds):.0f} img/s" if speeds else "n/a"
            note = (f"median of {len(speeds)} epochs in runs/{log.name}, while training shared the cores"
                    if speeds else f"no finished epoch in runs/{log.name}, and training is running")
            rows.append(Row("training", label, value, note))
            continue
        task = manifest.task(name)
        data = manifest.resolve(task.dataset.path or "")
        start = Path(manifest.resolve(task.models[0]))
        if not Path(data).exists() or not model_ready(start):
            why = f"no data at {data}" if not Path(data).exists() else f"no trained model at {start} to start from"
            rows.append(Row("training", label, "n/a", why))
            continue
        out = ctx.work / "train" / name
        options = {**stage_options(recipe.stage(recipe.publish), name), "max_samples": 2048, "epochs": 1,
                   "init_from": str(start), "output": str(out), "state_dir": str(out / "state"),
                   "progress": False, "manifest": str(ctx.manifest_path)}
        command = [sys.executable, "-m", "finetune", *command_line(options).split()]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=ctx.env())
        found = EPOCH_LINE.findall(done.stdout + done.stderr)
        rows.append(Row("training", f"{label}, 1 epoch of 2048", f"{found[-1][1]} img/s" if found else "failed",
                        "CPU, the stage's threads and batch; includes warm-up" if found else
                        (done.stderr.strip().splitlines() or ["?"])[-1][:90]))
    return rows


def section_train_your_own(ctx: Context) -> list[Row]:
    from .train_your_own import rows_for  # issue 17: zip to answering model, and the heads' accuracy
    return [Row("train_your_own", measure, value, note) for measure, value, note in rows_for()]


