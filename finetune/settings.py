"""A TrainConfig plus the manifest, resolved once into every concrete setting of a run.

Training and evaluation call `resolve` (or `resolve_data`) at the top; nothing downstream works out a
default again. Relative paths typed by the user (flags, YAML) are relative to the current folder; the
manifest's data paths are relative to the manifest's folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from hub.config import DataLicence, Manifest, TaskConfig, load_manifest
from hub.locations import hub_ref
from hub.faces import CropSpec, crop_spec

from .config import ConfigError, TrainConfig


@dataclass(frozen=True)
class DataSettings:
    """What to read and how to crop it: everything `finetune.data.load_task_data` needs."""
    task: TaskConfig
    source: str                      # a local path or a Hub dataset id, as read
    config_name: str | None          # the Hub dataset's configuration
    from_manifest: bool              # the manifest's own dataset (so its licence applies)
    image_column: str
    label_column: str
    group_columns: tuple[str, ...]
    detect_faces: bool               # MTCNN crops; otherwise the images already are face crops
    crop: CropSpec                   # the framing hub.predict serves with
    size: int
    drop_classes: tuple[str, ...]
    split: tuple[float, float, float]
    seed: int
    max_samples: int | None
    cache_dir: Path

    @property
    def licence(self) -> DataLicence | None:
        return self.task.dataset.licence if self.from_manifest else None

    @property
    def hub_dataset(self) -> str | None:
        """The Hub dataset behind the data: the manifest's (also read from its local copy), or a --data Hub id."""
        from . import hub_datasets

        if self.from_manifest:
            return self.task.dataset.id
        return hub_datasets.split_revision(self.source)[0] if hub_datasets.is_hub_id(self.source) else None

    @property
    def shown_source(self) -> str:
        """The source as written in train_config.yaml and model cards: a path relative to the current
        folder (the manifest's own data: `../shared/data/utkface` from the project's folder)."""
        return shown(self.source) if Path(self.source).is_absolute() else self.source


@dataclass(frozen=True)
class InitModel:
    """A model folder of ours that a run starts from (its config.json, read once)."""
    folder: str
    architecture: str
    num_classes: int
    input_size: int
    model_args: dict                 # timm create_model arguments it was saved with
    freeze_bn: bool                  # converted backbones hold folded norms that batch statistics would undo
    pretrained_from: str | None      # where its own weights came from, carried into the new config.json
    digest: str                      # of its weights: a run's state from other starting weights is not resumed
    labels: tuple[str, ...] = ()     # its classes (config.json label_names)


@dataclass(frozen=True)
class Settings:
    config: TrainConfig              # as given (flags, YAML or a recipe stage)
    manifest: Manifest
    task: TaskConfig
    data: DataSettings
    model: str                       # the timm architecture (the --init-from model's when there is one)
    input_size: int
    init: InitModel | None
    teacher: InitModel | None        # the model distilled from (--teacher)
    pretrained: bool                 # timm's own pretrained weights; never with an --init-from model
    freeze_bn: bool
    output: Path
    state_dir: Path

    @property
    def regression(self) -> bool:
        return not self.task.is_classification

    @property
    def start_digest(self) -> str | None:
        return self.init.digest if self.init else None

    @property
    def teacher_digest(self) -> str | None:
        return self.teacher.digest if self.teacher else None

    @property
    def fresh_age_head(self) -> bool:
        """Whether a regression head starts untrained (from scratch, or from another task's model,
        whose head is replaced), and so is set to start at the mean age."""
        return self.regression and (self.init is None or self.init.num_classes != 1)

    def as_config(self) -> TrainConfig:
        """The TrainConfig with every default filled in: train_config.yaml, and what --resume compares."""
        return dataclasses.replace(
            self.config, data=self.data.shown_source, model=self.model, input_size=self.input_size,
            image_column=self.data.image_column, label_column=self.data.label_column,
            detect_faces=self.data.detect_faces, freeze_bn=self.freeze_bn, pretrained=self.pretrained,
            output=shown(self.output), state_dir=shown(self.state_dir), resume=False)


def shown(path: str | Path) -> str:
    """A path as written in configs, cards and logs: relative to the current folder when it lies in it or
    beside it (`../shared/data/utkface`), so that no absolute path of this machine is committed."""
    if not Path(path).is_absolute():
        return str(path)
    relative = os.path.relpath(path)
    return str(Path(os.path.normpath(path))) if relative.startswith(os.path.join("..", "..")) else relative


def manifest_for(cfg: TrainConfig) -> Manifest:
    return load_manifest(cfg.manifest)


def task_for(cfg: TrainConfig, manifest: Manifest) -> TaskConfig:
    if cfg.task not in manifest.tasks:
        raise ConfigError(f"--task {cfg.task!r}: not a task in the manifest (it has {sorted(manifest.tasks)})")
    return manifest.tasks[cfg.task]


def data_source(task: TaskConfig, manifest: Manifest, given: str | None) -> tuple[str, bool]:
    """(what to read, whether it is the manifest's dataset): `given` as typed, else the manifest's local
    copy (relative to the manifest) when it exists, else its Hub id at its pinned revision."""
    from . import hub_datasets

    spec = task.dataset
    if not given:
        return hub_datasets.default_source(spec, manifest.root), True
    local = manifest.resolve(spec.path) if spec.path else None
    if hub_datasets.is_hub_id(given):
        return given, hub_datasets.split_revision(given)[0] == spec.id
    return given, local is not None and Path(given).resolve() == Path(local).resolve()


def resolve_data(cfg: TrainConfig, manifest: Manifest | None = None, size: int | None = None,
                 task: TaskConfig | None = None) -> DataSettings:
    """The data half of `resolve`. Evaluation passes the model's own input size, and the task with the
    model's own labels."""
    manifest = manifest or manifest_for(cfg)
    task = task or task_for(cfg, manifest)
    spec = task.dataset
    source, from_manifest = data_source(task, manifest, cfg.data)
    if len(cfg.split) != 3:
        raise ConfigError(f"--split: three fractions (train, validation, test), got {cfg.split}")
    return DataSettings(
        task=task, source=source, config_name=spec.config, from_manifest=from_manifest,
        image_column=cfg.image_column or spec.image_column, label_column=cfg.label_column or spec.label_column,
        group_columns=spec.group_columns,
        detect_faces=(not spec.already_cropped) if cfg.detect_faces is None else cfg.detect_faces,
        crop=crop_spec(task, manifest.detector), size=size or cfg.input_size or task.input_size,
        drop_classes=tuple(cfg.drop_classes), split=tuple(cfg.split), seed=cfg.seed,
        max_samples=cfg.max_samples, cache_dir=Path(cfg.cache_dir))


def digest(folder: str | Path) -> str:
    """A model folder's weights (a folder without model.safetensors: all its files), hashed."""
    from hub.models import WEIGHTS_FILE

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    files = [folder / WEIGHTS_FILE] if (folder / WEIGHTS_FILE).is_file() else sorted(
        p for p in folder.iterdir() if p.is_file())
    hasher = hashlib.sha256()
    for path in files:
        hasher.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    return hasher.hexdigest()


def read_init(folder: str, flag: str = "--init-from") -> InitModel:
    from hub.models import read_model_config

    try:
        config = read_model_config(Path(folder))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"{flag} {folder}: {err}") from None
    return InitModel(folder=folder, architecture=config["architecture"], num_classes=int(config.get("num_classes", 0)),
                     input_size=int(config["pretrained_cfg"]["input_size"][-1]),
                     model_args=dict(config.get("model_args", {})), freeze_bn=bool(config.get("freeze_bn", False)),
                     pretrained_from=config.get("pretrained_from"), digest=digest(folder),
                     labels=tuple(config.get("label_names") or ()))


def resolve(cfg: TrainConfig, manifest: Manifest | None = None) -> Settings:
    """Every concrete setting of a training run."""
    manifest = manifest or manifest_for(cfg)
    task = task_for(cfg, manifest)
    init = read_init(cfg.init_from) if cfg.init_from else None
    teacher = read_init(cfg.teacher, "--teacher") if cfg.teacher else None
    if teacher and (cfg.mixup > 0 or cfg.cutmix > 0):
        raise ConfigError("--teacher with --mixup/--cutmix: the teacher's outputs are worked out once per face "
                          "(and its mirror image), not for mixed images; set --mixup 0 --cutmix 0")
    if not 0.0 <= cfg.distill_alpha <= 1.0 or cfg.distill_temperature <= 0:
        raise ConfigError(f"--distill-alpha is a share between 0 and 1 (got {cfg.distill_alpha}) and "
                          f"--distill-temperature above 0 (got {cfg.distill_temperature})")
    if init and cfg.model and cfg.model != init.architecture:
        raise ConfigError(f"--model {cfg.model} differs from the --init-from model's {init.architecture}; "
                          "leave --model out")
    size = cfg.input_size or task.input_size
    if cfg.output:
        output = Path(cfg.output)
    elif hub_ref(task.models[0]):
        raise ConfigError(f"tasks.{task.name}.models starts with a Hub repo: pass --output FOLDER")
    else:
        output = Path(manifest.resolve(task.models[0]))
    # resumable state beside the model folder, never inside it (that folder is what gets published)
    state_dir = Path(cfg.state_dir) if cfg.state_dir else output.parent / ".train" / output.name
    return Settings(
        config=cfg, manifest=manifest, task=task, data=resolve_data(cfg, manifest, size),
        model=init.architecture if init else (cfg.model or task.backbone), input_size=size, init=init,
        teacher=teacher,
        pretrained=cfg.pretrained and init is None,
        freeze_bn=cfg.freeze_bn if cfg.freeze_bn is not None else bool(init and init.freeze_bn),
        output=output, state_dir=state_dir)
