"""pyproject.toml declares what the code imports, each in the right group: app.py and hub/ in the
dependencies, finetune/ in `train`, tests/ and benchmarks/ in `dev` (the peers' own packages live in
.venv-peers and are not checked here)."""
from __future__ import annotations

import functools
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import top_level_imports

ROOT = Path(__file__).resolve().parents[1]
OURS = {"hub", "finetune", "benchmarks", "conftest", "app", "video_clips"}  # video_clips: tests/video_clips.py
PEER_MODULES = {"benchmarks/peers.py", "benchmarks/peer_pipeline.py"}  # run in .venv-peers
# imports that are optional where they stand (try/except ImportError)
OPTIONAL = {"certifi": "hub/fetch.py: the system trust store otherwise",
            "spaces": "hub/spaces_runtime.py: preinstalled on ZeroGPU Spaces only",
            "norfair": "benchmarks/tracker_choice.py: the tracker not chosen; it pins numpy<2, so kept aside"}
# declared, but not imported by name
NOT_IMPORTED = {"pytest-timeout": "a pytest plugin: @pytest.mark.timeout",
                "playwright": "tests/test_browser.py: pytest.importorskip('playwright.sync_api')"}
GROUPS = {"runtime": ["app.py", "hub"], "train": ["finetune"], "dev": ["tests", "benchmarks"]}
ALLOWED = {"runtime": ["dependencies"], "train": ["dependencies", "train"],
           "dev": ["dependencies", "train", "browser", "dev"]}


def declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    return {name: {canonicalize_name(Requirement(r).name) for r in reqs if not r.startswith("face-attribute-hub")}
            for name, reqs in groups.items()}


def imported_modules(group: str) -> dict[str, str]:
    """Top-level third-party module -> a file importing it, for every file of the group."""
    found = {}
    for place in GROUPS[group]:
        paths = [ROOT / place] if place.endswith(".py") else sorted((ROOT / place).rglob("*.py"))
        for path in paths:
            relative = str(path.relative_to(ROOT))
            if relative in PEER_MODULES:
                continue
            for top in sorted(top_level_imports(path.read_text())):
                if top in sys.stdlib_module_names or top in OURS or top.startswith("test_") or top in OPTIONAL:
                    continue
                found.setdefault(top, relative)
    return found


@functools.lru_cache(maxsize=None)
def _providers() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    names = _providers().get(module)
    assert names, f"no installed distribution provides {module!r}"
    return canonicalize_name(names[0])


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_import_is_declared_in_its_group(group):
    groups = declared()
    allowed = set().union(*(groups[name] for name in ALLOWED[group]))
    missing = {module: where for module, where in imported_modules(group).items()
               if distribution(module) not in allowed}
    assert not missing, f"imported but not declared for {group}: {missing}"


def test_every_declared_package_is_imported_where_it_is_declared():
    groups = declared()
    used = {group: {distribution(m) for m in imported_modules(group)} for group in GROUPS}
    where = {"dependencies": used["runtime"], "train": used["train"], "dev": used["dev"], "browser": used["dev"]}
    unused = {(name, package) for name, packages in groups.items() if name in where
              for package in packages if package not in where[name] and package not in NOT_IMPORTED}
    assert not unused, f"declared but imported nowhere in its group: {sorted(unused)}"


def test_the_space_gets_the_runtime_dependencies():
    from hub.space_files import RUNTIME_PACKAGES

    runtime = {canonicalize_name(name) for name in RUNTIME_PACKAGES} - {"torchvision"}  # timm's, pinned with torch
    assert runtime == declared()["dependencies"]
