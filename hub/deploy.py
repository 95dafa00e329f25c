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
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_MANIFEST, PROJECT_ROOT, Manifest, ManifestError, TaskConfig, read_manifest
from .locations import HUB_PREFIX, hub_ref
from .models import CONFIG_FILE, WEIGHTS_FILE, read_model_config
from .space_files import (HUB_URL, DeployError, ModelPlan, check_space_config, readme_text, requirements_lines,
                          space_manifest_text)


# --- which model each task uses in the Space -------------------------------------------------

MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, "README.md", "*.json", "*.png")  # as hub.models.fetch_location
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BUILD_MARKER = ".hub-deploy-build"  # lets a rebuild clear its own folder, and only that


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
