"""`python -m finetune recipe TASK...`: run each recipe's stages in order and publish the result.

A stage is done when its run folder holds a model and a `recipe.json` saying it was made from the same
options and the same starting weights; done stages are skipped. A stage whose state (runs/RECIPE/.train/
STAGE/last.pt) was written by the same resolved configuration is resumed. A stage that starts from another
recipe's stage runs that one first. The published stage's folder is copied to the task's model folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from hub.config import Manifest, load_manifest
from hub.models import WEIGHTS_FILE

from . import runstate
from .config import ConfigError, make_config
from .errors import DataError
from .recipe import RECIPES_FILE, Recipe, Stage, Start, load_recipes, stage_options
from .settings import digest, resolve, shown

RECORD_FILE = "recipe.json"
STARTS = ("init_from", "teacher")  # recorded by the content of the model folders they name


def command_line(values: dict[str, Any]) -> str:
    """Options as the `python -m finetune` flags that set them."""
    words = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        elif isinstance(value, dict):
            words += [flag, *(f"{k}={v}" for k, v in value.items())]
        elif value is not None:
            words += [flag, str(value)]
    return " ".join(words)


class Runner:
    def __init__(self, recipes: dict[str, Recipe], manifest: Manifest, runs: Path,
                 overrides: dict[str, Any] | None = None, dry_run: bool = False):
        self.recipes, self.manifest, self.runs = recipes, manifest, runs
        self.overrides, self.dry_run = dict(overrides or {}), dry_run
        self._ready: set[str] = set()
        self._visiting: set[str] = set()

    def folder(self, key: str) -> Path:
        recipe, _, stage = key.partition("/")
        return self.runs / recipe / stage

    def _source(self, start: Start) -> Path | None:
        if start.kind == "stage":
            self.ensure(start.value)
            return self.folder(start.value)
        return Path(start.value) if start.kind == "folder" else None

    def config_values(self, stage: Stage) -> dict[str, Any]:
        """The stage as `python -m finetune` options: the recipe's paths filled in."""
        values = stage_options(stage, self.recipes[stage.recipe].task, self.overrides)
        start, teacher = self._source(stage.start), self._source(stage.teacher) if stage.teacher else None
        values.update(output=shown(self.folder(stage.key)),
                      state_dir=shown(self.runs / stage.recipe / ".train" / stage.name),
                      init_from=shown(start) if start else None, teacher=shown(teacher) if teacher else None,
                      pretrained=stage.start.kind == "imagenet")
        return values

    def _digest(self, folder: str | None) -> str | None:
        if folder is None:
            return None
        if self.dry_run and not Path(folder).exists():
            return "(not built yet)"
        return digest(folder)

    def record(self, stage: Stage) -> dict[str, Any]:
        """What makes a stage's result: its options and the weights it starts from (by content, so that
        a stage rebuilt differently makes the stages after it run again)."""
        if stage.convert:  # (a dry run without the backbone's source still says what would run)
            return {"convert": self._digest(str(stage.convert))}
        options = runstate.compared(make_config(self.config_values(stage), stage.key))
        starts = {name: self._digest(options.pop(name)) for name in STARTS}
        return {"options": options, "starts": starts}

    def done(self, stage: Stage, record: dict) -> bool:
        path = self.folder(stage.key) / RECORD_FILE
        if not path.is_file() or not (self.folder(stage.key) / WEIGHTS_FILE).is_file():
            return False
        saved = json.loads(path.read_text())
        if "options" in saved:  # options added to finetune since the record was written had their defaults
            saved["options"] = {k: v for k, v in runstate.compared(saved["options"]).items() if k not in STARTS}
        return saved == json.loads(json.dumps(record))

    def ensure(self, key: str) -> None:
        """Stage `key` done: its recipe's earlier stages first (through `from`), then itself."""
        if key in self._ready:
            return
        if key in self._visiting:
            raise ConfigError(f"recipes: {key} starts from itself (a loop of from/teacher)")
        self._visiting.add(key)
        recipe, _, name = key.partition("/")
        stage = self.recipes[recipe].stage(name)
        record = self.record(stage)  # runs the stages it starts from first
        if self.done(stage, record):
            print(f"[recipe] {key}: done with the same settings, skipped")
        elif self.dry_run:
            print(f"[recipe] {key}: would run python -m finetune "
                  + (f"convert {shown(stage.convert)} --out {shown(self.folder(key))}" if stage.convert
                     else command_line(self.config_values(stage))))
        else:
            self._run(stage)
            (self.folder(key) / RECORD_FILE).write_text(json.dumps(record, indent=2))
        self._visiting.discard(key)
        self._ready.add(key)

    def _run(self, stage: Stage) -> None:
        out = self.folder(stage.key)
        if stage.convert:
            from .convert import convert
            print(f"[recipe] {stage.key}: converting {shown(stage.convert)}")
            convert(stage.convert, out, labels=["female", "male"])
            return
        cfg = make_config(self.config_values(stage), stage.key)
        if cfg.head_only:  # a logistic-regression head on the frozen `from:` model: nothing to resume
            from .head_train import main as fit_head_only

            print(f"[recipe] {stage.key}: fitting a head on frozen features -> {shown(out)}")
            fit_head_only(cfg, self.manifest)
            return
        from .train import run

        settings = resolve(cfg, self.manifest)
        resume = runstate.resumable(settings.state_dir, settings.as_config(), settings.start_digest,
                                    settings.teacher_digest)
        print(f"[recipe] {stage.key}: " + ("resuming" if resume else "training") + f" -> {shown(out)}")
        run(dataclasses.replace(settings, config=dataclasses.replace(cfg, resume=resume)))

    def run(self, name: str, publish: bool = True) -> None:
        recipe = self.recipes[name]
        for stage in recipe.stages:
            self.ensure(stage.key)
        if publish and recipe.task and not self.dry_run:
            self.publish(recipe)

    def publish(self, recipe: Recipe) -> Path:
        """The published stage's model folder (files only, not its record) becomes the task's model folder."""
        source = self.folder(f"{recipe.name}/{recipe.publish}")
        target = Path(self.manifest.resolve(self.manifest.task(recipe.task).models[0]))
        staging = target.with_name(f".{target.name}.publishing")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in source.iterdir():
            if path.is_file() and path.name != RECORD_FILE:
                shutil.copy2(path, staging / path.name)
        card = staging / "README.md"
        if recipe.why and card.is_file():  # the recipe's reason for publishing this stage, in the model card
            card.write_text(card.read_text().rstrip("\n") + f"\n\n## Why this model\n\n{recipe.why}\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        print(f"[recipe] {recipe.name}: published {shown(source)} -> {shown(target)}")
        return target


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected option=value, got {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="TASK", help="recipes to run, in this order")
    parser.add_argument("--list", action="store_true", help="print the recipes and their stages")
    parser.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    parser.add_argument("--runs", help="where stages write their folders (default: runs/ beside spaces.yaml)")
    parser.add_argument("--no-publish", action="store_true", help="leave the task's model folder alone")
    parser.add_argument("--set", action="append", type=_setting, default=[], metavar="OPTION=VALUE",
                        help="a finetune option for every training stage, e.g. --set max_samples=64")
    parser.add_argument("--recipes", default=str(RECIPES_FILE), help="default: finetune/recipes.yaml")
    parser.add_argument("--manifest")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    try:
        recipes = load_recipes(manifest, args.recipes)
        if args.list or not args.names:
            for recipe in recipes.values():
                print(f"{recipe.name}: " + " -> ".join(s.name for s in recipe.stages)
                      + (f"; publishes {recipe.publish} to {recipe.task}'s model folder" if recipe.task else ""))
            return 0
        missing = [name for name in args.names if name not in recipes]
        if missing:
            parser.error(f"no recipe for {missing} in {args.recipes} (it has {sorted(recipes)}); add one, "
                         f"or train with `python -m finetune --task TASK --data PATH`")
        runner = Runner(recipes, manifest, Path(args.runs) if args.runs else manifest.root / "runs",
                        dict(args.set), args.dry_run)
        for name in args.names:
            runner.run(name, publish=not args.no_publish)
    except (ConfigError, DataError) as err:  # the message says what to change
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
