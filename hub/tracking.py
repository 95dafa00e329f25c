"""Faces followed across frames: ByteTrack (Roboflow's `trackers`) keeps each face's number, MTCNN
runs only when it is needed, and each face's answers are smoothed over time.

Used frame by frame by the video files (hub/video.py) and the live webcam (hub/ui_video.py).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .faces import Face
from .models import AgePrediction, ClassPrediction, ModelUnavailable
from .predict import Predictor, crops_for, no_model_message

DETECT_EVERY = 3       # frames between detections while every face is tracked and nothing else moves
WINDOW = 8             # class probabilities: mean of a face's last 8 answers
AGE_WINDOW = 15        # age: median of a face's last 15 answers
LOST_SECONDS = 1.0     # a face out of sight this long gets a new number when it comes back
MOTION_LEVEL = 6.0     # mean change (0-255 gray levels) outside the tracked faces that calls the detector
THUMB = (80, 60)       # frames are compared at this size: cheap, and it averages sensor noise away


@dataclass
class TrackedFace:
    """One face in one frame."""
    number: int                   # 1, 2, ... in order of appearance; kept while the face is in view
    box: tuple[float, float, float, float]
    detected: bool                # found by MTCNN in this frame (else moved along from the last detection)
    answers: dict[str, ClassPrediction | AgePrediction] = field(default_factory=dict)  # smoothed
    raw: dict[str, ClassPrediction | AgePrediction] = field(default_factory=dict)  # this frame's, if the models ran


class Smoother:
    """A face's recent answers: class probabilities averaged over `window`, age as a running median."""

    def __init__(self, window: int = WINDOW, age_window: int = AGE_WINDOW):
        self.window, self.age_window = window, age_window
        self.recent: dict[str, deque] = {}

    def add(self, task: str, prediction: ClassPrediction | AgePrediction) -> None:
        if isinstance(prediction, AgePrediction):
            self.recent.setdefault(task, deque(maxlen=self.age_window)).append(prediction.years)
        else:
            self.recent.setdefault(task, deque(maxlen=self.window)).append(list(prediction.probs.values()))

    def value(self, task: str):
        """Mean probabilities, or median years; None before the first answer."""
        recent = self.recent.get(task)
        if not recent:
            return None
        if isinstance(recent[0], float):
            return float(np.median(recent))
        return np.mean(recent, axis=0).tolist()


@dataclass
class _Track:
    number: int
    box: tuple
    seen_at: float
    previous: tuple | None = None   # the box and time of the detection before, to move the box along
    previous_at: float = 0.0
    classified_frame: int = -10**9
    smoother: Smoother = field(default_factory=Smoother)

    def moved(self, box: tuple, at: float) -> None:
        self.previous, self.previous_at = self.box, self.seen_at
        self.box, self.seen_at = box, at

    def box_at(self, at: float) -> tuple:
        """Where the face should be at `at`, at the speed it had between its last two detections."""
        if self.previous is None or self.seen_at <= self.previous_at:
            return self.box
        step = min(1.0, (at - self.seen_at) / (self.seen_at - self.previous_at))  # never further than one gap
        return tuple(b + (b - p) * step for b, p in zip(self.box, self.previous))


class FaceTracker:
    """Frames in (with their time in seconds), numbered faces with smoothed answers out."""

    def __init__(self, predictor: Predictor, tasks: list[str] | None = None, detect_every: int = DETECT_EVERY,
                 window: int = WINDOW, age_window: int = AGE_WINDOW, frame_rate: float = 30.0):
        from trackers import ByteTrackTracker

        self.predictor = predictor
        self.detect_every = max(1, detect_every)
        self.window, self.age_window = window, age_window
        self.models, self.errors = {}, {}
        for name in tasks or predictor.available_tasks():  # as for photos: only what has a model
            try:
                self.models[name] = predictor.store.get(name)
            except ModelUnavailable:
                self.errors[name] = no_model_message(predictor.manifest.task(name))
        # the lost-track buffer counts 30 fps frames; with timestamps it is LOST_SECONDS at any rate.
        # Two detections confirm a face (one false MTCNN box gets no number).
        self._bytetrack = ByteTrackTracker(lost_track_buffer=round(LOST_SECONDS * 30), frame_rate=frame_rate,
                                           minimum_consecutive_frames=2)
        self.tracks: dict[int, _Track] = {}   # by number, kept while ByteTrack keeps the track
        self.shown: list[int] = []             # numbers matched by the last detection
        self.frame = -1
        self.detections = 0                    # MTCNN runs so far
        self._last_detected_frame = -10**9
        self._unsettled = True                 # a face not yet numbered, or a number not found again
        self._thumb: np.ndarray | None = None  # gray thumbnail at the last detection

    def step(self, image: Image.Image, at: float) -> list[TrackedFace]:
        """The faces in this frame; `at` (seconds) must increase from frame to frame."""
        self.frame += 1
        thumb = np.asarray(image.convert("L").resize(THUMB, Image.Resampling.BILINEAR), dtype=np.float32)
        if self._needs_detection(thumb, image.size, at):
            self._detect(image, thumb, at)
            shown = [(self.tracks[n], True) for n in self.shown]
        else:
            shown = [(self.tracks[n], False) for n in self.shown if n in self.tracks]
        faces = [TrackedFace(number=track.number, box=track.box if detected else track.box_at(at), detected=detected)
                 for track, detected in shown]
        due = [(track, face) for (track, detected), face in zip(shown, faces)
               if detected and self.frame - track.classified_frame >= self.detect_every]
        self._classify(image, due)
        for (track, _), face in zip(shown, faces):
            face.answers = self._smoothed(track)
        return faces

    # --- when to run MTCNN --------------------------------------------------------------------

    def _needs_detection(self, thumb: np.ndarray, size: tuple[int, int], at: float) -> bool:
        if self._unsettled or self.frame - self._last_detected_frame >= self.detect_every or self._thumb is None:
            return True
        # something changed outside the tracked faces: a new face may have come in
        outside = np.ones(thumb.shape, dtype=bool)
        scale_x, scale_y = THUMB[0] / size[0], THUMB[1] / size[1]
        for number in self.shown:
            track = self.tracks[number]
            for x1, y1, x2, y2 in (track.box, track.box_at(at)):
                pad_x, pad_y = x2 - x1, y2 - y1  # a head-and-shoulders area moves with the face
                outside[max(0, int((y1 - pad_y) * scale_y)): max(0, int((y2 + pad_y) * scale_y) + 1),
                        max(0, int((x1 - pad_x) * scale_x)): max(0, int((x2 + pad_x) * scale_x) + 1)] = False
        if not outside.any():
            return False
        return float(np.abs(thumb - self._thumb)[outside].mean()) > MOTION_LEVEL

    def _detect(self, image: Image.Image, thumb: np.ndarray, at: float) -> None:
        import supervision as sv

        found = self.predictor.detector.detect(image)
        self.detections += 1
        self._last_detected_frame, self._thumb = self.frame, thumb
        if found:
            detections = sv.Detections(xyxy=np.array([f.box for f in found], dtype=np.float32),
                                       confidence=np.array([f.score for f in found], dtype=np.float32))
        else:
            detections = sv.Detections.empty()
        tracked = self._bytetrack.update(detections, timestamp=at)
        numbers = []
        for box, tracker_id in zip(tracked.xyxy, tracked.tracker_id):
            if tracker_id < 0:
                continue
            number, box = int(tracker_id) + 1, tuple(float(v) for v in box)
            if number in self.tracks:
                self.tracks[number].moved(box, at)
            else:
                self.tracks[number] = _Track(number, box, at, smoother=Smoother(self.window, self.age_window))
            numbers.append(number)
        alive = {int(t.tracker_id) + 1 for t in self._bytetrack.tracks if t.tracker_id >= 0}
        self.tracks = {n: t for n, t in self.tracks.items() if n in alive or n in numbers}
        self.shown = sorted(numbers)
        lost = alive - set(numbers)
        self._unsettled = bool(lost) or bool((tracked.tracker_id < 0).any())

    # --- answers ----------------------------------------------------------------------------

    def _classify(self, image: Image.Image, due: list[tuple[_Track, TrackedFace]]) -> None:
        """The due faces of one frame through each model in one batch."""
        if not due:
            return
        faces = [Face(index=i + 1, box=face.box, score=1.0) for i, (_, face) in enumerate(due)]
        for name, model in self.models.items():
            task = self.predictor.manifest.task(name)
            crops = crops_for(image, faces, task, self.predictor.manifest, model.input_size)
            for (track, face), prediction in zip(due, model.predict(crops)):
                face.raw[name] = prediction
                track.smoother.add(name, prediction)
        for track, _ in due:
            track.classified_frame = self.frame

    def _smoothed(self, track: _Track) -> dict[str, ClassPrediction | AgePrediction]:
        answers = {}
        for name, model in self.models.items():
            value = track.smoother.value(name)
            if value is not None:
                answers[name] = model.answer(value)
        return answers
