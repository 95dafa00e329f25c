"""`python -m hub predict PHOTO|VIDEO|FOLDER [--task T ...] [--json] [--frames] [--whole-image] [--manifest PATH]`

The same analysis as the app. One photo: a readable summary, or with --json the app's JSON.
A video: one line per face followed (hub/cli_video.py), or per frame with --frames.
A folder of photos and videos: one line per photo or record (JSON lines with --json) and a progress bar on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
WHOLE_IMAGE_OPTION = "add --whole-image"  # how the no-face message names the option here


def add_predict_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="find the faces in a photo (or a folder of photos) and predict their attributes",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path,
                        help="a photo, a video, or a folder of photos and videos (searched recursively)")
    parser.add_argument("--task", dest="tasks", action="extend", nargs="+", metavar="T",
                        help="only these tasks (default: every task that has a model)")
    parser.add_argument("--json", action="store_true", help="print the app's JSON (one line per photo)")
    parser.add_argument("--frames", action="store_true",
                        help="videos: one record per frame instead of one per face followed")
    parser.add_argument("--whole-image", action="store_true",
                        help="classify the whole image when no face is found")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="photos analysed at once for a folder, each on one torch thread "
                             "(default: one per core; 1: one at a time on torch's default threads)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="spaces.yaml to use (default: $HUB_MANIFEST or the project's)")
    parser.set_defaults(run=run_predict)
    return parser


def describe(result: dict) -> str:
    """One line per face, e.g. `face 1 at (181, 62, 268, 172): gender female (83%), age 34 (30-40, band 30-39)`."""
    lines = [result["message"]]
    skip = {"index", "box", "score", "low_resolution"}
    for face in result["faces"]:
        parts = []
        for task, value in face.items():
            if task in skip:
                continue
            if "years" in value:
                parts.append(f"{task} {value['years']:.0f} ({value['low']:.0f}-{value['high']:.0f}, "
                             f"band {value['band']})")
            else:
                parts.append(f"{task} {value['label']} ({value['confidence']:.0%})")
        box = ", ".join(f"{v:.0f}" for v in face["box"])
        small = " (low resolution)" if face.get("low_resolution") else ""
        lines.append(f"  face {face['index']} at ({box}){small}: " + ", ".join(parts))
    return "\n".join(lines)


def photos_in(folder: Path) -> list[Path]:
    """Photos and videos."""
    from .video import VIDEO_SUFFIXES

    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def run_predict(args: argparse.Namespace) -> int:
    from .config import ManifestError, load_manifest
    from .decode import BadImage
    from .cli_video import describe_record, video_records
    from .models import ModelUnavailable
    from .predict import Predictor
    from .video import BadVideo, is_video

    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    unknown = [t for t in args.tasks or [] if t not in manifest.tasks]
    if unknown:
        print(f"error: unknown task {unknown[0]!r}; the manifest has {sorted(manifest.tasks)}", file=sys.stderr)
        return 2
    if not args.source.exists():
        print(f"error: {args.source} does not exist", file=sys.stderr)
        return 2
    predictor = Predictor(manifest)
    for name in args.tasks or []:
        try:
            predictor.store.get(name)
        except ModelUnavailable as err:  # asked for by name: say how to get it, once, and stop
            print(f"error: {err.advice}", file=sys.stderr)
            return 2

    def analyze(path: Path, single: bool = False) -> dict | list[dict]:
        if is_video(path):  # a list of records: one per face, or per frame
            return video_records(path, predictor, args.tasks, args.frames, show_progress=single)
        analysis = predictor.analyze(path, tasks=args.tasks, whole_image_if_no_face=args.whole_image)
        return {"path": str(path), **analysis.as_dict(WHOLE_IMAGE_OPTION)}

    def show(result: dict | list[dict], write) -> None:
        if isinstance(result, list):
            for record in result:
                write(json.dumps(record, ensure_ascii=False) if args.json else describe_record(record))
            return
        write(json.dumps(result, ensure_ascii=False) if args.json else f"{result['path']}: {describe(result)}")

    if args.source.is_file():
        try:
            show(analyze(args.source, single=True), print)
        except (BadImage, BadVideo) as err:
            print(f"error: {args.source}: {err}", file=sys.stderr)
            return 1
        return 0

    from tqdm import tqdm

    photos = photos_in(args.source)
    if not photos:
        print(f"error: no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos in {args.source}", file=sys.stderr)
        return 1

    def attempt(path: Path) -> dict | list[dict] | BadImage | BadVideo:
        try:
            return analyze(path)
        except (BadImage, BadVideo) as err:
            return err

    # One photo per core at a time, each on one torch thread: small models gain more from
    # photo-level parallelism than from splitting each op, and single-threaded ops do not
    # stall when the cores are busy (benchmarks/README.md). Output keeps the folder's order.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(len(photos), args.workers or cores)
    if workers > 1:
        import torch
        torch.set_num_threads(1)
    failed = 0
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(pool.map(attempt, photos), total=len(photos), unit="file", file=sys.stderr,
                 dynamic_ncols=True) as bar:
        for path, result in zip(photos, bar):
            if isinstance(result, (BadImage, BadVideo)):
                failed += 1
                result = {"path": str(path), "error": str(result)}
                bar.write(json.dumps(result) if args.json else f"{path}: error: {result['error']}",
                          file=sys.stdout)
                continue
            show(result, lambda line: bar.write(line, file=sys.stdout))
    if failed:
        print(f"{failed} of {len(photos)} files could not be read", file=sys.stderr)
    return 1 if failed else 0
