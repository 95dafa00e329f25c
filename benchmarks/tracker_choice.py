"""Why ByteTrack (Roboflow's `trackers`) and not norfair: both on the MTCNN boxes of the synthetic test
clip (tests/video_clips.py: three heads that enter, leave and cross), on every frame and on every 3rd.

    pip install --no-deps --target /tmp/norfair-lib norfair filterpy   # norfair pins numpy<2: keep it aside
    NORFAIR_PATH=/tmp/norfair-lib python -m benchmarks.tracker_choice

Prints the number of tracks (3 people) and the numbers each head got while no heads crossed.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
if os.environ.get("NORFAIR_PATH"):
    sys.path.append(os.environ["NORFAIR_PATH"])

import video_clips as clips  # noqa: E402
from hub.faces import get_detector  # noqa: E402


def who(box, frame: int) -> list[str]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return [n for n, (x1, y1, x2, y2) in clips.truth_boxes(frame).items() if x1 <= cx <= x2 and y1 <= cy <= y2]


def score(assigned: list[list[tuple]]) -> tuple[int, dict]:
    """(tracks, numbers per head while no heads cross) for a list per frame of (id, box)."""
    ids: dict[str, set] = {}
    for frame, faces in enumerate(assigned):
        for number, box in faces:
            heads = who(box, frame)
            if len(heads) == 1 and not clips.crossing(frame):
                ids.setdefault(heads[0], set()).add(number)
    tracks = {number for faces in assigned for number, _ in faces}
    return len(tracks), {head: sorted(found) for head, found in ids.items()}


def run_bytetrack(boxes, every: int):
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(lost_track_buffer=30, frame_rate=clips.FPS, minimum_consecutive_frames=2)
    out, times = [], []
    for frame, found in enumerate(boxes):
        if frame % every:
            out.append([])
            continue
        detections = sv.Detections(xyxy=np.array([b for b, _ in found], np.float32).reshape(-1, 4),
                                   confidence=np.array([s for _, s in found], np.float32))
        start = time.perf_counter()
        result = tracker.update(detections, timestamp=frame / clips.FPS)
        times.append(time.perf_counter() - start)
        out.append([(int(k), tuple(b)) for b, k in zip(result.xyxy, result.tracker_id) if k >= 0])
    return out, times


def run_norfair(boxes, every: int):
    from norfair import Detection, Tracker

    tracker = Tracker(distance_function="iou", distance_threshold=0.9, hit_counter_max=clips.FPS,
                      initialization_delay=1)
    out, times = [], []
    for frame, found in enumerate(boxes):
        if frame % every:
            out.append([])
            continue
        detections = [Detection(points=np.array([[b[0], b[1]], [b[2], b[3]]]), scores=np.array([s, s]))
                      for b, s in found]
        start = time.perf_counter()
        result = tracker.update(detections=detections, period=every)
        times.append(time.perf_counter() - start)
        out.append([(o.id, tuple(o.estimate.ravel())) for o in result])
    return out, times


def main() -> None:
    detector = get_detector()
    boxes = [[(f.box, f.score) for f in detector.detect(image)] for image in clips.frames()]
    for name, run in (("trackers.ByteTrackTracker", run_bytetrack), ("norfair.Tracker (iou)", run_norfair)):
        for every in (1, 3):
            try:
                out, times = run(boxes, every)
            except ImportError as err:
                print(f"{name}: not installed ({err})")
                break
            tracks, ids = score(out)
            print(f"{name:26s} detections every {every}: {tracks} tracks; numbers per head outside crossings "
                  f"{ids}; {np.median(times) * 1e3:.2f} ms per update (median)")


if __name__ == "__main__":
    main()
