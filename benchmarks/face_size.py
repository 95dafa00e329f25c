"""`python -m benchmarks.face_size`: how the answers for one face change with its size in pixels.

Each photo is resized so that its face is 40 to 400 px wide and analysed as the app does; one row
per size, then per photo the spread of the age over the sizes of 80 px and up (the largest distance
from their median). The public photos ship with scikit-image and matplotlib; `--utkface N` adds N
UTKFace faces from ../shared/data (on a gray border, as `finetune framing` does), for a summary
over more faces. `--refine-steps 0` shows MTCNN's own boxes, as before the box refinement.

    python -m benchmarks.face_size
    python -m benchmarks.face_size --utkface 20 --refine-steps 0
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZES = (40, 50, 60, 70, 80, 100, 120, 160, 200, 250, 300, 400)
STEADY_FROM = 80  # px: the sizes whose age answers should agree (issue 15)
UTKFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface"


@dataclass
class Row:
    size: int                   # the face width asked for
    found: float | None         # the width of the box the detector found (None: no face)
    age: float | None = None
    low: float | None = None
    high: float | None = None
    female: float | None = None
    mood: str | None = None
    low_resolution: bool = False


def public_photos() -> dict[str, Image.Image]:
    """Public-domain portraits: NASA's astronaut Eileen Collins, the cameraman, Grace Hopper."""
    import matplotlib.cbook
    from skimage import data

    photos = {"astronaut": Image.fromarray(data.astronaut()),
              "cameraman": Image.fromarray(data.camera()).convert("RGB")}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        photos["grace_hopper"] = Image.open(file).convert("RGB")
    return photos


def utkface_photos(count: int) -> dict[str, Image.Image]:
    from finetune.data import read_source

    train = read_source(str(UTKFACE))["train"].shuffle(seed=0).select(range(count))
    photos = {}
    for i, row in enumerate(train):
        image = row["image"]  # a PIL image, or its bytes when the parquet's features are not applied
        face = (image if isinstance(image, Image.Image) else Image.open(io.BytesIO(image["bytes"]))).convert("RGB")
        canvas = Image.new("RGB", (face.width * 2, face.height * 2), (128, 128, 128))
        canvas.paste(face, (face.width // 2, face.height // 2))
        photos[f"utkface_{i}_age_{row['age']}"] = canvas
    return photos


def subject(faces):
    return max(faces, key=lambda f: f.box[2] - f.box[0]) if faces else None


def measure(predictor, photo: Image.Image, sizes=SIZES) -> list[Row]:
    """The photo's main face at each width in `sizes` (the whole photo is resized)."""
    tasks = [t for t in ("age", "gender", "mood") if t in predictor.available_tasks()]
    face = subject(predictor.detector.detect(photo))
    if face is None:
        raise ValueError("no face in the photo at its own size")
    width = face.box[2] - face.box[0]
    rows = []
    for size in sizes:
        scale = size / width
        image = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                             Image.Resampling.LANCZOS)
        analysis = predictor.analyze(image, tasks=tasks)
        found = subject(analysis.faces)
        if found is None:
            rows.append(Row(size, None))
            continue
        row = Row(size, found.box[2] - found.box[0], low_resolution=analysis.low_resolution(found))
        at = found.index - 1
        if "age" in analysis.predictions:
            age = analysis.predictions["age"][at]
            row.age, row.low, row.high = age.years, age.low, age.high
        if "gender" in analysis.predictions:
            row.female = analysis.predictions["gender"][at].probs.get("female")
        if "mood" in analysis.predictions:
            row.mood = analysis.predictions["mood"][at].label
        rows.append(row)
    return rows


def age_spread(rows: list[Row], steady_from: int = STEADY_FROM) -> float:
    """The largest distance of an age answer at `steady_from` px or more from their median."""
    ages = [row.age for row in rows if row.size >= steady_from and row.age is not None]
    middle = statistics.median(ages)
    return max(abs(age - middle) for age in ages)


def small_face_error(results: dict[str, list[Row]], steady_from: int = STEADY_FROM) -> list[float]:
    """For faces under `steady_from` px: distance of each age from the same face's steady median."""
    errors = []
    for rows in results.values():
        steady = [row.age for row in rows if row.size >= steady_from and row.age is not None]
        errors += [abs(row.age - statistics.median(steady)) for row in rows
                   if row.size < steady_from and row.age is not None]
    return errors


def box_offsets(predictor, photos: dict[str, Image.Image]) -> list[list[float]]:
    """Refined boxes against MTCNN's own on the same photos, in % of the face width (x1, y1, x2, y2):
    their mean must stay near 0 for the framing measured by `finetune framing` to hold."""
    from hub.faces import get_detector

    plain = get_detector(dataclasses.replace(predictor.manifest.detector, refine_steps=0))
    offsets = []
    for photo in photos.values():
        before, after = subject(plain.detect(photo)), subject(predictor.detector.detect(photo))
        if before and after:
            width = before.box[2] - before.box[0]
            offsets.append([100 * (a - b) / width for a, b in zip(after.box, before.box)])
    return offsets


def refinement_cost(predictor, photo: Image.Image, runs: int = 20) -> tuple[float, float]:
    """Median detection time (ms) on `photo` with the manifest's refine_steps, and with none."""
    import time

    from hub.faces import get_detector

    plain = get_detector(dataclasses.replace(predictor.manifest.detector, refine_steps=0))
    times = {predictor.detector: [], plain: []}
    for run in range(runs + 3):  # alternated, so that a busy moment hits both; 3 warm-up rounds
        for detector, measured in times.items():
            start = time.perf_counter()
            detector.detect(photo)
            if run >= 3:
                measured.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[predictor.detector]), statistics.median(times[plain])


def print_photo(name: str, rows: list[Row]) -> None:
    print(f"\n{name}")
    print("  face px | found px | age (interval)      | P(female) | mood     | low resolution")
    for row in rows:
        if row.found is None:
            print(f"  {row.size:7d} | no face")
            continue
        age = f"{row.age:5.1f} ({row.low:.0f}-{row.high:.0f})" if row.age is not None else "-"
        female = f"{row.female:.2f}" if row.female is not None else "-"
        print(f"  {row.size:7d} | {row.found:8.1f} | {age:19s} | {female:9s} | {row.mood or '-':8s} | "
              f"{'yes' if row.low_resolution else ''}")
    print(f"  age spread over {STEADY_FROM} px and up: ±{age_spread(rows):.1f} years")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.face_size", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utkface", type=int, default=0, metavar="N",
                        help=f"also N UTKFace faces from {UTKFACE} (summary only)")
    parser.add_argument("--refine-steps", type=int, default=None,
                        help="override detector.refine_steps (0: MTCNN's own boxes)")
    parser.add_argument("--manifest", default=None, help="spaces.yaml (default: the project's)")
    args = parser.parse_args(argv)

    from hub.config import load_manifest, read_manifest
    from hub.predict import Predictor

    manifest = read_manifest(args.manifest) if args.manifest else load_manifest()
    if args.refine_steps is not None:
        manifest = dataclasses.replace(manifest, detector=dataclasses.replace(
            manifest.detector, refine_steps=args.refine_steps))
    predictor = Predictor(manifest)
    print(f"detector.refine_steps = {manifest.detector.refine_steps}, low resolution below "
          f"{manifest.detector.low_resolution_below} px")
    results = {}
    photos = public_photos()
    if manifest.detector.refine_steps:
        with_, without = refinement_cost(predictor, photos["astronaut"])
        print(f"detection on the astronaut (512 px, one face), median of 20: {with_:.1f} ms with the box "
              f"refinement, {without:.1f} ms without")
    for name, photo in photos.items():
        results[name] = measure(predictor, photo)
        print_photo(name, results[name])
    if args.utkface:
        if not UTKFACE.is_dir():
            print(f"error: no UTKFace data at {UTKFACE}", file=sys.stderr)
            return 1
        faces = utkface_photos(args.utkface)
        for name, photo in faces.items():
            try:
                results[name] = measure(predictor, photo)
            except ValueError:
                continue  # MTCNN finds no face in this one at its own size
        offsets = box_offsets(predictor, faces)
        if offsets and manifest.detector.refine_steps:
            mean = [statistics.mean(side) for side in zip(*offsets)]
            print(f"UTKFace, {len(offsets)} faces: refined box minus MTCNN's, mean over faces, % of the face width "
                  f"(x1, y1, x2, y2): {', '.join(f'{v:+.1f}' for v in mean)}")
    spreads = [age_spread(rows) for rows in results.values()]
    small = small_face_error(results)
    print(f"\n{len(results)} faces: age spread over {STEADY_FROM} px and up: mean ±{statistics.mean(spreads):.1f}, "
          f"worst ±{max(spreads):.1f} years; {sum(s > 3 for s in spreads)} over ±3")
    if small:
        ranked = sorted(small)
        print(f"under {STEADY_FROM} px: age off the same face's median by {statistics.mean(small):.1f} years "
              f"on average, 90th percentile {ranked[int(0.9 * (len(ranked) - 1))]:.1f}, worst {ranked[-1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
