"""Every training option in one dataclass; a YAML file (`--config`) sets defaults, flags override it.

The flags are made from the field types (bool: `--x`/`--no-x`; list: several values; dict: key=value pairs;
Literal: a choice), and YAML values (a `--config` file, a recipe stage) are checked against the same types.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin, get_type_hints

import yaml


class ConfigError(ValueError):
    """An option that does not exist, or a value of the wrong type; the message names the option."""


@dataclass(frozen=True)
class TrainConfig:
    # what to train
    task: str = field(metadata={"help": "a task in spaces.yaml (required)"})
    data: Optional[str] = field(default=None, metadata={"help": "Hub dataset id, parquet/arrow folder or glob, "
                                "image folder, or seed-study folder (index.csv); default: the manifest's"})
    image_column: Optional[str] = field(default=None, metadata={"help": "default: the manifest's"})
    label_column: Optional[str] = field(default=None, metadata={"help": "default: the manifest's"})
    output: Optional[str] = field(default=None, metadata={"help": "default: the task's first local model folder"})
    state_dir: Optional[str] = field(default=None, metadata={"help": "checkpoints for --resume; default: "
                                     "<output>/../.train/<name>"})
    manifest: Optional[str] = None
    # model
    model: Optional[str] = field(default=None, metadata={"help": "timm name, hf-hub:..., or local-dir:...; "
                                 "default: the manifest's backbone (or the --init-from model's)"})
    pretrained: bool = field(default=True, metadata={"help": "timm's ImageNet weights (needs the Hub); "
                             "--no-pretrained offline"})
    init_from: Optional[str] = field(default=None, metadata={"help": "a model folder of ours to start from"})
    teacher: Optional[str] = field(default=None, metadata={"help": "a model folder of ours to distil from "
                                   "(any architecture and input size, the same classes)"})
    distill_alpha: float = field(default=0.5, metadata={"help": "the teacher's share of the loss: (1 - a) * task "
                                 "loss + a * teacher term (DeiT's soft distillation)"})
    distill_temperature: float = field(default=1.0, metadata={"help": "softens both models' class "
                                       "probabilities in the teacher term (T; the term is scaled by T^2)"})
    input_size: Optional[int] = None
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "extra timm create_model "
                                         "arguments, e.g. --model-kwargs stem_type=s8"})
    drop_path: float = 0.0
    freeze_bn: Optional[bool] = field(default=None, metadata={"help": "keep batch-norm statistics fixed while "
                                      "training; default: what the --init-from model's config.json says "
                                      "(converted backbones have folded norms)"})
    head_only: bool = field(default=False, metadata={"help": "fit a logistic-regression head on the frozen face "
                            "backbone (spaces.yaml train_your_own) instead of training: the app's fast path"})
    # preprocessing
    detect_faces: Optional[bool] = field(default=None, metadata={"help": "run MTCNN crops; default: not for "
                                         "data the manifest marks as already cropped"})
    drop_classes: list[str] = field(default_factory=list)
    split: list[float] = field(default_factory=lambda: [0.7, 0.2, 0.1])
    max_samples: Optional[int] = field(default=None, metadata={"help": "cap per split, for quick runs"})
    cache_dir: str = ".cache/finetune"
    # optimisation
    epochs: int = 10
    stop_after: Optional[int] = field(default=None, metadata={"help": "stop after this many epochs of the "
                                      "schedule (a time budget); the best epoch so far is kept"})
    batch_size: int = 128
    lr: float = 2e-3
    head_lr: Optional[float] = None
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    loss: Literal["l1", "huber"] = field(default="huber", metadata={"help": "regression loss"})
    balance: Literal["none", "weights", "sampler"] = field(default="none", metadata={
        "help": "for rare classes: a class-weighted loss, or a balanced sampler"})
    freeze_epochs: int = field(default=0, metadata={"help": "seed study step 1: head only on a frozen backbone"})
    unfreeze_blocks: int = field(default=-1, metadata={"help": "step 2: train the last N blocks (-1: all)"})
    backbone_lr_scale: float = 0.1
    # augmentation (timm)
    hflip: float = 0.5
    scale_min: float = 0.7
    auto_augment: Optional[str] = "rand-m6-mstd0.5"
    mixup: float = 0.0
    cutmix: float = 0.0
    test_flip: bool = field(default=True, metadata={"help": "average each face's outputs with its mirror "
                            "image's in validation, test and the app (saved in config.json)"})
    # running
    patience: int = 5
    seed: int = 0
    threads: Optional[int] = field(default=None, metadata={"help": "torch CPU threads (default: all cores); "
                                   "1 per run when several share a small CPU"})
    workers: int = field(default=0, metadata={"help": "loader processes; 0 is fastest on a 2-core CPU"})
    amp: bool = True
    compile: bool = False
    resume: bool = field(default=False, metadata={"help": "continue from the state in --state-dir (refused "
                         "when it was written by another configuration)"})
    progress: bool = True
    save_dtype: Optional[Literal["float16", "bfloat16"]] = field(default=None, metadata={
        "help": "float16 halves model.safetensors (the app computes in float32 either way)"})
    push_to_hub: Optional[str] = field(default=None, metadata={"help": "Hub repo id to upload the model to"})


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
TYPES = get_type_hints(TrainConfig)


# --- types ------------------------------------------------------------------------------------------

def _optional(kind) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if get_origin(kind) in (Union, types.UnionType):
        inner = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(inner) == 1:
            return inner[0], True
    return kind, False


def _coerce(where: str, kind, value: Any) -> Any:
    """`value` (from YAML) as `kind`, or ConfigError naming `where`."""
    kind, nullable = _optional(kind)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where}: needs a value")
    origin = get_origin(kind)
    if origin is Literal:
        if value not in get_args(kind):
            raise ConfigError(f"{where}: expected one of {list(get_args(kind))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = get_args(kind)
        return [_coerce(f"{where}[{i}]", item, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected key: value pairs, got {value!r}")
        return dict(value)
    if kind is float and isinstance(value, str):
        try:  # YAML 1.1 reads 5e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def make_config(values: dict[str, Any], where: str = "config") -> TrainConfig:
    """A TrainConfig from plain values (YAML, a recipe stage), every value checked against its type."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}")
    if values.get("task") is None:
        raise ConfigError(f"{where}: no task (pass --task)")
    return TrainConfig(**{name: _coerce(f"{where}: {name}", TYPES[name], value) for name, value in values.items()})


# --- flags --------------------------------------------------------------------------------------------

def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, yaml.safe_load(value)


def _flag_options(kind) -> dict[str, Any]:
    """argparse keywords for a field of type `kind`."""
    kind, _ = _optional(kind)
    origin = get_origin(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return {"choices": list(get_args(kind))}
    if origin is list:
        return {"nargs": "*", "type": get_args(kind)[0]}
    if origin is dict:  # key=value pairs, values read as YAML (like timm's --model-kwargs)
        return {"nargs": "*", "type": _key_value}
    if kind in (int, float, str):
        return {"type": kind}
    raise TypeError(f"no flag for options of type {kind}")


def build_parser(prog: str = "python -m finetune") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Fine-tune a timm model on one face attribute.")
    parser.add_argument("--config", help="YAML file with any of the options below; flags override it")
    for name, f in FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=None, help=f.metadata.get("help", ""),
                            **_flag_options(TYPES[name]))
    return parser


def read_yaml(path: str | Path) -> dict[str, Any]:
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected option: value lines")
    return values


def from_yaml(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    values = read_yaml(path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return make_config(values, str(path))


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if args.get("model_kwargs") is not None:
        args["model_kwargs"] = dict(args["model_kwargs"])
    config_file = args.pop("config")
    flags = {k: v for k, v in args.items() if v is not None}
    try:
        values = {**(read_yaml(config_file) if config_file else {}), **flags}
        if values.get("task") is None:
            parser.error("--task is required (a task in spaces.yaml, e.g. --task mood)")
        return make_config(values, config_file or "flags")
    except ConfigError as err:
        parser.error(str(err))


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
