"""Attribute models: one checkpoint format (timm's Hugging Face layout, safetensors only),
loaded lazily, once per process, thread-safe."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .config import Manifest, TaskConfig, load_manifest
from .locations import hub_ref

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PICKLE_FILES = ("pytorch_model.bin", "model.pth", "model.pt", "checkpoint.pth.tar")


class ModelUnavailable(RuntimeError):
    """No location of a task's model could be loaded: `advice` (for users) says how to get one,
    `tried` (for the owner) why each location failed."""

    def __init__(self, task: str, advice: str, tried: tuple[str, ...] = ()):
        self.task, self.advice, self.tried = task, advice, tuple(tried)
        super().__init__(advice + (" Tried: " + "; ".join(self.tried) if self.tried else ""))


class ModelMismatch(RuntimeError):
    """A model folder disagrees with spaces.yaml (labels, kind)."""


# --- the checkpoint format ------------------------------------------------------------

def save_checkpoint(model, directory: str | Path, labels: list[str], input_size: int,
                    extra: dict[str, Any] | None = None, dtype: str | None = None) -> Path:
    """Write `config.json` + `model.safetensors` so that timm (`local-dir:`/`hf-hub:`) and
    `transformers.pipeline("image-classification")` both load it.

    `extra` lands at the top level of config.json (temperature, task, age interval...).
    `dtype="float16"` halves the file; loading casts the weights back to the model's float32.
    """
    import timm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    timm.models.save_for_hf(
        model, str(directory),
        model_config={"label_names": list(labels), **(extra or {})},
        data_config={"input_size": (3, input_size, input_size), "crop_pct": 1.0},
        safe_serialization=True,
    )
    # transformers' timm wrapper passes num_classes itself and fails when model_args repeats it
    config_path = directory / CONFIG_FILE
    config = json.loads(config_path.read_text())
    config.get("model_args", {}).pop("num_classes", None)
    config_path.write_text(json.dumps(config, indent=2))
    if dtype:
        store_weights_as(directory / WEIGHTS_FILE, dtype)
    return directory


def store_weights_as(path: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    weights = {name: t.to(target) if t.is_floating_point() else t for name, t in load_file(path).items()}
    save_file(weights, path, metadata={"format": "pt"})


def fetch_location(location: str) -> Path:
    """A local folder for a model location: itself, or the Hub snapshot (cache first, so
    Spaces' `preload_from_hub` and `HF_HUB_OFFLINE=1` work)."""
    ref = hub_ref(location)
    if ref:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref.repo_id, revision=ref.revision,
                                      allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, "*.md", "*.json", "*.png"]))
    return Path(location)


def read_model_config(folder: Path) -> dict:
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}")
    if not (folder / WEIGHTS_FILE).is_file():
        pickles = [name for name in PICKLE_FILES if (folder / name).exists()]
        if pickles:
            raise ValueError(f"{folder} holds {pickles[0]}, a pickle checkpoint: refused, since loading "
                             f"a pickle can run arbitrary code. Convert it to {WEIGHTS_FILE}.")
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_FILE}")
    return json.loads((folder / CONFIG_FILE).read_text())


# --- predictions ------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassPrediction:
    label: str            # the top label, or "uncertain" below the task's threshold
    confidence: float     # calibrated probability of the top class
    probs: dict[str, float]
    uncertain: bool

    def as_dict(self) -> dict:
        return {"label": self.label, "confidence": round(self.confidence, 4),
                "uncertain": self.uncertain, "probs": {k: round(v, 4) for k, v in self.probs.items()}}


@dataclass(frozen=True)
class AgePrediction:
    years: float
    low: float     # interval from the validation residuals stored with the model
    high: float
    band: str

    @property
    def label(self) -> str:
        return f"{self.years:.0f} years ({self.low:.0f}–{self.high:.0f})"

    def as_dict(self) -> dict:
        return {"years": round(self.years, 1), "low": round(self.low, 1),
                "high": round(self.high, 1), "band": self.band}


def forward(net, images, flip: bool = False):
    """The model's outputs; with `flip`, averaged with those of the mirrored images (test-time
    augmentation: faces are left-right symmetric, and training flips them half the time)."""
    import torch

    if not flip:
        return net(images).float()
    both = net(torch.cat([images, images.flip(-1)])).float()  # one forward for the pair
    return (both[: len(images)] + both[len(images):]) / 2.0


class AttributeModel:
    """A loaded timm model plus what the app needs around it: labels, preprocessing, calibration."""

    def __init__(self, task: TaskConfig, net, config: dict, source: str):
        import timm.data
        import torch

        from .fold import fold_batch_norms

        self.task = task
        data_config = timm.data.resolve_data_config(model=net)
        self.input_size = int(data_config["input_size"][-1])
        self.transform = timm.data.create_transform(**data_config)
        # channels-last suits CPU convolutions (oneDNN): about a quarter less time per face for these nets;
        # folding the batch norms into the convolutions saves about another tenth
        self.net = fold_batch_norms(net.eval().to(memory_format=torch.channels_last), self.input_size)
        self.source = source
        self.labels = list(config.get("label_names") or task.labels)
        self.temperature = float(config.get("temperature", 1.0))
        interval = config.get("age_interval") or {}
        self.interval = (float(interval.get("low", -5.0)), float(interval.get("high", 5.0)))
        self.metrics = config.get("metrics", {})
        self.flip = bool(config.get("test_time_flip", False))  # as the model was evaluated
        self._check_against(task)

    def _check_against(self, task: TaskConfig) -> None:
        if task.is_classification and self.labels != list(task.labels):
            raise ModelMismatch(f"model at {self.source} has labels {self.labels}, "
                                f"but spaces.yaml tasks.{task.name}.labels says {list(task.labels)}")
        outputs = getattr(self.net, "num_classes", None)
        expected = len(task.labels) if task.is_classification else 1
        if outputs != expected:
            raise ModelMismatch(f"model at {self.source} has {outputs} outputs; "
                                f"tasks.{task.name} ({task.kind}) needs {expected}")

    @classmethod
    def load(cls, task: TaskConfig, location: str) -> "AttributeModel":
        import timm

        folder = fetch_location(location)
        config = read_model_config(folder)
        net = timm.create_model(f"local-dir:{folder}", pretrained=True)
        return cls(task, net, config, source=location)

    def batch(self, crops: list[Image.Image]):
        import torch
        return torch.stack([self.transform(crop) for crop in crops]).contiguous(memory_format=torch.channels_last)

    def predict(self, crops: list[Image.Image]) -> list[ClassPrediction | AgePrediction]:
        """All crops in one forward pass."""
        import torch

        if not crops:
            return []
        with torch.inference_mode():
            outputs = forward(self.net, self.batch(crops), self.flip)
        if not self.task.is_classification:
            return [self._age(float(value)) for value in outputs[:, 0]]
        probs = torch.softmax(outputs / self.temperature, dim=-1)
        return [self._classes(row.tolist()) for row in probs]

    def answer(self, value) -> ClassPrediction | AgePrediction:
        """The prediction for outputs that were already combined elsewhere (smoothed over video
        frames): class probabilities for a classifier, years for age."""
        return self._classes(list(value)) if self.task.is_classification else self._age(float(value))

    def _classes(self, probs: list[float]) -> ClassPrediction:
        best = max(range(len(probs)), key=probs.__getitem__)
        uncertain = probs[best] < self.task.uncertain_below
        return ClassPrediction(label="uncertain" if uncertain else self.labels[best],
                               confidence=probs[best], uncertain=uncertain,
                               probs=dict(zip(self.labels, probs)))

    def _age(self, years: float) -> AgePrediction:
        years = max(0.0, years)
        low, high = max(0.0, years + self.interval[0]), years + self.interval[1]
        return AgePrediction(years=years, low=low, high=high, band=self.task.band_for(years))


# --- the per-process store ------------------------------------------------------------------

def how_to_train(task: TaskConfig) -> str:
    return (f"No model for '{task.name}' yet. Train one with `python -m finetune recipe {task.name}` (its "
            f"recipe in finetune/recipes.yaml) or `python -m finetune --task {task.name} --data PATH` (it writes "
            f"{task.models[0]}), or point spaces.yaml tasks.{task.name}.models at a Hub repo (hf-hub:org/name).")


class ModelStore:
    """Loads each task's model on first use, trying its locations in order; never twice."""

    def __init__(self, manifest: Manifest | None = None):
        self.manifest = manifest or load_manifest()
        self._models: dict[str, AttributeModel] = {}
        self._errors: dict[str, ModelUnavailable] = {}
        self._locks = {name: threading.Lock() for name in self.manifest.tasks}

    def get(self, name: str) -> AttributeModel:
        task = self.manifest.task(name)
        with self._locks[name]:
            if name in self._models:
                return self._models[name]
            if name in self._errors:  # a fresh exception each time: a shared one would grow its traceback
                known = self._errors[name]
                raise ModelUnavailable(known.task, known.advice, known.tried)
            tried = []
            for location in task.models:
                try:
                    model = AttributeModel.load(task, self.manifest.resolve(location))
                except ModelMismatch:
                    raise  # a wrong model is a configuration error, not a missing one
                except Exception as err:  # noqa: BLE001 - try the next location, report all
                    tried.append(f"{location}: {err}")
                    continue
                self._models[name] = model
                return model
            self._errors[name] = ModelUnavailable(name, how_to_train(task), tuple(tried))
            raise self._errors[name]

    def available(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except ModelUnavailable:
            return False
