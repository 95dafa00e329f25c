"""`python -m hub deploy --space-id USER/NAME`: build a Hugging Face Space folder from spaces.yaml,
then (unless --dry-run) create the Space and upload it.

The folder holds README.md (the Space's YAML config + a short card), requirements.txt pinned to
the versions installed here, app.py, the hub/ package, examples/, spaces.yaml, and either the local
model folders under models/ or, with --models-from-hub, their Hub ids (`hf-hub:ORG/face-<task>`,
the repo `python -m finetune --push-to-hub ORG/face-<task>` writes: config.json + model.safetensors
+ README.md).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import DEFAULT_MANIFEST, PROJECT_ROOT, Manifest, ManifestError, TaskConfig, read_manifest
from .locations import HUB_PREFIX, HubRef, hub_ref
from .models import CONFIG_FILE, WEIGHTS_FILE, read_model_config

HUB_URL = "https://huggingface.co"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# What app.py and hub/ import at run time (pyproject.toml's dependencies); training and dev tools stay out
# of the Space. torchvision is no import of ours but timm's: pinned so that it matches torch's CPU wheel.
RUNTIME_PACKAGES = ("torch", "torchvision", "timm", "facenet-pytorch", "gradio", "huggingface_hub",
                    "safetensors", "pillow", "numpy", "pyyaml", "tqdm", "packaging",
                    "av", "trackers", "supervision", "pandas")
# and, when spaces.yaml lets the Space train (train_your_own.enabled_on_spaces), finetune's head-only path
TRAIN_PACKAGES = ("datasets", "scikit-learn", "scipy", "matplotlib")
# facenet-pytorch 2.6 pins torch 2.2, which conflicts with everything else here
FACENET_VERSIONS = ">=2.5.3,<2.6"
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
SHORT_DESCRIPTION_MAX = 60  # the Hub rejects a longer short_description
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, "README.md", "*.json", "*.png")  # as hub.models.fetch_location
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BUILD_MARKER = ".hub-deploy-build"  # lets a rebuild clear its own folder, and only that


class DeployError(RuntimeError):
    """Deployment cannot go on; the message says what to change."""


# --- which model each task uses in the Space -------------------------------------------------

@dataclass
class ModelPlan:
    locations: dict[str, list[str]] = field(default_factory=dict)  # task -> models: in the Space's spaces.yaml
    copies: dict[str, Path] = field(default_factory=dict)           # folder in the Space -> local source
    pushes: dict[str, Path] = field(default_factory=dict)           # Hub model repo -> local source
    skipped: dict[str, str] = field(default_factory=dict)           # task -> why it is left out

    @property
    def hub_refs(self) -> list[HubRef]:
        """Every Hub repo (and revision) the Space loads, once each."""
        refs = [hub_ref(loc) for locs in self.locations.values() for loc in locs]
        return list(dict.fromkeys(ref for ref in refs if ref))


def default_hub_id(task: str, org: str) -> str:
    return f"{org}/face-{task}"


def _local_model(manifest: Manifest, task: TaskConfig, location: str) -> Path | None:
    """The folder if it holds a usable model; None if there is none; DeployError if it is wrong."""
    folder = Path(manifest.resolve(location))
    if not folder.is_dir():
        return None
    try:
        config = read_model_config(folder)
    except FileNotFoundError:
        return None
    except ValueError as err:  # a pickle checkpoint
        raise DeployError(str(err)) from None
    labels = list(config.get("label_names") or [])
    if task.is_classification and labels != list(task.labels):
        raise DeployError(f"{folder} has labels {labels}, but spaces.yaml tasks.{task.name}.labels "
                          f"says {list(task.labels)}")
    return folder


def plan_models(manifest: Manifest, *, from_hub: bool = False, hub_org: str | None = None,
                hub_ids: dict[str, str] | None = None) -> ModelPlan:
    """Keep the manifest's order of locations; drop local folders without a model; with `from_hub`,
    replace a local model by its Hub repo (`hub_ids[task]`, else `hub_org/face-<task>`)."""
    hub_ids = hub_ids or {}
    unknown = set(hub_ids) - set(manifest.tasks)
    if unknown:
        raise DeployError(f"--hub-id names unknown task(s) {sorted(unknown)}; spaces.yaml has {sorted(manifest.tasks)}")
    plan = ModelPlan()
    for name, task in manifest.tasks.items():
        chosen: list[str] = []
        for location in task.models:
            if hub_ref(location):
                chosen.append(location)
                continue
            folder = _local_model(manifest, task, location)
            if from_hub:
                repo = hub_ids.get(name) or (default_hub_id(name, hub_org) if hub_org else None)
                if repo is None:
                    if folder is not None:
                        raise DeployError(f"--models-from-hub: no Hub repo for the local model of '{name}'; "
                                          f"pass --hub-org ORG (-> ORG/face-{name}) or --hub-id {name}=ORG/NAME")
                    continue
                # an explicit --hub-id vouches for a repo that exists; --hub-org only for trained models
                if folder is not None or name in hub_ids:
                    chosen.append(HUB_PREFIX + repo)
                    if folder is not None:
                        plan.pushes.setdefault(repo, folder)
            elif folder is not None:
                target = f"models/{name}" if f"models/{name}" not in plan.copies else f"models/{name}-{len(chosen) + 1}"
                plan.copies[target] = folder
                chosen.append(target)
        chosen = list(dict.fromkeys(chosen))
        if chosen:
            plan.locations[name] = chosen
        else:
            plan.skipped[name] = (f"no model at {', '.join(task.models)}; train one with "
                                  f"`python -m finetune --task {name}`")
    own = manifest.train_your_own
    if own.enabled_on_spaces and own.task in plan.skipped:  # no model ships: the Space's users train one
        del plan.skipped[own.task]
        plan.locations[own.task] = [f"models/{own.task}"]
    if not plan.locations:
        raise DeployError("no task has a model to deploy: " + "; ".join(f"{k}: {v}" for k, v in plan.skipped.items()))
    return plan


# --- the generated files --------------------------------------------------------------------

def installed_version(package: str) -> str:
    from packaging.version import Version

    try:
        return Version(importlib.metadata.version(package)).public  # drop "+cpu" and the like
    except importlib.metadata.PackageNotFoundError:
        raise DeployError(f"{package} is not installed here; install the project (pip install -e .) "
                          "so requirements.txt can pin what the app was tested with") from None


def requirements_lines(cpu_only: bool = True, training: bool = False) -> list[str]:
    from packaging.specifiers import SpecifierSet

    lines = ["# Generated by `python -m hub deploy`: the app's run-time packages at the versions it ran with here."]
    if cpu_only:  # CPU wheels: a fraction of the CUDA build's size, so the Space builds faster
        lines.append(f"--extra-index-url {CPU_TORCH_INDEX}")
    for package in RUNTIME_PACKAGES + (TRAIN_PACKAGES if training else ()):
        version = installed_version(package)
        if package == "facenet-pytorch" and version not in SpecifierSet(FACENET_VERSIONS):
            raise DeployError(f"facenet-pytorch {version} is installed; the app needs {FACENET_VERSIONS}")
        lines.append(f"{package}=={version}")
    return lines


def check_space_config(manifest: Manifest) -> None:
    space = manifest.space
    for key, color in (("color_from", space.color_from), ("color_to", space.color_to)):
        if color not in SPACE_COLORS:
            raise DeployError(f"spaces.yaml space.{key}: {color!r} is not a Space color {list(SPACE_COLORS)}")
    if len(space.short_description) > SHORT_DESCRIPTION_MAX:
        raise DeployError(f"spaces.yaml space.short_description: {len(space.short_description)} characters; "
                          f"the Hub accepts at most {SHORT_DESCRIPTION_MAX}")
    from huggingface_hub import SpaceHardware

    flavors = [flavor.value for flavor in SpaceHardware]
    if space.suggested_hardware not in flavors:
        raise DeployError(f"spaces.yaml space.suggested_hardware: {space.suggested_hardware!r} is not one of {flavors}")


def dataset_ids(manifest: Manifest, tasks) -> list[str]:
    return list(dict.fromkeys(manifest.tasks[name].dataset.id for name in tasks if manifest.tasks[name].dataset.id))


def front_matter(manifest: Manifest, plan: ModelPlan) -> dict:
    """The Space's configuration: https://huggingface.co/docs/hub/spaces-config-reference"""
    import gradio

    space = manifest.space
    config = {
        "title": space.title,
        "emoji": space.emoji,
        "colorFrom": space.color_from,
        "colorTo": space.color_to,
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "python_version": space.python_version,
        "app_file": "app.py",
        "pinned": False,
        "license": space.license,
        "short_description": space.short_description,
        "suggested_hardware": space.suggested_hardware,
    }
    repos = [ref.repo_id for ref in plan.hub_refs]
    if repos:
        config["models"] = list(dict.fromkeys(repos))
        # downloaded at build time into the cache snapshot_download reads, so start-up needs no download
        config["preload_from_hub"] = [_preload_entry(ref) for ref in plan.hub_refs]
    datasets = dataset_ids(manifest, plan.locations)
    if datasets:
        config["datasets"] = datasets
    return config


def _preload_entry(ref: HubRef) -> str:
    return f"{ref.repo_id} {CONFIG_FILE},{WEIGHTS_FILE} {ref.revision}" if ref.revision else ref.repo_id


def _model_link(space_id: str, location: str, source: Path | None) -> str:
    ref = hub_ref(location)
    if ref:
        return f"[{ref.repo_id}]({HUB_URL}/{ref.repo_id})"
    page = f"blob/main/{location}/README.md" if source and (source / "README.md").is_file() else f"tree/main/{location}"
    return f"[{location}]({HUB_URL}/spaces/{space_id}/{page}) (in this Space)"


def readme_text(manifest: Manifest, space_id: str, plan: ModelPlan) -> str:
    matter = yaml.safe_dump(front_matter(manifest, plan), sort_keys=False, allow_unicode=True)
    tasks = [manifest.tasks[name] for name in plan.locations]
    lines = [f"---\n{matter}---", "", f"# {manifest.space.title}", "",
             manifest.space.short_description, "",
             "Upload a photo: the app finds every face (MTCNN), numbers them left to right, and predicts "
             f"{', '.join(t.title.lower() for t in tasks)} for each face, with how sure it is. "
             "Built from `spaces.yaml` by `python -m hub deploy`.", "", "## Models", ""]
    for task in tasks:
        links = ", ".join(_model_link(space_id, loc, plan.copies.get(loc)) for loc in plan.locations[task.name])
        data = f", trained on [{task.dataset.id}]({HUB_URL}/datasets/{task.dataset.id})" if task.dataset.id else ""
        lines.append(f"- **{task.title}** ({task.kind}, `{task.backbone}`): {links}{data}")
    for name, why in plan.skipped.items():
        lines.append(f"- {manifest.tasks[name].title}: not in this Space ({why.split(';')[0]})")
    lines += ["", "## Limits and bias", "",
              "These are guesses from appearance, learned from face datasets whose people are not "
              "a balanced sample of the world; accuracy differs across age, skin tone and gender, and drops "
              "on side views, occlusion and poor light. Do not use them to make decisions about people.", ""]
    lines += [f"- **{task.title}**: {task.caveat}" for task in tasks if task.caveat]
    return "\n".join(lines) + "\n"


def space_manifest_text(manifest_path: Path, plan: ModelPlan) -> str:
    """The source spaces.yaml with each task's models rewritten and tasks without a model removed."""
    raw = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    for name in plan.skipped:
        raw["tasks"].pop(name, None)
    if (raw.get("train_your_own") or {}).get("task", "field") not in raw["tasks"]:
        raw.pop("train_your_own", None)  # its task is left out: the Space does not train
    for name, locations in plan.locations.items():
        raw["tasks"][name]["models"] = list(locations)
    header = (f"# Generated by `python -m hub deploy` from {manifest_path.name}: models point inside this Space "
              "or at the Hub.\n")
    return header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


# --- the folder -----------------------------------------------------------------------------

@dataclass
class Build:
    folder: Path
    space_id: str
    plan: ModelPlan

    @property
    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*")
                      if p.is_file() and p.name != BUILD_MARKER)


def _fresh_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / BUILD_MARKER).exists():
            raise DeployError(f"{out} is not empty and was not built by `hub deploy`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / BUILD_MARKER).write_text("built by python -m hub deploy; this folder is replaced on the next build\n")


def _copy_model(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for pattern in MODEL_FILES:
        for path in source.glob(pattern):
            if path.is_file():
                shutil.copy2(path, target / path.name)


def build_space(space_id: str, out: str | Path, *, manifest_path: str | Path = DEFAULT_MANIFEST,
                models_from_hub: bool = False, hub_org: str | None = None,
                hub_ids: dict[str, str] | None = None, project_root: Path = PROJECT_ROOT) -> Build:
    if space_id.count("/") != 1 or not all(space_id.split("/")):
        raise DeployError(f"--space-id {space_id!r}: expected USER/NAME")
    manifest_path = Path(manifest_path).resolve()
    try:
        manifest = read_manifest(manifest_path)
    except ManifestError as err:
        raise DeployError(str(err)) from None
    check_space_config(manifest)
    plan = plan_models(manifest, from_hub=models_from_hub, hub_org=hub_org, hub_ids=hub_ids)
    if not (project_root / "app.py").is_file():
        raise DeployError(f"{project_root / 'app.py'} not found: the Space needs the app")

    out = Path(out).resolve()
    _fresh_folder(out)
    shutil.copy2(project_root / "app.py", out / "app.py")
    shutil.copytree(project_root / "hub", out / "hub", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    examples = project_root / "examples"
    if examples.is_dir():
        for photo in sorted(examples.iterdir()):
            if photo.suffix.lower() in EXAMPLE_SUFFIXES:
                (out / "examples").mkdir(exist_ok=True)
                shutil.copy2(photo, out / "examples" / photo.name)
    for target, source in plan.copies.items():
        _copy_model(source, out / target)
    training = manifest.train_your_own.enabled_on_spaces
    if training:  # the Space trains: finetune's code and the face backbone go with the app
        shutil.copytree(project_root / "finetune", out / "finetune",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        backbone = manifest.train_your_own.backbone
        if not backbone.startswith(HUB_PREFIX):
            if Path(backbone).is_absolute() or ".." in Path(backbone).parts:
                raise DeployError(f"spaces.yaml train_your_own.backbone: {backbone!r} must be a folder inside "
                                  "the project (or hf-hub:ORG/NAME) to go into the Space")
            _copy_model(Path(manifest.resolve(backbone)), out / backbone)
    (out / "spaces.yaml").write_text(space_manifest_text(manifest_path, plan), encoding="utf-8")
    read_manifest(out / "spaces.yaml")  # the Space must start: fail here, not there
    cpu_only = manifest.space.suggested_hardware.startswith("cpu")
    (out / "requirements.txt").write_text("\n".join(requirements_lines(cpu_only, training)) + "\n",
                                          encoding="utf-8")
    (out / "README.md").write_text(readme_text(manifest, space_id, plan), encoding="utf-8")
    return Build(folder=out, space_id=space_id, plan=plan)


# --- the upload -----------------------------------------------------------------------------

def resolve_token() -> str:
    from huggingface_hub import get_token

    token = get_token()  # HF_TOKEN, else the token `hf auth login` saved
    if not token:
        raise DeployError("no Hugging Face token: run `hf auth login` (a token with write access, from "
                          f"{HUB_URL}/settings/tokens) or set HF_TOKEN; or use --dry-run to only build the folder")
    return token


def upload(build: Build, *, token: str, private: bool = False, push_models: bool = False,
           endpoint: str | None = None) -> str:
    """Create the Space (and, with `push_models`, its model repos) and upload; returns the Space's URL."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        raise DeployError("HF_HUB_OFFLINE is set: unset it to upload, or use --dry-run")
    api = HfApi(endpoint=endpoint, token=token)
    visibility = True if private else None  # None: the account's default, and an existing Space keeps its own
    try:
        if push_models:
            for repo, source in build.plan.pushes.items():
                api.create_repo(repo, repo_type="model", private=visibility, exist_ok=True)
                api.upload_folder(repo_id=repo, repo_type="model", folder_path=source,
                                  allow_patterns=list(MODEL_FILES), commit_message="Upload model from hub deploy")
                print(f"pushed {source} -> {api.endpoint}/{repo}")
        url = api.create_repo(build.space_id, repo_type="space", space_sdk="gradio", private=visibility,
                              exist_ok=True)
        api.upload_folder(repo_id=build.space_id, repo_type="space", folder_path=build.folder,
                          ignore_patterns=[BUILD_MARKER], commit_message="Deploy from spaces.yaml")
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        hint = " (is the token allowed to write there? `hf auth login` with a write token)" if status in (401, 403) else ""
        raise DeployError(f"upload to {build.space_id} failed: {err}{hint}") from None
    except Exception as err:  # noqa: BLE001 - network and file errors: one clear line, the folder stays built
        raise DeployError(f"upload to {build.space_id} failed ({err.__class__.__name__}: {err}); "
                          f"the folder is built at {build.folder}") from err
    return str(url)


# --- the command line -----------------------------------------------------------------------

def _hub_id_pair(text: str) -> tuple[str, str]:
    task, sep, repo = text.partition("=")
    if not sep or repo.count("/") != 1:
        raise argparse.ArgumentTypeError(f"expected TASK=ORG/NAME, got {text!r}")
    return task, repo


def add_deploy_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "deploy", help="build a Hugging Face Space from spaces.yaml and upload it",
        description="Build the Space folder from spaces.yaml; without --dry-run, create the Space and upload it "
                    "(token from HF_TOKEN or `hf auth login`).")
    add_deploy_arguments(parser)
    return parser


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space-id", required=True, help="USER/NAME of the Space")
    parser.add_argument("--manifest", default=None, help="spaces.yaml to deploy (default: the project's, or $HUB_MANIFEST)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "space_out"), help="where to build the folder (default: space_out/)")
    parser.add_argument("--dry-run", action="store_true", help="build the folder, upload nothing")
    parser.add_argument("--models-from-hub", action="store_true",
                        help="load models from Hub repos instead of copying local folders into the Space")
    parser.add_argument("--hub-org", help="with --models-from-hub: a local model of TASK lives at ORG/face-TASK")
    parser.add_argument("--hub-id", action="append", type=_hub_id_pair, default=[], metavar="TASK=ORG/NAME",
                        help="with --models-from-hub: the Hub repo of TASK's model (repeatable; beats --hub-org)")
    parser.add_argument("--push-models", action="store_true",
                        help="with --models-from-hub: upload the local model folders to those repos first")
    parser.add_argument("--private", action="store_true", help="create the Space (and model repos) private")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os

    manifest = args.manifest or os.environ.get("HUB_MANIFEST") or DEFAULT_MANIFEST
    try:
        if (args.hub_org or args.hub_id or args.push_models) and not args.models_from_hub:
            raise DeployError("--hub-org, --hub-id and --push-models go with --models-from-hub")
        token = None if args.dry_run else resolve_token()  # before building: fail fast without a login
        build = build_space(args.space_id, args.out, manifest_path=manifest, models_from_hub=args.models_from_hub,
                            hub_org=args.hub_org, hub_ids=dict(args.hub_id))
        _report(build)
        if args.dry_run:
            for repo, source in build.plan.pushes.items():
                print(f"would push {source} -> {repo}" if args.push_models else
                      f"expects {repo} on the Hub (push it with --push-models or finetune --push-to-hub {repo})")
            print(f"dry run: nothing uploaded; the Space would be {HUB_URL}/spaces/{args.space_id}")
            return 0
        url = upload(build, token=token, private=args.private, push_models=args.push_models)
    except DeployError as err:
        print(f"deploy: error: {err}", file=sys.stderr)
        return 2
    print(f"Space: {url}")
    return 0


def _report(build: Build) -> None:
    print(f"built {build.folder} for {build.space_id}:")
    for name, locations in build.plan.locations.items():
        print(f"  {name}: {', '.join(locations)}")
    for name, why in build.plan.skipped.items():
        print(f"  skipped {name}: {why}")
    print(f"  {len(build.files)} files: " + ", ".join(f for f in build.files if "/" not in f or f.startswith("models/")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.deploy", description=__doc__.splitlines()[0])
    add_deploy_arguments(parser)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
