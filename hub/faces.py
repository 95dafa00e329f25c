"""Images in, numbered face crops out: the one crop path shared by the app and `finetune`."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .config import DetectorConfig, TaskConfig

# Where box refinement starts, around each MTCNN box: (dx, dy) in box sizes, and scale.
REFINE_STARTS = ((0.0, 0.0, 1.0), (0.0, 0.0, 0.9), (0.0, 0.0, 1.1),
                 (0.05, 0.0, 1.0), (-0.05, 0.0, 1.0), (0.0, 0.05, 1.0), (0.0, -0.05, 1.0))


@dataclass(frozen=True)
class Face:
    index: int                              # 1-based, numbered left to right
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels
    score: float                            # detector confidence; 1.0 for a whole-image "face"


# --- cropping --------------------------------------------------------------------------

def square_box(box, margin: float, shift: float = 0.0) -> tuple[float, float, float, float]:
    """A square around the box's centre, its side the longer edge plus `margin` on each side
    (negative: tighter than the box); `shift` moves it down by that fraction of the longer edge."""
    x1, y1, x2, y2 = box
    edge = max(x2 - x1, y2 - y1)
    side = edge * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0 + shift * edge
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def crop_face(image: Image.Image, box, size: int, margin: float, grayscale: bool = False,
              shift: float = 0.0) -> Image.Image:
    """Square crop with margin, resized to `size`; parts outside the photo are black."""
    x1, y1, x2, y2 = (round(v) for v in square_box(box, margin, shift))
    crop = image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))
    crop = crop.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if grayscale:
        crop = crop.convert("L").convert("RGB")
    return crop


@dataclass(frozen=True)
class CropSpec:
    """How one task cuts a face: framed like its training data. The app and `finetune` share it."""
    margin: float           # of the face box on each side (negative: tighter than the box)
    shift: float = 0.0      # the centre moved down by this fraction of the box
    grayscale: bool = False

    def cut(self, image: Image.Image, box, size: int) -> Image.Image:
        return crop_face(image, box, size, self.margin, self.grayscale, self.shift)

    def prepare(self, image: Image.Image, size: int) -> Image.Image:
        """An image that is already a face crop: only resized (and grayed) the same way."""
        return prepare_cropped(image, size, self.grayscale)


def crop_spec(task: TaskConfig, detector: DetectorConfig) -> CropSpec:
    """The task's framing: its own crop_margin, else the detector's margin."""
    margin = detector.margin if task.crop_margin is None else task.crop_margin
    return CropSpec(margin=margin, shift=task.crop_shift, grayscale=task.grayscale)


def largest_face(faces: list[Face]) -> Face:
    """The face with the largest box: the subject of an image that should hold one face."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def whole_image_face(image: Image.Image) -> Face:
    """The whole photo as one face, for already-cropped data or the 'no face found' fallback."""
    return Face(index=1, box=(0.0, 0.0, float(image.width), float(image.height)), score=1.0)


def prepare_cropped(image: Image.Image, size: int, grayscale: bool = False) -> Image.Image:
    """An already-cropped face (UTKFace, FER2013): no margin, just the same resize."""
    return crop_face(image, whole_image_face(image).box, size, margin=0.0, grayscale=grayscale)


# --- detection ---------------------------------------------------------------------------

class FaceDetector:
    """MTCNN (facenet-pytorch, weights ship in its wheel), loaded lazily, once, thread-safe."""

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        self._mtcnn = None
        self._lock = threading.Lock()

    def _model(self):
        with self._lock:
            if self._mtcnn is None:
                from facenet_pytorch import MTCNN
                self._mtcnn = MTCNN(keep_all=True, device="cpu", post_process=False,
                                    min_face_size=self.config.min_face_size)
                # channels-last weights keep the conv/PReLU/max-pool chain in oneDNN's fast
                # layout: same boxes (to 1e-5 px), detection ~30% faster (benchmarks/README.md)
                import torch
                for net in (self._mtcnn.pnet, self._mtcnn.rnet, self._mtcnn.onet):
                    net.to(memory_format=torch.channels_last)
            return self._mtcnn

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces above the confidence threshold, numbered left to right."""
        scale = min(1.0, self.config.max_side / max(image.size))
        small = image if scale == 1.0 else image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR)
        # MTCNN's pyramid starts at min_face_size: a smaller photo has no scale to search (and
        # facenet-pytorch fails on an empty pyramid)
        if min(small.size) < max(12, self.config.min_face_size):
            return []
        import torch
        with torch.inference_mode():
            boxes, probs = self._model().detect(small)
        if boxes is None:
            return []
        found = [(tuple(float(v) / scale for v in box), float(p))
                 for box, p in zip(boxes, probs) if p is not None and p >= self.config.min_confidence]
        found.sort(key=lambda item: (item[0][0], item[0][1]))
        found = found[: self.config.max_faces]
        boxes = self._refine(image, [box for box, _ in found])
        return [Face(index=i + 1, box=box, score=p) for i, (box, (_, p)) in enumerate(zip(boxes, found))]

    def _onet(self, crops: list[Image.Image]):
        """O-Net's (box regression, face probability) for 48x48 crops, normalised as MTCNN does."""
        import torch
        batch = torch.from_numpy(np.stack([np.asarray(c, dtype=np.float32) for c in crops])).permute(0, 3, 1, 2)
        with torch.inference_mode():
            regression, _, probs = self._model().onet((batch.contiguous() - 127.5) * 0.0078125)
        return regression.tolist(), probs[:, 1].tolist()

    def _refine(self, image: Image.Image, boxes: list[tuple]) -> list[tuple]:
        """Each box re-found by O-Net from several starts around it, and the results averaged.

        MTCNN's final box depends on which pyramid scale proposed the face, so the same face at
        another size got a box a few percent off, and the attribute models answered differently
        (one face, three ages: `python -m benchmarks.face_size`). Each start here (the box, 10%
        smaller and larger, 5% to each side) goes through `refine_steps` O-Net regressions on a
        square crop around it; their mean hardly depends on where MTCNN started. On UTKFace the
        refined boxes are on average within 1% of MTCNN's, so the framing measured with
        `python -m finetune framing` still holds.
        """
        if not boxes or not self.config.refine_steps:
            return boxes
        current = [moved(box, *start) for box in boxes for start in REFINE_STARTS]
        for _ in range(self.config.refine_steps):
            squares = [square_box(box, 0.0) for box in current]
            crops = [image.crop(tuple(round(v) for v in sq)).resize((48, 48), Image.Resampling.BOX)
                     for sq in squares]
            regressions, _ = self._onet(crops)
            new = [tuple(v + r * (sq[2] - sq[0]) for v, r in zip(sq, reg)) for sq, reg in zip(squares, regressions)]
            # a start that O-Net would move far stays put (an odd face: keep what we had)
            current = [after if overlap(after, before) >= 0.6 else before for after, before in zip(new, current)]
        starts = len(REFINE_STARTS)
        refined = [tuple(float(np.mean(side)) for side in zip(*current[i * starts:(i + 1) * starts]))
                   for i in range(len(boxes))]
        return [box if overlap(box, old) >= 0.6 else old for box, old in zip(refined, boxes)]

    def whole_image_score(self, image: Image.Image) -> float:
        """How much the whole image looks like one face, 0..1: MTCNN's R-Net and O-Net run on the
        image itself as their candidate window (and on it with a 10% border), each view averaged
        with its mirror image. Used before treating an image where no face was found as a face.

        On scikit-image's labelled 25 px LFW sample: 100 faces all above 0.9, 100 non-faces all
        below 0.15; photos and crops of scenes (coffee, rocket, a cat...) stay below 0.35.
        """
        import torch

        image = image.convert("RGB")
        fill = tuple(int(v) for v in np.asarray(image.resize((8, 8), Image.Resampling.BOX)).reshape(-1, 3).mean(0))
        views = []
        for border in (0.0, 0.1):
            side = round(max(image.size) * (1 + 2 * border))
            view = image
            if border or image.width != image.height:
                view = Image.new("RGB", (side, side), fill)
                view.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
            views += [view, view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]

        def batch(size):
            return torch.from_numpy(np.stack([np.asarray(v.resize((size, size), Image.Resampling.BOX),
                                                         dtype=np.float32) for v in views])).permute(0, 3, 1, 2)

        nets = self._model()
        with torch.inference_mode():
            rnet = nets.rnet((batch(24).contiguous() - 127.5) * 0.0078125)[1][:, 1]
            onet = nets.onet((batch(48).contiguous() - 127.5) * 0.0078125)[2][:, 1]
        both = torch.minimum(rnet, onet).view(2, 2).mean(dim=1)  # (border) x (view, mirror)
        return float(both.max())


def moved(box, dx: float, dy: float, scale: float) -> tuple[float, float, float, float]:
    """The box shifted by (dx, dy) of its size and scaled about its centre."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + dx * width, (y1 + y2) / 2 + dy * height
    return (cx - width * scale / 2, cy - height * scale / 2, cx + width * scale / 2, cy + height * scale / 2)


def overlap(a, b) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


_detectors: dict[DetectorConfig, FaceDetector] = {}
_detectors_lock = threading.Lock()


def get_detector(config: DetectorConfig | None = None) -> FaceDetector:
    config = config or DetectorConfig()
    with _detectors_lock:
        return _detectors.setdefault(config, FaceDetector(config))
