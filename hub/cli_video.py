"""Videos on the command line: `python -m hub predict clip.mp4 [--json] [--frames]` (hub/cli.py).

One record per face followed (its whole time in view), or with --frames one per frame.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .predict import Predictor
from .video import analyze_video, clock


def video_records(path: Path, predictor: Predictor, tasks: list[str] | None, frames: bool,
                  show_progress: bool) -> list[dict]:
    """The records to print; a frame-by-frame progress bar on stderr when `show_progress`."""
    bar = None
    if show_progress:
        from tqdm import tqdm
        bar = tqdm(unit="frame", file=sys.stderr, dynamic_ncols=True, desc=path.name)

    def progress(done: int, total: int) -> None:
        if total and bar.total != max(total, done):
            bar.total = max(total, done)
        bar.update(done - bar.n)

    try:
        analysis = analyze_video(path, predictor, tasks=tasks, annotate=False, progress=progress if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    head = {"path": str(path)}
    if frames:
        return [{**head, **record} for record in analysis.frames]
    if not analysis.tracks:
        return [{**head, "number": None, "message": analysis.message}]
    return [{**head, **track, "message": analysis.message} for track in analysis.tracks]


def describe_record(record: dict) -> str:
    """One readable line per face and time span, or per frame with --frames."""
    skip = {"path", "number", "first_seen", "last_seen", "frames", "message", "box", "detected", "raw",
            "frame", "time", "faces"}

    def answers(entry: dict) -> str:
        parts = []
        for task, value in entry.items():
            if task in skip or not isinstance(value, dict):
                continue
            if "years" in value:
                parts.append(f"{task} {value['years']:.0f} ({value['low']:.0f}-{value['high']:.0f}, band {value['band']})")
            else:
                parts.append(f"{task} {value['label']} ({value['confidence']:.0%})")
        return ", ".join(parts) or "no answers"

    if "frame" in record:
        faces = "; ".join(f"face {f['number']}: {answers(f)}" for f in record["faces"]) or "no face"
        return f"{record['path']} frame {record['frame']} ({clock(record['time'])}): {faces}"
    if record["number"] is None:
        return f"{record['path']}: {record['message']}"
    return (f"{record['path']}: face {record['number']} from {clock(record['first_seen'])} to "
            f"{clock(record['last_seen'])} ({record['frames']} frames): {answers(record)}")
