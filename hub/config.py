"""spaces.yaml, parsed once into typed, frozen config objects.

A malformed manifest fails at start-up with a `ManifestError` naming the key,
e.g. ``tasks.age.kind: expected one of ['classification', 'regression']``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .locations import hub_ref
from .yaml_keys import ManifestError, check, dataclass_from, optional, require, str_list

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = PROJECT_ROOT / "spaces.yaml"
TASK_KINDS = ("classification", "regression")


@dataclass(frozen=True)
class AgeBand:
    name: str
    low: float   # inclusive
    high: float  # exclusive

    def contains(self, years: float) -> bool:
        return self.low <= years < self.high


@dataclass(frozen=True)
class DataLicence:
    """The terms of a training set, which the weights trained on it inherit (copied into model cards)."""
    name: str                  # as the dataset is known: "UTKFace"
    license_name: str          # the Hub's `license_name` for `license: other`
    terms: str                 # one paragraph, for the model card
    license_link: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Where a task's training data lives: a Hub id or a local path, plus column names."""
    id: str | None = None
    path: str | None = None
    config: str | None = None
    revision: str | None = None                  # Hub only: the commit to load
    splits: dict[str, str] = field(default_factory=dict)  # Hub only: our split name -> the dataset's
    label_names: tuple[str, ...] = ()            # class names of an integer label column, in id order
    image_column: str = "image"
    label_column: str = "label"
    group_columns: tuple[str, ...] = ()
    groups_from_age: int | None = None  # the group tables again, over faces this old and over only
    already_cropped: bool = False
    licence: DataLicence | None = None  # from the manifest's `licences:`, named by the dataset


@dataclass(frozen=True)
class TaskConfig:
    name: str
    title: str
    kind: str
    labels: tuple[str, ...]
    backbone: str
    input_size: int
    dataset: DatasetSpec
    models: tuple[str, ...]          # locations tried in order: local folder or hf-hub:org/name
    model_args: dict[str, Any] = field(default_factory=dict)
    bands: tuple[AgeBand, ...] = ()  # regression only: the bands shown in the UI
    uncertain_below: float = 0.5     # classification: top probability under this reads "uncertain"
    caveat: str = ""
    crop_margin: float | None = None  # overrides detector.margin: match the framing of the training data
    crop_shift: float = 0.0           # crop centre moved down by this fraction of the face box (same reason)
    grayscale: bool = False           # serve crops in gray when the training data was gray (FER2013)
    low_resolution_margin: float = 0.0  # regression: interval widened by this on each side for a small face

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"

    def band_for(self, years: float) -> str:
        for band in self.bands:
            if band.contains(years):
                return band.name
        return ""


@dataclass(frozen=True)
class DetectorConfig:
    margin: float = 0.2           # fraction of the face box added on every side before the square crop
    min_face_size: int = 30       # pixels, at detection resolution (20 finds smaller faces, ~40% slower)
    min_confidence: float = 0.9   # MTCNN face probability
    max_side: int = 1024          # photos are downscaled to this for detection only
    max_faces: int = 64
    refine_steps: int = 2         # O-Net passes that re-centre each box (0: MTCNN's own boxes)
    whole_image_min_score: float = 0.5  # whole-image mode answers only above this face score
    low_resolution_below: int = 80      # face boxes narrower than this (photo pixels) read "low resolution"


@dataclass(frozen=True)
class SpaceConfig:
    title: str = "Face Attribute Hub"
    emoji: str = "🙂"
    color_from: str = "indigo"
    color_to: str = "pink"
    license: str = "apache-2.0"
    short_description: str = ""
    python_version: str = "3.11"
    suggested_hardware: str = "cpu-basic"


@dataclass(frozen=True)
class TrainYourOwnConfig:
    """The "Train your own" tab: a head on frozen face features, fitted in the browser session."""
    backbone: str = "models/face-backbone"  # the frozen feature extractor (a model folder, or hf-hub:)
    task: str = "field"                     # the task whose tabs and endpoints the session's model answers
    input_size: int = 160                   # faces are embedded (and served) at this size
    test_time_flip: bool = True             # features averaged with the mirrored face's
    enabled_on_spaces: bool = False         # on a Space (SPACE_ID set) the tab is off unless this is true
    max_zip_mb: int = 50
    max_images: int = 2000
    max_seconds: int = 300                  # a training that runs longer is stopped with a message
    threads: int = 1                        # torch threads while training: the other cores keep serving

    def enabled(self, environ=os.environ) -> bool:
        return self.enabled_on_spaces or not environ.get("SPACE_ID")


@dataclass(frozen=True)
class Manifest:
    space: SpaceConfig
    detector: DetectorConfig
    tasks: dict[str, TaskConfig]
    root: Path = PROJECT_ROOT
    train_your_own: TrainYourOwnConfig = TrainYourOwnConfig()

    def task(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise KeyError(f"unknown task {name!r}; the manifest has {sorted(self.tasks)}")
        return self.tasks[name]

    def resolve(self, location: str) -> str:
        """Local model folders are relative to the manifest; hub ids pass through."""
        if hub_ref(location):
            return location
        path = Path(location)
        return str(path if path.is_absolute() else self.root / path)

    @property
    def age_bands(self) -> tuple[AgeBand, ...]:
        """The bands of the manifest's age task (also the groups of an `age` column in other tasks' data)."""
        return next((task.bands for task in self.tasks.values() if task.bands), ())


def _parse_licences(raw: Any) -> dict[str, DataLicence]:
    licences = {}
    for key, item in (check(raw, "licences", dict) if raw is not None else {}).items():
        where = f"licences.{key}"
        check(item, where, dict)
        licences[key] = DataLicence(name=require(item, "name", where, str),
                                    license_name=require(item, "license_name", where, str),
                                    terms=" ".join(require(item, "terms", where, str).split()),
                                    license_link=optional(item, "license_link", where, str, None))
    return licences


def _parse_dataset(raw: Any, where: str, licences: dict[str, DataLicence]) -> DatasetSpec:
    check(raw, where, dict)
    if not raw.get("id") and not raw.get("path"):
        raise ManifestError(f"{where}: needs an 'id' (Hub dataset) or a 'path' (local data)")
    licence = optional(raw, "licence", where, str, None)
    if licence is not None and licence not in licences:
        raise ManifestError(f"{where}.licence: {licence!r} is not under licences: (it has {sorted(licences)})")
    return DatasetSpec(
        id=optional(raw, "id", where, str, None),
        path=optional(raw, "path", where, str, None),
        config=optional(raw, "config", where, str, None),
        revision=optional(raw, "revision", where, str, None),
        splits=_split_names(raw, where),
        label_names=tuple(check(v, f"{where}.label_names[{i}]", str)
                          for i, v in enumerate(optional(raw, "label_names", where, list, []))),
        image_column=optional(raw, "image_column", where, str, "image"),
        label_column=optional(raw, "label_column", where, str, "label"),
        group_columns=tuple(optional(raw, "group_columns", where, list, [])),
        groups_from_age=optional(raw, "groups_from_age", where, int, None),
        already_cropped=optional(raw, "already_cropped", where, bool, False),
        licence=licences[licence] if licence else None,
    )


def _split_names(raw: dict, where: str) -> dict[str, str]:
    splits = optional(raw, "splits", where, dict, {})
    for ours, theirs in splits.items():
        if ours not in ("train", "validation", "test"):
            raise ManifestError(f"{where}.splits.{ours}: must be train, validation or test")
        check(theirs, f"{where}.splits.{ours}", str)
    return dict(splits)


def _parse_bands(raw: list, where: str) -> tuple[AgeBand, ...]:
    bands = []
    for i, item in enumerate(raw):
        spot = f"{where}[{i}]"
        check(item, spot, dict)
        low = require(item, "low", spot, float)
        high = optional(item, "high", spot, float, float("inf"))
        if high <= low:
            raise ManifestError(f"{spot}.high: must be above low ({low})")
        bands.append(AgeBand(name=require(item, "name", spot, str), low=low, high=high))
    return tuple(bands)


def _parse_task(name: str, raw: Any, licences: dict[str, DataLicence]) -> TaskConfig:
    where = f"tasks.{name}"
    check(raw, where, dict)
    kind = require(raw, "kind", where, str)
    if kind not in TASK_KINDS:
        raise ManifestError(f"{where}.kind: expected one of {list(TASK_KINDS)}, got {kind!r}")
    labels = str_list(raw, "labels", where)
    if kind == "classification" and len(labels) < 2:
        raise ManifestError(f"{where}.labels: a classification task needs at least two labels")
    if len(set(labels)) != len(labels):
        raise ManifestError(f"{where}.labels: labels must be unique")
    input_size = require(raw, "input_size", where, int)
    if input_size < 16:
        raise ManifestError(f"{where}.input_size: must be at least 16, got {input_size}")
    uncertain = optional(raw, "uncertain_below", where, float, 0.5)
    if not 0.0 <= uncertain <= 1.0:
        raise ManifestError(f"{where}.uncertain_below: must lie in [0, 1], got {uncertain}")
    return TaskConfig(
        name=name,
        title=optional(raw, "title", where, str, name.title()),
        kind=kind,
        labels=labels,
        backbone=require(raw, "backbone", where, str),
        input_size=input_size,
        dataset=_parse_dataset(require(raw, "dataset", where, dict), f"{where}.dataset", licences),
        models=str_list(raw, "models", where),
        model_args=dict(optional(raw, "model_args", where, dict, {})),
        bands=_parse_bands(optional(raw, "bands", where, list, []), f"{where}.bands"),
        uncertain_below=uncertain,
        caveat=optional(raw, "caveat", where, str, "").strip(),
        crop_margin=optional(raw, "crop_margin", where, float, None),
        crop_shift=optional(raw, "crop_shift", where, float, 0.0),
        grayscale=optional(raw, "grayscale", where, bool, False),
        low_resolution_margin=optional(raw, "low_resolution_margin", where, float, 0.0),
    )


def _parse_train_your_own(raw: Any, tasks: dict[str, TaskConfig]) -> TrainYourOwnConfig:
    where = "train_your_own"
    if raw is None:
        return TrainYourOwnConfig()  # the tab then says whether it can run (a task, a backbone)
    config = dataclass_from(TrainYourOwnConfig, raw, where)
    for key in ("input_size", "max_zip_mb", "max_images", "max_seconds", "threads"):
        if getattr(config, key) < 1:
            raise ManifestError(f"{where}.{key}: must be at least 1, got {getattr(config, key)}")
    if config.input_size < 16:
        raise ManifestError(f"{where}.input_size: must be at least 16, got {config.input_size}")
    if config.task not in tasks or not tasks[config.task].is_classification:
        classes = sorted(name for name, task in tasks.items() if task.is_classification)
        raise ManifestError(f"{where}.task: expected a classification task of the manifest {classes}, "
                            f"got {config.task!r}")
    return config


def parse_manifest(raw: Any, root: Path = PROJECT_ROOT) -> Manifest:
    check(raw, "manifest", dict)
    tasks_raw = require(raw, "tasks", "manifest", dict)
    if not tasks_raw:
        raise ManifestError("manifest.tasks: must name at least one task")
    licences = _parse_licences(raw.get("licences"))
    tasks = {name: _parse_task(name, spec, licences) for name, spec in tasks_raw.items()}
    return Manifest(
        space=dataclass_from(SpaceConfig, raw.get("space"), "space"),
        detector=dataclass_from(DetectorConfig, raw.get("detector"), "detector"),
        tasks=tasks,
        root=root,
        train_your_own=_parse_train_your_own(raw.get("train_your_own"), tasks),
    )


def read_manifest(path: str | os.PathLike) -> Manifest:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: not valid YAML: {err}") from None
    return parse_manifest(raw, root=path.resolve().parent)


@functools.lru_cache(maxsize=None)
def _cached_manifest(path: str) -> Manifest:
    return read_manifest(path)


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """The manifest named by `path`, `$HUB_MANIFEST`, or the project's spaces.yaml; parsed once."""
    chosen = path or os.environ.get("HUB_MANIFEST") or DEFAULT_MANIFEST
    return _cached_manifest(str(Path(chosen).resolve()))
