"""What the benchmark sections share: a table row, the run's context, timing, the machine, the models
(the defaults, or same-shaped stand-ins) and the photos they are timed on."""
from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
DEFAULT_TASKS = ("gender", "age", "mood")  # the default models; field has none
HEAD = (120, 10, 330, 260)  # head and shoulders in scikit-image's astronaut (512x512), as in tests
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


# --- the app's predictor, and a port for it ---------------------------------------------------------

def app_predictor(ctx: Context):
    from hub.config import read_manifest
    from hub.predict import Predictor

    if "predictor" not in ctx.extra:
        predictor = Predictor(read_manifest(ctx.manifest_path))
        for name in DEFAULT_TASKS:
            predictor.store.get(name)
        ctx.extra["predictor"] = predictor
    return ctx.extra["predictor"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
