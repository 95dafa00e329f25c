"""Any face dataset in, cropped train/validation/test splits out, all through `datasets`.

Sources: a Hub id, parquet/arrow files or folders, an image folder (train/<label>/*.jpg, optionally
validation/ and test/), or the seed study's layout (index.csv with id,category beside <id>.jpg).
Crops come from the app's own code (hub.faces) and are cached on disk, keyed by data and crop settings.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from datasets import (ClassLabel, Dataset, DatasetDict, Image as ImageFeature, Value, concatenate_datasets,
                      load_dataset, load_from_disk)

from hub.config import TaskConfig
from hub.decode import load_image
from hub.faces import CropSpec, get_detector, largest_face

from . import hub_datasets
from .errors import DataError  # noqa: F401 - raised here, and imported from here by callers
from .settings import DataSettings

SPLITS = ("train", "validation", "test")


@dataclass
class TaskData:
    splits: DatasetDict          # columns: image (cropped, input size), label (int id or float), groups...
    labels: list[str]            # class names in id order; ["years"] for regression
    kind: str
    groups: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    no_face: list[str] = field(default_factory=list)  # the autocrop log: rows where no face was found


# --- reading -------------------------------------------------------------------------------

def read_source(source: str, config_name: str | None = None) -> DatasetDict:
    """Whatever `source` names, as a DatasetDict (often with a train split only)."""
    path = Path(source)
    if any(ch in source for ch in "*?"):
        return load_dataset("parquet" if source.endswith(".parquet") else "arrow", data_files=source)
    if path.is_file():
        kind = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".jsonl": "json"}.get(path.suffix)
        if kind is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}")
        return load_dataset(kind, data_files=str(path))
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = load_from_disk(str(path))
            return loaded if isinstance(loaded, DatasetDict) else DatasetDict(train=loaded)
        if (path / "index.csv").exists():
            return _read_seed_layout(path)
        for kind in ("parquet", "arrow"):
            files = sorted(str(p) for p in path.rglob(f"*.{kind}"))
            if files:
                return load_dataset(kind, data_files=files)
        if any(p.is_dir() for p in path.iterdir()):
            # labels from the folder names even for one class (so that case fails with a clear message)
            return load_dataset("imagefolder", data_dir=str(path), drop_labels=False)
        raise DataError(f"{path}: no parquet/arrow files, class folders or index.csv found")
    if hub_datasets.is_hub_id(source):
        return hub_datasets.load(source, config_name)  # needs the network (or the local HF cache)
    raise DataError(f"{source}: no such file or folder")


def _read_seed_layout(folder: Path) -> DatasetDict:
    """index.csv (id,category,...) with <id>.jpg beside it, as in the seed study."""
    table = load_dataset("csv", data_files=str(folder / "index.csv"))["train"]
    if "id" not in table.column_names or "category" not in table.column_names:
        raise DataError(f"{folder / 'index.csv'}: needs columns id and category, has {table.column_names}")
    table = table.map(lambda row: {"image": str(folder / f"{row['id']}.jpg"), "label": str(row["category"])})
    return DatasetDict(train=table.cast_column("image", ImageFeature(decode=False)))


# --- normalising ---------------------------------------------------------------------------

def _rename(ds: Dataset, image_column: str, label_column: str) -> Dataset:
    for wanted, role in ((image_column, "image"), (label_column, "label")):
        if wanted not in ds.column_names:
            raise DataError(f"column {wanted!r} (the {role}) not in the data; it has {ds.column_names}. "
                            f"Pass --{role}-column.")
    if image_column != "image":
        ds = ds.remove_columns([c for c in ["image"] if c in ds.column_names and c != label_column])
        ds = ds.rename_column(image_column, "image")
    if label_column != "label":
        if "label" in ds.column_names:
            ds = ds.remove_columns("label")
        ds = ds.rename_column(label_column, "label")
    return ds.cast_column("image", ImageFeature(decode=False))


def _label_names(ds: Dataset) -> list[str]:
    feature = ds.features["label"]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    return sorted({str(v) for v in ds["label"]})


def _to_class_ids(ds: Dataset, labels: list[str]) -> Dataset:
    """Label values (ClassLabel ids or strings) to ids in `labels`; rows of other classes dropped."""
    feature = ds.features["label"]
    names = feature.names if isinstance(feature, ClassLabel) else None
    index = {name: i for i, name in enumerate(labels)}

    def convert(batch):
        values = [names[v] if names else str(v) for v in batch["label"]]
        return {"label": [index.get(v, -1) for v in values]}

    features = ds.features.copy()
    features["label"] = Value("int64")
    ds = ds.map(convert, batched=True, features=features, desc="labels")
    ds = ds.filter(lambda batch: [v >= 0 for v in batch["label"]], batched=True, desc="dropped classes")
    return ds.cast_column("label", ClassLabel(names=labels))


def choose_labels(found: list[str], task: TaskConfig, drop: list[str]) -> list[str]:
    """The manifest's order when the data has the same classes, so the model matches spaces.yaml."""
    kept = [name for name in found if name not in set(drop)]
    if set(kept) == set(task.labels):
        return list(task.labels)
    return kept


# --- cropping (the app's own code), cached --------------------------------------------------

def _crop_settings_key(fingerprint: str, size: int, margin: float, grayscale: bool, detect: bool,
                       shift: float = 0.0, refine: int = 0) -> str:
    framing = [margin, shift] if shift else margin  # a zero shift keeps the keys of earlier caches
    detected = [detect, "refine", refine] if detect and refine else detect  # refined boxes: other crops
    settings = json.dumps([fingerprint, size, framing, grayscale, detected, "v1"])
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def crop_dataset(ds: Dataset, size: int, crop: CropSpec, detect: bool, cache_dir: Path, split: str,
                 before_row=None) -> Dataset:
    """Adds `face` (found or not) and `readable`, and replaces `image` with the crop.
    `before_row()` runs before each image (the app's time limit raises from it)."""
    detector = get_detector() if detect else None

    def cut(row):
        if before_row is not None:
            before_row()
        try:
            raw = row["image"]
            image = load_image(raw["bytes"] if raw.get("bytes") else raw["path"])
        except Exception:  # noqa: BLE001 - corrupt/unreadable files are counted, never a crash
            return {"image": None, "readable": False, "face": False}
        if detector is None:
            return {"image": _png(crop.prepare(image, size)), "readable": True, "face": True}
        faces = detector.detect(image)
        if not faces:
            return {"image": None, "readable": True, "face": False}
        return {"image": _png(crop.cut(image, largest_face(faces).box, size)), "readable": True, "face": True}

    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _crop_settings_key(ds._fingerprint, size, crop.margin, crop.grayscale, detect, crop.shift,
                             refine=detector.config.refine_steps if detector else 0)
    features = ds.features.copy()
    features.update({"image": ImageFeature(), "readable": Value("bool"), "face": Value("bool")})
    return ds.map(cut, features=features, cache_file_name=str(cache_dir / f"{split}-{key}.arrow"),
                  load_from_cache_file=True, desc=f"cropping {split}")


def _png(image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return {"bytes": buffer.getvalue(), "path": None}


# --- splitting ---------------------------------------------------------------------------------

def holdout_split(ds: Dataset, label_column: str = "label", seed: int = 0,
                  fractions=(0.7, 0.2, 0.1)) -> DatasetDict:
    """Stratified train/validation/test with a fixed seed (70/20/10 as in the seed study)."""
    train_frac, val_frac, test_frac = fractions
    if abs(train_frac + val_frac + test_frac - 1.0) > 1e-6:
        raise DataError(f"split fractions must add up to 1, got {fractions}")
    stratify = label_column if isinstance(ds.features[label_column], ClassLabel) else None
    first = ds.train_test_split(test_size=val_frac + test_frac, seed=seed, stratify_by_column=stratify)
    rest = first["test"].train_test_split(test_size=test_frac / (val_frac + test_frac), seed=seed,
                                          stratify_by_column=stratify)
    return DatasetDict(train=first["train"], validation=rest["train"], test=rest["test"])


def _with_strata(ds: Dataset, task: TaskConfig) -> Dataset:
    """Regression targets get a band column to stratify the split on."""
    names = [band.name for band in task.bands] or ["all"]
    ds = ds.map(lambda b: {"strata": [max(0, names.index(task.band_for(float(v))) if task.band_for(float(v))
                                          in names else 0) for v in b["label"]]}, batched=True, desc="strata")
    return ds.cast_column("strata", ClassLabel(names=names))


# --- the whole path ------------------------------------------------------------------------------

def load_task_data(settings: DataSettings, holdout: bool = True, raw: DatasetDict | None = None,
                   before_row=None) -> TaskData:
    """The data `settings` name (resolved by finetune.settings), cropped and split. Without `holdout`
    (evaluating every row) all of the source's rows form one split, `all`, which may lack classes. `raw`: the
    data already read (the app's checked upload, held in memory), instead of reading `settings.source`."""
    task, source, split, seed = settings.task, settings.source, settings.split, settings.seed
    raw = read_source(source, settings.config_name) if raw is None else raw
    label_column = settings.label_column
    if hub_datasets.is_hub_id(source):  # the manifest's split and class names apply to its own dataset
        own = settings.from_manifest
        spec = task.dataset
        raw = hub_datasets.conform(raw, task, settings.image_column, label_column,
                                   splits=spec.splits if own else None, label_names=spec.label_names if own else ())
    raw = DatasetDict({name: _rename(part, settings.image_column, label_column) for name, part in raw.items()})
    groups = [c for c in settings.group_columns if c in raw["train"].column_names and c != label_column]
    if holdout and "train" not in raw:
        raise DataError(f"{source}: no train split (found {list(raw)})")
    if task.is_classification:  # the training split's classes, or (every row) those of all splits
        found = dict.fromkeys(name for part in (raw.values() if not holdout else [raw["train"]])
                              for name in _label_names(part))
        labels = choose_labels(list(found), task, list(settings.drop_classes))
        raw = DatasetDict({name: _to_class_ids(part, labels) for name, part in raw.items()})
    else:
        labels = ["years"]
        raw = DatasetDict({name: _with_strata(part.cast_column("label", Value("float32")), task)
                           for name, part in raw.items()})

    if not holdout:
        raw = DatasetDict(all=concatenate_datasets(list(raw.values())))
    elif "validation" not in raw or "test" not in raw:
        strata = "label" if task.is_classification else "strata"
        _check_classes(raw["train"], labels, task)
        given = [name for name in ("validation", "test") if name in raw]
        if given:  # the data's own validation/ (or test/) is kept; the missing split is cut from train
            missing = "test" if given == ["validation"] else "validation"
            share = split[SPLITS.index(missing)] / (split[0] + split[SPLITS.index(missing)])
            cut = raw["train"].train_test_split(test_size=share, seed=seed, stratify_by_column=strata)
            raw = DatasetDict({"train": cut["train"], given[0]: raw[given[0]], missing: cut["test"]})
        else:
            raw = holdout_split(raw["train"], strata, seed=seed, fractions=tuple(split))
    if settings.max_samples:
        raw = DatasetDict({n: p.shuffle(seed=seed).select(range(min(settings.max_samples, len(p))))
                           for n, p in raw.items()})

    skipped = {"unreadable": 0, "no_face": 0}
    no_face: list[str] = []
    cropped = {}
    for name in SPLITS if holdout else ("all",):
        part = crop_dataset(raw[name], settings.size, settings.crop, settings.detect_faces, settings.cache_dir,
                            name, before_row=before_row)
        flags = part.select_columns(["readable", "face"]).to_dict()
        skipped["unreadable"] += sum(not r for r in flags["readable"])
        missing = [i for i, (r, f) in enumerate(zip(flags["readable"], flags["face"])) if r and not f]
        skipped["no_face"] += len(missing)
        if "file" in part.column_names:
            names = part.select(missing)["file"]
        else:  # image folders and index.csv: the image's own path (rows align: map keeps the order)
            names = [(image or {}).get("path") or i for image, i in zip(raw[name].select(missing)["image"], missing)]
        no_face += [f"{name}:{n}" for n in names]
        cropped[name] = part.filter(lambda b: [r and f for r, f in zip(b["readable"], b["face"])],
                                    batched=True, desc=f"kept {name}").remove_columns(["readable", "face"])
    splits = DatasetDict(cropped)
    if holdout and task.is_classification:
        _check_classes(splits["train"], labels, task)
    elif not holdout and len(splits["all"]) == 0:
        raise DataError(f"{source}: no usable images (skipped {skipped})")
    return TaskData(splits=splits, labels=labels, kind=task.kind, groups=groups, skipped=skipped,
                    no_face=no_face)


def _check_classes(ds: Dataset, labels: list[str], task: TaskConfig) -> None:
    if len(ds) == 0:
        raise DataError("no usable images in the training data")
    if not task.is_classification:
        return
    counts = [0] * len(labels)
    for value in ds["label"]:
        counts[value] += 1
    present = [name for name, n in zip(labels, counts) if n]
    if len(present) < 2:
        raise DataError(f"only one class ({present}) has images; a classifier needs at least two")
    empty = [name for name, n in zip(labels, counts) if n < 3]
    if empty:
        raise DataError(f"class(es) {empty} have fewer than 3 images; add images or drop them with "
                        f"--drop-classes {' '.join(empty)}")
