"""One photo in, every face's attributes out: the path shared by the app, the CLI and the API."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from PIL import Image

from .config import Manifest, TaskConfig, load_manifest
from .decode import load_image, original_size
from .faces import Face, crop_spec, get_detector, whole_image_face
from .models import AgePrediction, ClassPrediction, ModelStore, ModelUnavailable

NOT_A_FACE_MESSAGE = ("No face found, and the image as a whole does not look like a face either, "
                      "so there is no answer.")


def no_face_message(whole_image_option: str | None = None) -> str:
    """Said when no face is found; `whole_image_option` is how this front end asks for the
    whole-image mode (the app ticks a box, the CLI adds a flag), so each names its own control."""
    hint = f", or {whole_image_option} if it is a close-up of one face" if whole_image_option else ""
    return f"No face found in this photo. Try a clearer, front-facing photo{hint}."


def no_model_message(task: TaskConfig) -> str:
    return f"There is no {task.title.lower()} model yet, so there is no {task.title.lower()} answer."


@dataclass
class Analysis:
    image: Image.Image
    faces: list[Face]
    predictions: dict[str, list[ClassPrediction | AgePrediction]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # task -> why it has no answer
    whole_image: bool = False
    not_a_face: bool = False         # whole-image mode was asked for, but the image does not look like a face
    low_resolution_below: int = 0    # face boxes narrower than this (pixels) are marked low resolution

    @property
    def reduced(self) -> str:
        """A note when the photo was analysed smaller than its file, else ""."""
        width, height = original_size(self.image)
        if (width, height) == self.image.size:
            return ""
        return (f"The photo ({width:,} x {height:,} pixels) was reduced to "
                f"{self.image.width:,} x {self.image.height:,} for the analysis.")

    def low_resolution(self, face: Face) -> bool:
        return face.box[2] - face.box[0] < self.low_resolution_below

    def message(self, whole_image_option: str | None = None) -> str:
        if not self.faces:
            said = NOT_A_FACE_MESSAGE if self.not_a_face else no_face_message(whole_image_option)
            return " ".join(filter(None, [said, self.reduced]))
        count = len(self.faces)
        found = "Treated the whole image as one face." if self.whole_image else \
            f"Found {count} face{'s' if count != 1 else ''}, numbered left to right."
        small = sum(self.low_resolution(face) for face in self.faces)
        if small:
            found += (f" {'One face is' if small == 1 else f'{small} faces are'} small in this photo "
                      f"(under {self.low_resolution_below} pixels wide): low resolution, so less reliable.")
        return " ".join(filter(None, [found, self.reduced, *self.errors.values()]))

    def as_dict(self, whole_image_option: str | None = None) -> dict:
        faces = []
        for face in self.faces:
            entry = {"index": face.index, "box": [round(v, 1) for v in face.box], "score": round(face.score, 4),
                     "low_resolution": self.low_resolution(face)}
            for task, predictions in self.predictions.items():
                entry[task] = predictions[face.index - 1].as_dict()
            faces.append(entry)
        return {"faces": faces, "message": self.message(whole_image_option), "errors": dict(self.errors),
                "whole_image": self.whole_image, "width": self.image.width, "height": self.image.height,
                "original_size": list(original_size(self.image))}


def crops_for(image: Image.Image, faces: list[Face], task: TaskConfig, manifest: Manifest,
              size: int) -> list[Image.Image]:
    spec = crop_spec(task, manifest.detector)  # the same spec finetune crops its training data with
    return [spec.cut(image, face.box, size) for face in faces]


def widen(prediction: AgePrediction, years: float) -> AgePrediction:
    """The same answer with its interval `years` wider on each side (a low-resolution face)."""
    return dataclasses.replace(prediction, low=max(0.0, prediction.low - years), high=prediction.high + years)


class Predictor:
    """Detector + models for a manifest; cheap to create, loads nothing until first used."""

    def __init__(self, manifest: Manifest | None = None, store: ModelStore | None = None):
        self.manifest = manifest or load_manifest()
        self.store = store or ModelStore(self.manifest)
        self.detector = get_detector(self.manifest.detector)

    def available_tasks(self) -> list[str]:
        """The tasks whose model loads: what the app can actually answer now."""
        return [name for name in self.manifest.tasks if self.store.available(name)]

    def analyze(self, source, tasks: list[str] | None = None, whole_image_if_no_face: bool = False) -> Analysis:
        """Every face's answers for `tasks` (default: every task that has a model). A task asked
        for by name without a model gets a plain sentence in `errors` instead."""
        image = load_image(source)
        faces = self.detector.detect(image)
        config = self.manifest.detector
        analysis = Analysis(image=image, faces=faces, low_resolution_below=config.low_resolution_below)
        if not faces and whole_image_if_no_face:
            # only an image that MTCNN itself would call a face: a coffee cup gets no age
            score = self.detector.whole_image_score(image)
            if score >= config.whole_image_min_score:
                face = whole_image_face(image)
                analysis.faces = [dataclasses.replace(face, score=score)]
                analysis.whole_image = True
            else:
                analysis.not_a_face = True
        if not analysis.faces:
            return analysis
        for name in tasks or self.available_tasks():
            task = self.manifest.task(name)
            try:
                model = self.store.get(name)
            except ModelUnavailable:
                analysis.errors[name] = no_model_message(task)
                continue
            crops = crops_for(image, analysis.faces, task, self.manifest, model.input_size)
            predictions = model.predict(crops)
            if task.low_resolution_margin:
                predictions = [widen(p, task.low_resolution_margin) if analysis.low_resolution(face) else p
                               for p, face in zip(predictions, analysis.faces)]
            analysis.predictions[name] = predictions
        return analysis
