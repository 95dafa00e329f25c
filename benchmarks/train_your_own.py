"""Train your own (issue 17) on this machine: 400 faces (4 labels x 100) from a zip to a model that answers,
through the app's own training function, and what such heads reach on UTKFace (../shared/data):
- age bands 20-29 / 30-39 / 40-49 / 50+: the same 400 faces, measured on their test split and on 1,000 others,
  against the majority baseline;
- gender: a head on 300 faces, measured on 1,000 others (target >= 0.90).

    python -m benchmarks --section train_your_own
    python -m benchmarks.train_your_own --sizes 112 160 224    # the input-size comparison (spaces.yaml: 160)
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UTKFACE = ROOT.parent / "shared" / "data" / "utkface"
BANDS = (("20-29", 20, 30), ("30-39", 30, 40), ("40-49", 40, 50), ("50+", 50, 200))
PER_BAND = 100
OTHERS = 1000


def utkface():
    """UTKFace shuffled once (seed 0): rows 0-299 train the gender head, 300-1299 measure it; the age-band
    faces come from 2000 on, and their 1,000 others from 6000 on."""
    from datasets import load_dataset

    return load_dataset("parquet", data_files=str(UTKFACE / "*.parquet"), split="train").shuffle(seed=0)


def band_of(age: int) -> str | None:
    return next((name for name, low, high in BANDS if low <= age < high), None)


def age_band_rows(ds, start: int, per_band: int | None) -> list[tuple[int, str]]:
    """(row, band) from `start` on: `per_band` of each band, or (None) the next OTHERS faces in any band."""
    taken, counts = [], {name: 0 for name, _, _ in BANDS}
    for row, age in enumerate(ds.select_columns(["age"])[start:]["age"], start=start):
        band = band_of(age)
        if band is None or (per_band is not None and counts[band] >= per_band):
            continue
        taken.append((row, band))
        counts[band] += 1
        if len(taken) == (per_band * len(BANDS) if per_band else OTHERS):
            break
    return taken


def band_zip(ds, rows: list[tuple[int, str]], path: Path) -> Path:
    """`<band>/<n>.jpg`: the layout a user uploads."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for n, (row, band) in enumerate(rows):
            buffer = io.BytesIO()
            ds[row]["image"].convert("RGB").save(buffer, format="JPEG", quality=92)
            archive.writestr(f"{band}/{n}.jpg", buffer.getvalue())
    return path


def manifest_at(size: int | None):
    from hub.config import load_manifest

    manifest = load_manifest(ROOT / "spaces.yaml")
    if size:
        manifest = dataclasses.replace(manifest, train_your_own=dataclasses.replace(
            manifest.train_your_own, input_size=size))
    return manifest


def app_training(manifest, zip_path: Path, detect: bool) -> tuple[float, dict, object]:
    """The app's training function on a copy of the zip (it deletes what it is given), until the session's
    model has answered once: (seconds, the API summary, the served model)."""
    from hub.decode import load_image
    from hub.models import ModelStore
    from hub.session_models import SessionModels
    from hub.ui_train import train

    work = Path(tempfile.mkdtemp(prefix="hub-bench-train-"))
    upload = work / "upload.zip"
    shutil.copy(zip_path, upload)
    sessions = SessionModels(ModelStore(manifest), manifest.train_your_own.task)
    started = time.perf_counter()
    _, summary, _ = train(sessions, manifest, "bench", str(upload), "", not detect, work,
                          lambda *args, **kwargs: None)
    model = sessions.entry("bench").model
    with zipfile.ZipFile(zip_path) as archive:
        first = load_image(archive.read(archive.namelist()[0]))
    model.predict([first.resize((model.input_size, model.input_size))])
    seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    return seconds, summary, model


def accuracy_on(model, ds, rows: list[tuple[int, str | None]], column: str | None = None) -> float:
    """Top-class accuracy of a served model on UTKFace's own crops (prepare_cropped, as finetune reads them)."""
    from hub.faces import prepare_cropped

    names = ds.features[column].names if column else None
    correct = 0
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        images = ds.select([row for row, _ in chunk])
        crops = [prepare_cropped(image.convert("RGB"), model.input_size) for image in images["image"]]
        truth = [names[v] for v in images[column]] if column else [band for _, band in chunk]
        for prediction, label in zip(model.predict(crops), truth):
            correct += max(prediction.probs, key=prediction.probs.get) == label
    return correct / len(rows)


def gender_quality(manifest, ds, train_rows: int = 300) -> dict:
    """The head-only path on `train_rows` faces (split 70/20/10), measured on the next OTHERS faces."""
    from datasets import DatasetDict

    from finetune.config import TrainConfig
    from finetune.data import load_task_data
    from finetune.head_only import torch_threads
    from finetune.head_train import head_settings, resolve_head_only, train_head
    from hub.models import AttributeModel

    own, task = manifest.train_your_own, manifest.task("gender")
    work = Path(tempfile.mkdtemp(prefix="hub-bench-gender-"))
    try:
        cfg = TrainConfig(task="gender", data=str(UTKFACE), output=str(work / "model"), cache_dir=str(work / "crops"),
                          threads=own.threads)
        settings = resolve_head_only(cfg, manifest)
        with torch_threads(own.threads):
            data = load_task_data(settings.data, raw=DatasetDict(train=ds.select(range(train_rows))))
            result = train_head(settings, data, head_settings(settings))
            model = AttributeModel.load(task, str(work / "model"))
            others = accuracy_on(model, ds, [(row, None) for row in range(train_rows, train_rows + OTHERS)],
                                 "gender")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"others": others, "test": result.metrics["test"]["accuracy"],
            "validation": result.metrics["validation"]["accuracy"], "baseline": result.metrics["baseline"]}


def rows_for(size: int | None = None, quality: bool = True) -> list[tuple[str, str, str]]:
    """(measure, value, note) rows; empty when the data is absent."""
    if not UTKFACE.is_dir():
        return [("train your own", "n/a", f"no UTKFace at {UTKFACE}")]
    manifest = manifest_at(size)
    own = manifest.train_your_own
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {own.threads} torch thread(s)"
    ds = utkface()
    faces = age_band_rows(ds, 2000, PER_BAND)
    work = Path(tempfile.mkdtemp(prefix="hub-bench-zip-"))
    try:
        archive = band_zip(ds, faces, work / "bands.zip")
        tag = f"{own.input_size}px"
        rows = []
        for detect in (False, True):
            seconds, summary, model = app_training(manifest, archive, detect)
            how = "with MTCNN crops" if detect else "already cropped"
            rows.append((f"400 faces (4 x 100), zip to answering model, {how}, {tag}", f"{seconds:.1f} s",
                         f"target <= 60 s; {load}"))
            if not detect and quality:
                base = summary["majority_baseline"]
                rows.append((f"age bands (400 faces), {tag}: test / validation accuracy",
                             f"{summary['test_accuracy']:.3f} / {summary['validation_accuracy']:.3f}",
                             f"majority baseline {base['test']:.3f} / {base['validation']:.3f}; test n="
                             f"{summary['sizes']['test']}"))
                others = age_band_rows(ds, 6000, None)
                counts = [sum(band == name for _, band in others) for name, _, _ in BANDS]
                rows.append((f"age bands, {tag}: accuracy on {OTHERS} other faces",
                             f"{accuracy_on(model, ds, others):.3f}",
                             f"best constant answer {max(counts) / len(others):.3f}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if quality:
        gender = gender_quality(manifest, ds)
        rows.append((f"gender head on 300 faces, {tag}: accuracy on {OTHERS} others", f"{gender['others']:.3f}",
                     f"target >= 0.90; its own test split {gender['test']:.3f}, baseline "
                     f"{gender['baseline']['test']:.3f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_your_own", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, help="input sizes to compare (default: spaces.yaml's)")
    parser.add_argument("--speed-only", action="store_true", help="only the zip-to-model timings")
    args = parser.parse_args(argv)
    for size in args.sizes or [None]:
        for measure, value, note in rows_for(size, quality=not args.speed_only):
            print(f"{measure:<75} {value:>14}  {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
