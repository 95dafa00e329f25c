"""One photo in, every face's attributes out: the path shared by the app, the CLI and the API."""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from .config import Manifest, TaskConfig, load_manifest
from .faces import Face, crop_spec, get_detector, load_image, original_size, whole_image_face
from .models import AgePrediction, ClassPrediction, ModelStore, ModelUnavailable

NO_FACE_MESSAGE = ("No face found in this photo. Try a clearer, front-facing photo, "
                   "or tick 'classify the whole image' to treat the photo as one face.")


@dataclass
class Analysis:
    image: Image.Image
    faces: list[Face]
    predictions: dict[str, list[ClassPrediction | AgePrediction]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # task -> why it has no answer
    whole_image: bool = False

    @property
    def reduced(self) -> str:
        """A note when the photo was analysed smaller than its file, else ""."""
        width, height = original_size(self.image)
        if (width, height) == self.image.size:
            return ""
        return (f"The photo ({width:,} x {height:,} pixels) was reduced to "
                f"{self.image.width:,} x {self.image.height:,} for the analysis.")

    @property
    def message(self) -> str:
        if not self.faces:
            return " ".join(filter(None, [NO_FACE_MESSAGE, self.reduced]))
        count = len(self.faces)
        found = "Treated the whole image as one face." if self.whole_image else \
            f"Found {count} face{'s' if count != 1 else ''}, numbered left to right."
        return " ".join(filter(None, [found, self.reduced, *self.errors.values()]))

    def as_dict(self) -> dict:
        faces = []
        for face in self.faces:
            entry = {"index": face.index, "box": [round(v, 1) for v in face.box], "score": round(face.score, 4)}
            for task, predictions in self.predictions.items():
                entry[task] = predictions[face.index - 1].as_dict()
            faces.append(entry)
        return {"faces": faces, "message": self.message, "errors": dict(self.errors),
                "whole_image": self.whole_image, "width": self.image.width, "height": self.image.height,
                "original_size": list(original_size(self.image))}


def crops_for(image: Image.Image, faces: list[Face], task: TaskConfig, manifest: Manifest,
              size: int) -> list[Image.Image]:
    spec = crop_spec(task, manifest.detector)  # the same spec finetune crops its training data with
    return [spec.cut(image, face.box, size) for face in faces]


class Predictor:
    """Detector + models for a manifest; cheap to create, loads nothing until first used."""

    def __init__(self, manifest: Manifest | None = None, store: ModelStore | None = None):
        self.manifest = manifest or load_manifest()
        self.store = store or ModelStore(self.manifest)
        self.detector = get_detector(self.manifest.detector)

    def analyze(self, source, tasks: list[str] | None = None, whole_image_if_no_face: bool = False) -> Analysis:
        image = load_image(source)
        faces = self.detector.detect(image)
        whole = not faces and whole_image_if_no_face
        if whole:
            faces = [whole_image_face(image)]
        analysis = Analysis(image=image, faces=faces, whole_image=whole)
        if not faces:
            return analysis
        for name in tasks or list(self.manifest.tasks):
            task = self.manifest.task(name)
            try:
                model = self.store.get(name)
            except ModelUnavailable as err:
                analysis.errors[name] = err.advice
                continue
            crops = crops_for(image, faces, task, self.manifest, model.input_size)
            analysis.predictions[name] = model.predict(crops)
        return analysis
