"""Recipes (finetune/recipes.yaml): each task's default model as stages in order, read into frozen objects.

A stage sets `python -m finetune` options over a template, and starts from scratch, timm's pretrained
weights, another stage (the previous one by default), or a model folder; it may name a teacher; a
`convert` stage turns a TF.js face backbone into a model folder instead of training. Running them is
finetune.recipe_run's job.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub.config import Manifest

from .config import ConfigError, make_config

RECIPES_FILE = Path(__file__).with_name("recipes.yaml")
STAGE_KEYS = ("name", "use", "from", "teacher", "convert")
SET_BY_RECIPE = ("output", "state_dir", "init_from", "teacher", "resume", "pretrained")  # via from/teacher


@dataclass(frozen=True)
class Start:
    """Where a stage's weights come from: scratch, imagenet, stage (value RECIPE/STAGE) or folder (a path)."""
    kind: str
    value: str | None = None


@dataclass(frozen=True)
class Stage:
    recipe: str
    name: str
    options: tuple[tuple[str, Any], ...]   # finetune options (template, then the stage's own), as written
    start: Start
    teacher: Start | None = None
    convert: str | None = None             # a TF.js backbone folder: a conversion, not a training

    @property
    def key(self) -> str:
        return f"{self.recipe}/{self.name}"


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str | None                       # publishes to the task's model folder; None: stages only
    stages: tuple[Stage, ...]
    publish: str                           # the stage whose model is published: the last unless named
    why: str = ""                          # why that model is the task's default: its card's "Why this model"

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"recipe {self.name}: no stage {name!r} (it has {[s.name for s in self.stages]})")


def _reference(text: Any, recipe: str, previous: str | None, root: Path, where: str) -> Start:
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{where}: expected a stage, a folder or scratch/imagenet/previous, got {text!r}")
    if text in ("scratch", "imagenet"):
        return Start(text)
    if text == "previous":
        if previous is None:
            raise ConfigError(f"{where}: the first stage has no previous stage")
        return Start("stage", f"{recipe}/{previous}")
    if text.startswith(("./", "../", "/")):
        return Start("folder", str(root / text) if not Path(text).is_absolute() else text)
    return Start("stage", text if "/" in text else f"{recipe}/{text}")


def _stage(raw: Any, recipe: str, previous: str | None, templates: dict, root: Path, where: str) -> Stage:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}: a stage is a mapping with a name")
    where = f"{where} ({raw['name']})"
    if raw.get("convert"):
        extra = set(raw) - {"name", "convert"}
        if extra:
            raise ConfigError(f"{where}: a convert stage takes only name and convert, not {sorted(extra)}")
        source = str(root / raw["convert"])
        return Stage(recipe, raw["name"], (), Start("folder", source), convert=source)
    template = {}
    if raw.get("use") is not None:
        if raw["use"] not in templates:
            raise ConfigError(f"{where}: no template {raw['use']!r} (templates: {sorted(templates)})")
        template = templates[raw["use"]]
    merged = {**template, **raw}
    options = {k: v for k, v in merged.items() if k not in STAGE_KEYS}
    fixed = sorted(set(options) & set(SET_BY_RECIPE))
    if fixed:
        raise ConfigError(f"{where}: {fixed} are set by the recipe (use from: / teacher:)")
    if "from" not in merged and previous is None:
        raise ConfigError(f"{where}: the first stage needs `from:` (scratch, imagenet, a stage or ./FOLDER)")
    start = _reference(merged.get("from", "previous"), recipe, previous, root, f"{where}: from")
    teacher = _reference(merged["teacher"], recipe, previous, root, f"{where}: teacher") \
        if merged.get("teacher") else None
    if teacher and teacher.kind in ("scratch", "imagenet"):
        raise ConfigError(f"{where}: teacher: a stage or ./FOLDER, not {teacher.kind}")
    return Stage(recipe, raw["name"], tuple(options.items()), start, teacher)


def load_recipes(manifest: Manifest, path: str | Path = RECIPES_FILE) -> dict[str, Recipe]:
    """Every recipe of `path`; folder paths in it are relative to the manifest's folder."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("recipes"), dict):
        raise ConfigError(f"{path}: needs `recipes:` (a recipe per task)")
    unknown = set(raw) - {"templates", "recipes"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} (known: templates, recipes)")
    templates = raw.get("templates") or {}
    recipes = {}
    for name, body in raw["recipes"].items():
        where = f"{path}: recipes.{name}"
        if not isinstance(body, dict) or not body.get("stages"):
            raise ConfigError(f"{where}: needs stages")
        stages, previous = [], None
        for i, item in enumerate(body["stages"]):
            stage = _stage(item, name, previous, templates, manifest.root, f"{where}.stages[{i}]")
            if stage.name in {s.name for s in stages}:
                raise ConfigError(f"{where}: stage {stage.name!r} twice")
            stages.append(stage)
            previous = stage.name
        task = name if name in manifest.tasks else None
        publish = body.get("publish", stages[-1].name)
        unknown = set(body) - {"stages", "publish", "why"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (known: stages, publish, why)")
        recipes[name] = Recipe(name, task, tuple(stages), publish, " ".join(str(body.get("why") or "").split()))
        recipes[name].stage(publish)  # names a stage of its own
    for recipe in recipes.values():  # every stage reference names a stage that exists
        for stage in recipe.stages:
            for ref in (stage.start, stage.teacher):
                if ref and ref.kind == "stage":
                    other, _, name = ref.value.partition("/")
                    if other not in recipes:
                        raise ConfigError(f"{path}: {stage.key} refers to {ref.value}: no recipe {other!r}")
                    recipes[other].stage(name)
    return recipes


def stage_options(stage: Stage, task: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stage's finetune options as plain values (task filled in, `overrides` last), checked by type."""
    values = {"task": task, **dict(stage.options), **(overrides or {})}
    make_config({k: v for k, v in values.items()}, stage.key)  # raises ConfigError naming the stage
    return values
