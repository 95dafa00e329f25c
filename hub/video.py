"""Video files in, followed faces out: decode with PyAV (its wheel brings FFmpeg), follow and answer
each face (hub/tracking.py), draw the boxes (hub/video_draw.py) and encode the annotated copy, all in memory.

Frames are never written to disk: the input is read from its upload or from memory (a fetched URL),
and the annotated MP4 is built in a memory buffer.
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from PIL import Image

from .models import AgePrediction
from .predict import Predictor
from .tracking import DETECT_EVERY, FaceTracker, TrackedFace
from .video_draw import draw_tracked

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".3gp", ".y4m"}
WORK_SIDE = 1280              # frames are analysed and drawn at most this size (MTCNN looks at 1024 anyway)
NO_FACE_MESSAGE = "No face found in this video."


class BadVideo(ValueError):
    """A video we cannot or will not analyse; the message is shown to the user as is."""


@dataclass(frozen=True)
class VideoLimits:
    seconds: float = 60.0          # duration
    side: int = 1920               # longer side in pixels (1080p passes, 4K does not)
    bytes: int = 10_000_000        # file size: the app's upload limit (hub/ui.py), so a URL gets no more

    def check(self, info: "VideoInfo", size: int) -> None:
        """Refuse from the header alone, before any frame is decoded."""
        if size > self.bytes:
            raise BadVideo(f"The video is {size / 1e6:.0f} MB; videos up to {self.bytes / 1e6:.0f} MB are accepted.")
        if max(info.width, info.height) > self.side:
            raise BadVideo(f"The video is {info.width}x{info.height} pixels; videos up to {self.side} pixels on "
                           "the longer side (1080p) are accepted. Please send a smaller copy.")
        if info.seconds > self.seconds:
            raise BadVideo(f"The video lasts {clock(info.seconds)}; videos up to {clock(self.seconds)} are "
                           "accepted. Please send a shorter part.")


NO_LIMITS = VideoLimits(seconds=math.inf, side=10**9, bytes=10**18)  # the command line: your own files


def clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}" if seconds >= 60 else f"{seconds:.1f} s"


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    rate: Fraction                 # frames per second (the average, for variable-rate files)
    seconds: float                 # from the header; 0 when it does not say

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.rate)) if self.seconds else 0


def is_video(path) -> bool:
    return os.path.splitext(str(path))[1].lower() in VIDEO_SUFFIXES


def open_video(source):
    """A PyAV container for a path or bytes, and its header; `BadVideo` if it has no readable video."""
    import av

    try:
        container = av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source),
                            mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        raise BadVideo("This file is not a video we can read.") from None
    if not container.streams.video:
        container.close()
        raise BadVideo("This file has no video track (an audio-only file?).")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        container.close()
        raise BadVideo("This file is not a video we can read (its picture size is missing).")
    rate = stream.average_rate or stream.guessed_rate or Fraction(30)
    if container.duration:
        seconds = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = 0.0
    return container, VideoInfo(width, height, Fraction(rate), float(seconds))


def work_size(info: VideoInfo) -> tuple[int, int]:
    """At most WORK_SIDE, even sides (H.264's 4:2:0 needs them)."""
    scale = min(1.0, WORK_SIDE / max(info.width, info.height))
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)


def decode(container, info: VideoInfo, size: tuple[int, int]) -> Iterator[tuple[float, Image.Image]]:
    """(seconds, RGB frame at `size`), times strictly increasing."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    step, last = 1.0 / float(info.rate), -math.inf
    for frame in container.decode(stream):
        at = frame.time if frame.time is not None else last + step
        at = max(at, last + 1e-3) if last > -math.inf else max(0.0, at)
        last = at
        yield at, frame.to_image(width=size[0], height=size[1])


class Mp4Writer:
    """H.264 in an MP4, in a memory buffer."""

    def __init__(self, size: tuple[int, int], rate: Fraction):
        import av

        self.buffer = io.BytesIO()
        self.container = av.open(self.buffer, mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "26"}
        self.count = 0

    def write(self, image: Image.Image) -> None:
        import av

        frame = av.VideoFrame.from_image(image)
        frame.pts = self.count
        self.count += 1
        self.container.mux(self.stream.encode(frame))

    def finish(self) -> bytes:
        self.container.mux(self.stream.encode())
        self.container.close()
        return self.buffer.getvalue()


# --- the whole file -----------------------------------------------------------------------------

@dataclass
class VideoAnalysis:
    info: VideoInfo
    frames: list[dict] = field(default_factory=list)   # one record per analysed frame
    tracks: list[dict] = field(default_factory=list)   # one record per face followed
    errors: dict[str, str] = field(default_factory=dict)
    video: bytes | None = None                         # the annotated MP4
    detections: int = 0                                # MTCNN runs
    damaged_at: float | None = None                    # decoding stopped here

    @property
    def message(self) -> str:
        parts = [NO_FACE_MESSAGE if not self.tracks else
                 f"Followed {len(self.tracks)} face{'s' if len(self.tracks) != 1 else ''} over "
                 f"{len(self.frames)} frames ({clock(self.frames[-1]['time'] if self.frames else 0)})."]
        if self.damaged_at is not None:
            parts.append(f"The file is damaged after {clock(self.damaged_at)}: only the part before was analysed.")
        return " ".join([*parts, *self.errors.values()])

    def as_dict(self, frames: bool = True) -> dict:
        result = {"tracks": self.tracks, "message": self.message, "errors": dict(self.errors),
                  "width": self.info.width, "height": self.info.height, "fps": round(float(self.info.rate), 3),
                  "frames_analysed": len(self.frames), "seconds": self.frames[-1]["time"] if self.frames else 0.0,
                  "detections": self.detections}
        if frames:
            result["frames"] = self.frames
        return result

    def to_csv(self) -> str:
        """One row per face per frame, with each task's current (smoothed) answer."""
        columns = ["frame", "time", "face", "x1", "y1", "x2", "y2"]
        rows = []
        for record in self.frames:
            for face in record["faces"]:
                row = {"frame": record["frame"], "time": record["time"], "face": face["number"],
                       **dict(zip(("x1", "y1", "x2", "y2"), face["box"]))}
                for task, answer in face.items():
                    if not isinstance(answer, dict) or task == "raw":
                        continue
                    if "years" in answer:
                        row.update({task: answer["years"], f"{task}_low": answer["low"], f"{task}_high": answer["high"]})
                    else:
                        row.update({task: answer["label"], f"{task}_confidence": answer["confidence"]})
                        row.update({f"{task}_{label}": p for label, p in answer["probs"].items()})
                columns += [key for key in row if key not in columns]
                rows.append(row)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()


def analyze_video(source, predictor: Predictor, tasks: list[str] | None = None, limits: VideoLimits = NO_LIMITS,
                  annotate: bool = True, detect_every: int = DETECT_EVERY,
                  progress: Callable[[int, int], None] | None = None) -> VideoAnalysis:
    """Every frame of a video path or bytes; `BadVideo` with a plain message when it cannot be done."""
    import av

    size = len(source) if isinstance(source, (bytes, bytearray)) else os.path.getsize(source)
    if size == 0:
        raise BadVideo("The file is empty.")
    container, info = open_video(source)
    try:
        limits.check(info, size)
        shape = work_size(info)
        scale = info.width / shape[0]  # boxes are reported in the video's own pixels
        tracker = FaceTracker(predictor, tasks, detect_every=detect_every, frame_rate=float(info.rate))
        analysis = VideoAnalysis(info, errors=dict(tracker.errors))
        writer = Mp4Writer(shape, info.rate) if annotate else None
        seen: dict[int, dict] = {}
        try:
            for index, (at, image) in enumerate(decode(container, info, shape)):
                if at > limits.seconds + 1.0:
                    raise BadVideo(f"The video lasts longer than {clock(limits.seconds)}, the limit.")
                faces = tracker.step(image, at)
                analysis.frames.append(frame_record(index, at, faces, scale))
                for face in faces:
                    collect(seen, face, at)
                if writer:
                    writer.write(draw_tracked(image, faces))
                if progress:
                    progress(index + 1, info.frames)
        except av.FFmpegError:
            if not analysis.frames:
                raise BadVideo("This file is not a video we can read (no frame could be decoded).") from None
            analysis.damaged_at = analysis.frames[-1]["time"]
        if not analysis.frames:
            raise BadVideo("This video has no frames.")
        analysis.tracks = [track_summary(number, entry, tracker.models) for number, entry in sorted(seen.items())]
        analysis.detections = tracker.detections
        analysis.video = writer.finish() if writer else None
        return analysis
    finally:
        container.close()


def frame_record(index: int, at: float, faces: list[TrackedFace], scale: float) -> dict:
    entries = []
    for face in faces:
        entry = {"number": face.number, "box": [round(v * scale, 1) for v in face.box], "detected": face.detected}
        entry.update({task: answer.as_dict() for task, answer in face.answers.items()})
        if face.raw:
            entry["raw"] = {task: answer.as_dict() for task, answer in face.raw.items()}
        entries.append(entry)
    return {"frame": index, "time": round(at, 3), "faces": entries}


def collect(seen: dict[int, dict], face: TrackedFace, at: float) -> None:
    entry = seen.setdefault(face.number, {"first": at, "last": at, "frames": 0, "raw": {}})
    entry["last"], entry["frames"] = at, entry["frames"] + 1
    for task, answer in face.raw.items():
        entry["raw"].setdefault(task, []).append(
            answer.years if isinstance(answer, AgePrediction) else list(answer.probs.values()))


def track_summary(number: int, entry: dict, models: dict) -> dict:
    """A face over its whole time in view: mean class probabilities, median age (with its interval)."""
    summary = {"number": number, "first_seen": round(entry["first"], 3), "last_seen": round(entry["last"], 3),
               "frames": entry["frames"]}
    for task, values in entry["raw"].items():
        combined = float(np.median(values)) if not isinstance(values[0], list) else np.mean(values, axis=0).tolist()
        summary[task] = models[task].answer(combined).as_dict()
        summary[task]["answers"] = len(values)
    return summary
