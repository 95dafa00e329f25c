"""The resumable state of a run (model, optimiser, scheduler, epoch, RNG), written after every epoch.

A state remembers the resolved configuration that wrote it; `--resume` refuses a state from another one.
"""
from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, TrainConfig

STATE_FILE = "last.pt"
BEST_FILE = "best.pt"
# options that change how a run is carried out, not what it computes
NOT_COMPARED = ("resume", "progress", "threads", "workers", "push_to_hub", "output", "state_dir", "cache_dir",
                "manifest", "compile")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_state(path: Path, **state) -> None:
    """Atomic: a crash mid-write leaves the previous state intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _defaults() -> dict:
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def compared(config: TrainConfig | dict) -> dict:
    """The options that make a run's result. A saved configuration lacking an option (added to
    TrainConfig since) had its default, so states and recipe records from before stay valid."""
    values = dataclasses.asdict(config) if isinstance(config, TrainConfig) else {**_defaults(), **config}
    return {k: v for k, v in values.items() if k not in NOT_COMPARED}


def differences(saved: dict, current: TrainConfig) -> list[str]:
    """The options whose values differ between a saved state's configuration and `current`."""
    old, new = compared(saved), compared(current)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def load_state(path: Path, current: TrainConfig, start: str | None, device, teacher: str | None = None) -> dict:
    """The state at `path`, if it was written by `current` (the resolved configuration) from the same
    starting weights (`start`: the --init-from model's digest) and the same teacher (its digest)."""
    state = torch.load(path, map_location=device, weights_only=False)
    changed = differences(state.get("config") or {}, current)
    if changed:
        old = compared(state.get("config") or {})
        raise ConfigError(f"--resume: {path} was written by another configuration ("
                          + ", ".join(f"{k}: {old.get(k)!r} then, {compared(current).get(k)!r} now" for k in changed)
                          + "). Start over without --resume, or pass the same options.")
    if state.get("start") != start:
        raise ConfigError(f"--resume: {path} started from other weights: the --init-from model has changed "
                          "since. Start over without --resume.")
    if state.get("teacher") != teacher:
        raise ConfigError(f"--resume: {path} was distilled from another teacher: the --teacher model has changed "
                          "since. Start over without --resume.")
    return state


def resumable(state_dir: Path, current: TrainConfig, start: str | None, teacher: str | None = None) -> bool:
    """Whether `state_dir` holds a state that `current`, starting from `start` and taught by `teacher`
    (digests), may resume."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return False
    state = torch.load(path, map_location="cpu", weights_only=False)
    return (not differences(state.get("config") or {}, current) and state.get("start") == start
            and state.get("teacher") == teacher)
