"""Every training option in one dataclass; a YAML file (`--config`) sets defaults, flags override it."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


@dataclass
class TrainConfig:
    # what to train
    task: str = field(default="mood", metadata={"help": "a task in spaces.yaml"})
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
                                 "default: the manifest's backbone"})
    pretrained: bool = field(default=True, metadata={"help": "ImageNet weights (needs the Hub); --no-pretrained offline"})
    init_from: Optional[str] = field(default=None, metadata={"help": "a model folder of ours to start from"})
    input_size: Optional[int] = None
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "extra timm create_model "
                                         "arguments, e.g. --model-kwargs stem_type=s8"})
    drop_path: float = 0.0
    freeze_bn: Optional[bool] = field(default=None, metadata={"help": "keep batch-norm statistics fixed while "
                                      "training; default: what the --init-from model's config.json says "
                                      "(converted backbones have folded norms)"})
    # preprocessing
    detect_faces: Optional[bool] = field(default=None, metadata={"help": "run MTCNN crops; default: not for "
                                         "data the manifest marks as already cropped"})
    drop_classes: list[str] = field(default_factory=list)
    split: list[float] = field(default_factory=lambda: [0.7, 0.2, 0.1])
    max_samples: Optional[int] = field(default=None, metadata={"help": "cap per split, for quick runs"})
    cache_dir: str = ".cache/finetune"
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    head_lr: Optional[float] = None
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    loss: str = field(default="huber", metadata={"help": "regression loss: l1 or huber"})
    balance: str = field(default="none", metadata={"help": "none, weights (class-weighted loss) or sampler"})
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
    resume: bool = field(default=False, metadata={"help": "continue from <output>/last.pt"})
    progress: bool = True
    save_dtype: Optional[str] = field(default=None, metadata={"help": "float16 halves model.safetensors "
                                      "(the app computes in float32 either way)"})
    push_to_hub: Optional[str] = field(default=None, metadata={"help": "Hub repo id to upload the model to"})


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, yaml.safe_load(value)


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    name = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    annotation = str(f.type)
    if annotation.startswith("dict"):  # key=value pairs, values read as YAML (like timm's --model-kwargs)
        parser.add_argument(name, nargs="*", type=_key_value, default=None, help=help_text)
    elif annotation in ("bool", "Optional[bool]"):
        parser.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif annotation.startswith("list"):
        inner = float if "float" in annotation else str
        parser.add_argument(name, nargs="*", type=inner, default=None, help=help_text)
    else:
        kind = int if "int" in annotation else float if "float" in annotation else str
        parser.add_argument(name, type=kind, default=None, help=help_text)


def build_parser(prog: str = "python -m finetune") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Fine-tune a timm ViT on one face attribute.")
    parser.add_argument("--config", help="YAML file with any of the options below; flags override it")
    for f in dataclasses.fields(TrainConfig):
        _add_field(parser, f)
    return parser


def from_yaml(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    values = yaml.safe_load(Path(path).read_text()) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise SystemExit(f"{path}: unknown option(s) {sorted(unknown)}")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig(**values)


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    if args.get("model_kwargs") is not None:
        args["model_kwargs"] = dict(args["model_kwargs"])
    config_file = args.pop("config")
    if config_file:
        return from_yaml(config_file, args)
    return TrainConfig(**{k: v for k, v in args.items() if v is not None})


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
