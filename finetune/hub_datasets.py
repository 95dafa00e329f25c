"""Hub datasets, checked before training: the columns and their types, class names, split names.

A source is a Hub id when it is ORG/NAME (optionally ORG/NAME@REVISION) and no such local path exists.
Script datasets (a NAME.py on the Hub) are refused by current `datasets`; the Hub's own parquet
conversion of them, the `refs/convert/parquet` revision, is tried instead.
"""
from __future__ import annotations

import re
from pathlib import Path

from datasets import ClassLabel, DatasetDict, Image as ImageFeature, Value, load_dataset

from hub.config import DatasetSpec, TaskConfig

from .errors import DataError

PARQUET_REVISION = "refs/convert/parquet"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+(@\S+)?")
SCRIPT_REFUSED = ("Dataset scripts are no longer supported", "trust_remote_code")  # datasets >= 4, 3.x
COLUMN_FLAGS = "--image-column and --label-column"
VALIDATION_ALIASES = ("valid", "val", "dev")
IMAGE_STORAGE = ("binary", "large_binary")               # encoded image bytes cast to an image


def is_hub_id(source: str) -> bool:
    return bool(HUB_ID.fullmatch(source)) and not Path(source).exists()


def split_revision(source: str) -> tuple[str, str | None]:
    """ORG/NAME@REVISION -> (ORG/NAME, REVISION)."""
    repo, _, revision = source.partition("@")
    return repo, revision or None


def default_source(spec: DatasetSpec, root: Path | None = None) -> str:
    """The manifest's local copy when it is there (developers, CI), else its Hub dataset at the pinned
    revision (a user online: the first run downloads it)."""
    if spec.path:
        local = Path(spec.path) if root is None or Path(spec.path).is_absolute() else root / spec.path
        if local.exists() or not spec.id:  # a local-only task: read_source says the folder is missing
            return str(local)
    if spec.id:
        return f"{spec.id}@{spec.revision}" if spec.revision else spec.id
    raise DataError("the manifest names no data for this task: pass --data")


# --- loading ------------------------------------------------------------------------------------

def load(source: str, config_name: str | None = None) -> DatasetDict:
    """A Hub dataset, or its parquet conversion when it is a script dataset."""
    repo, revision = split_revision(source)
    try:
        return _hub(repo, config_name, revision)
    except (RuntimeError, ValueError) as error:  # datasets >= 4 and 3.x say it differently
        if not any(text in str(error) for text in SCRIPT_REFUSED):
            raise
        script = str(error).rsplit(" ", 1)[-1] if "found" in str(error) else "a loading script"
    print(f"[data] {repo} is a script dataset ({script}), which the installed `datasets` no longer runs; "
          f"trying the Hub's parquet conversion of it (revision {PARQUET_REVISION})")
    try:
        return _hub(repo, config_name, PARQUET_REVISION)
    except Exception as error:  # noqa: BLE001 - any failure gets the same way out
        raise DataError(
            f"{repo} is a script dataset ({script}): the installed `datasets` no longer runs loading scripts, "
            f"and the Hub's parquet conversion of it (revision {PARQUET_REVISION}) could not be loaded either "
            f"({_plain(error)}). Pass --data {repo}@{PARQUET_REVISION} once the Hub has converted it, or --data "
            f"with a parquet copy of the data (a Hub id or a local folder)") from None


def _hub(repo: str, config_name: str | None, revision: str | None) -> DatasetDict:
    try:
        loaded = load_dataset(repo, config_name, revision=revision)
    except ConnectionError:
        from huggingface_hub import constants
        why = "offline mode is on: HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "no connection"
        raise DataError(f"{repo}: the Hugging Face Hub could not be reached to download it ({why}). Connect to "
                        f"the network once (the download is cached), or pass --data with a local copy") from None
    return loaded if isinstance(loaded, DatasetDict) else DatasetDict(train=loaded)


def _plain(error: Exception) -> str:
    """The first line of a library's message, without the exception class names some of them carry."""
    text = re.sub(r"\s*\([A-Z][A-Za-z]+\)", "", str(error).strip())
    return text.splitlines()[0] if text else "no reason given"


# --- checking -----------------------------------------------------------------------------------

def conform(raw: DatasetDict, task: TaskConfig, image_column: str, label_column: str, *,
            splits: dict[str, str] | None = None, label_names: tuple[str, ...] = ()) -> DatasetDict:
    """Our split names, the image and label columns checked, and class names in the manifest's spelling.

    `splits` maps our split names to the dataset's (from the manifest); `label_names` names the ids of an
    integer label column (from the manifest). Without them an integer column takes the manifest's
    labels in the manifest's order, which assumes the dataset numbers its classes that way."""
    raw = _rename_splits(raw, splits or {})
    first = next(iter(raw.values()))
    _check_columns(first.features, task, image_column, label_column)
    if task.is_classification:
        raw = _name_classes(raw, task, label_column, label_names)
    return raw


def _rename_splits(raw: DatasetDict, splits: dict[str, str]) -> DatasetDict:
    if not splits and "validation" not in raw:  # a common name for it, when the manifest maps none
        alias = next((name for name in VALIDATION_ALIASES if name in raw), None)
        splits = {"validation": alias} if alias else {}
    named = {ours: raw[theirs] for ours, theirs in splits.items() if theirs in raw}
    kept = {name: part for name, part in raw.items() if name in ("train", "validation", "test")}
    result = DatasetDict({**kept, **named})
    unused = [name for name in raw if name not in kept and name not in splits.values()]
    if unused and "train" in result:
        print(f"[data] splits not used: {', '.join(unused)} (the manifest's dataset.splits can map them)")
    if "train" not in result:
        raise DataError(f"the data has no train split (it has {', '.join(raw)}); the manifest's "
                        f"dataset.splits can say which split is which")
    return result


def describe(features) -> str:
    """Columns and their types in plain words: `image (image), label (class label: a, b)`."""
    return ", ".join(f"{name} ({_kind(feature)})" for name, feature in features.items())


def _kind(feature) -> str:
    if isinstance(feature, ImageFeature):
        return "image"
    if isinstance(feature, ClassLabel):
        return f"class label: {', '.join(feature.names)}"
    if isinstance(feature, Value):
        return {"large_string": "string", "large_binary": "binary"}.get(feature.dtype, feature.dtype)
    return type(feature).__name__.lower()


def _check_columns(features, task: TaskConfig, image_column: str, label_column: str) -> None:
    found = f"The data has: {describe(features)}. Choose other columns with {COLUMN_FLAGS}."
    problems = []
    image = features.get(image_column)
    if image is None:
        problems.append(f"no image column {image_column!r}")
    elif not (isinstance(image, ImageFeature) or isinstance(image, Value) and image.dtype in IMAGE_STORAGE):
        problems.append(f"the image column {image_column!r} holds {_kind(image)}, not images")
    label = features.get(label_column)
    if label is None:
        problems.append(f"no label column {label_column!r}")
    elif task.is_classification and not (isinstance(label, ClassLabel) or _is_int(label) or _is_str(label)):
        problems.append(f"the label column {label_column!r} holds {_kind(label)}, not class names or ids")
    elif not task.is_classification and not (isinstance(label, Value) and (_is_int(label) or _is_float(label))):
        problems.append(f"the label column {label_column!r} holds {_kind(label)}, not numbers "
                        f"(task {task.name} predicts {', '.join(task.labels)})")
    if problems:
        raise DataError(f"{'; '.join(problems)}. {found}")


def _folded(names) -> list[str]:
    return [name.casefold() for name in names]


def _is_int(feature) -> bool:
    return isinstance(feature, Value) and re.fullmatch(r"u?int\d+", feature.dtype) is not None


def _is_float(feature) -> bool:
    return isinstance(feature, Value) and feature.dtype.startswith("float")


def _is_str(feature) -> bool:
    return isinstance(feature, Value) and feature.dtype in ("string", "large_string")


def _name_classes(raw: DatasetDict, task: TaskConfig, column: str, label_names: tuple[str, ...]) -> DatasetDict:
    """Every label column as class names in the manifest's spelling (`Male` -> `male`)."""
    feature = next(iter(raw.values())).features[column]
    spelling = {label.casefold(): label for label in task.labels}
    if _is_str(feature):
        values = {value for part in raw.values() for value in part.unique(column)}
        renamed = {v: spelling[v.casefold()] for v in values if v is not None and v.casefold() in spelling}
        if any(old != new for old, new in renamed.items()):
            raw = DatasetDict({name: part.map(lambda batch: {column: [renamed.get(v, v) for v in batch[column]]},
                                              batched=True, desc="class names") for name, part in raw.items()})
        return raw
    if isinstance(feature, ClassLabel) and not label_names:
        names = list(feature.names)
    else:  # integer ids: the manifest names them (its dataset.label_names, else its labels in order)
        names = list(label_names or task.labels)
        if isinstance(feature, ClassLabel) and _folded(feature.names) != _folded(names):
            print(f"[data] the data names its classes {feature.names}; the manifest's dataset.label_names "
                  f"({names}) are used instead")
        ids = sorted({int(v) for part in raw.values() for v in part.unique(column) if v is not None})
        if ids and (ids[0] < 0 or ids[-1] >= len(names)):
            raise DataError(f"the label column {column!r} holds ids {ids[0]}..{ids[-1]} but only {len(names)} class "
                            f"names are known ({', '.join(names)}). Set dataset.label_names in the manifest, or "
                            f"choose another column with {COLUMN_FLAGS}")
        if not label_names and not isinstance(feature, ClassLabel):
            print(f"[data] {column!r} holds integer ids without class names: reading them as the manifest's "
                  f"labels in order ({', '.join(names)})")
    names = [spelling.get(name.casefold(), name) for name in names]
    if isinstance(feature, ClassLabel) and list(feature.names) == names:
        return raw
    return DatasetDict({name: part.cast_column(column, ClassLabel(names=names)) for name, part in raw.items()})
