"""`python -m hub deploy`: the Space folder it builds, and its upload against a local stand-in for the Hub.

The stand-in (`FakeHub`) speaks the HTTP endpoints that `HfApi.create_repo` and `HfApi.upload_folder`
call: POST /api/repos/create, /api/validate-yaml, /api/{type}s/{id}/preupload/{rev} and
/api/{type}s/{id}/commit/{rev}. It answers "regular" to every preupload, so files arrive inline
(base64) in the commit; the Hub's LFS/xet path for large binaries is not emulated.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import free_port, top_level_imports
from hub import deploy, space_files
from hub.config import PROJECT_ROOT, read_manifest

SPACE_ID = "someone/face-hub"
DEV_PACKAGES = {"pytest", "pytest-timeout", "datasets", "scikit-learn", "transformers", "scikit-image",
                "matplotlib", "scipy", "httpx", "setuptools", "pip", "wheel"}


# --- helpers ------------------------------------------------------------------------------------

def front_matter(readme: Path) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", readme.read_text(encoding="utf-8"), re.S)
    assert match, "README.md does not start with a YAML front matter block"
    return yaml.safe_load(match.group(1))


def requirement_lines(path: Path) -> tuple[list[str], list[Requirement]]:
    options, requirements = [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--"):
            options.append(line)
        else:
            requirements.append(Requirement(line))  # raises on anything pip would not parse
    return options, requirements


def dependency_closure(names) -> set[str]:
    """The distributions that installing `names` brings in, read from the installed metadata."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


@pytest.fixture(scope="module")
def built(tiny_manifest_path, tmp_path_factory) -> deploy.Build:
    out = tmp_path_factory.mktemp("space") / "out"
    return deploy.build_space(SPACE_ID, out, manifest_path=tiny_manifest_path)


@pytest.fixture(scope="module")
def built_from_hub(tiny_manifest_path, tmp_path_factory) -> deploy.Build:
    out = tmp_path_factory.mktemp("space_hub") / "out"
    return deploy.build_space(SPACE_ID, out, manifest_path=tiny_manifest_path, models_from_hub=True, hub_org="acme")


# --- the built folder ----------------------------------------------------------------------------

def test_dry_run_folder_has_app_package_models_and_no_caches(built, tiny_manifest_path):
    files = set(built.files)
    for expected in ("README.md", "requirements.txt", "app.py", "spaces.yaml", "hub/__init__.py",
                     "hub/ui.py", "hub/config.py", "models/gender/config.json", "models/gender/model.safetensors",
                     "models/age/model.safetensors", "models/mood/model.safetensors"):
        assert expected in files, f"{expected} missing from the Space folder"
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    assert not any(f.startswith("models/field") for f in files), "field has no model; nothing to copy"
    source = tiny_manifest_path.parent / "models" / "gender" / "model.safetensors"
    assert (built.folder / "models/gender/model.safetensors").read_bytes() == source.read_bytes()
    examples = sorted(p.name for p in (PROJECT_ROOT / "examples").glob("*.jpg"))
    assert examples and all(f"examples/{name}" in files for name in examples)
    assert "examples/make_examples.py" not in files  # a dev script: it needs scikit-image


def test_space_manifest_points_inside_the_space_and_drops_tasks_without_model(built):
    manifest = read_manifest(built.folder / "spaces.yaml")
    assert set(manifest.tasks) == {"gender", "age", "mood"}
    assert built.plan.skipped.keys() == {"field"}
    for name, task in manifest.tasks.items():
        assert task.models == (f"models/{name}",)
        assert Path(manifest.resolve(task.models[0])).is_relative_to(built.folder)


def test_readme_front_matter_is_a_valid_space_config(built, tiny_manifest):
    import gradio

    config = front_matter(built.folder / "README.md")
    space = tiny_manifest.space
    assert config["title"] == space.title and config["emoji"] == space.emoji
    assert config["colorFrom"] == space.color_from and config["colorTo"] == space.color_to
    assert config["colorFrom"] in space_files.SPACE_COLORS and config["colorTo"] in space_files.SPACE_COLORS
    assert config["sdk"] == "gradio" and config["sdk_version"] == gradio.__version__
    assert config["app_file"] == "app.py" and (built.folder / config["app_file"]).is_file()
    assert config["python_version"] == space.python_version == "3.11"
    assert config["suggested_hardware"] == space.suggested_hardware
    assert config["license"] == space.license
    assert config["short_description"] == space.short_description
    assert len(config["short_description"]) <= 60
    assert config["pinned"] is False
    assert sorted(config["datasets"]) == ["Aaryan333/fer2013_train_publicTest_privateTest", "nu-delta/utkface"]  # once each
    assert "models" not in config and "preload_from_hub" not in config  # all models are in the folder


def test_readme_body_links_models_and_states_limits(built, tiny_manifest):
    body = (built.folder / "README.md").read_text().split("\n---\n", 1)[1]
    assert f"https://huggingface.co/spaces/{SPACE_ID}/tree/main/models/gender" in body
    assert "Limits and bias" in body
    for name in ("gender", "age", "mood"):
        assert tiny_manifest.tasks[name].caveat[:40] in body
    assert "Field of study: not in this Space" in body


def test_models_from_hub_lists_repos_and_ships_no_weights(built_from_hub):
    config = front_matter(built_from_hub.folder / "README.md")
    repos = ["acme/face-gender", "acme/face-age", "acme/face-mood"]
    assert sorted(config["models"]) == sorted(repos)
    assert sorted(config["preload_from_hub"]) == sorted(repos)  # whole repos, into the snapshot cache
    manifest = read_manifest(built_from_hub.folder / "spaces.yaml")
    assert {n: t.models for n, t in manifest.tasks.items()} == {n.split("-")[1]: (f"hf-hub:{n}",) for n in repos}
    assert not (built_from_hub.folder / "models").exists()
    assert set(built_from_hub.plan.pushes) == set(repos)  # what --push-models would upload
    body = (built_from_hub.folder / "README.md").read_text()
    assert "(https://huggingface.co/acme/face-gender)" in body


def test_models_from_hub_explicit_ids_and_missing_repo(tiny_manifest):
    plan = deploy.plan_models(tiny_manifest, from_hub=True, hub_org="acme",
                              hub_ids={"field": "acme/field-v2", "gender": "me/g@abc123"})
    assert plan.locations["field"] == ["hf-hub:acme/field-v2"]  # explicit: trusted to exist
    assert plan.locations["gender"] == ["hf-hub:me/g@abc123"]
    assert "acme/field-v2" not in plan.pushes  # nothing local to push
    with pytest.raises(deploy.DeployError, match="--hub-org ORG"):
        deploy.plan_models(tiny_manifest, from_hub=True)
    with pytest.raises(deploy.DeployError, match="unknown task"):
        deploy.plan_models(tiny_manifest, from_hub=True, hub_ids={"height": "a/b"})
    matter = space_files.front_matter(tiny_manifest, plan)
    assert "me/g config.json,model.safetensors abc123" in matter["preload_from_hub"]
    assert "me/g" in matter["models"]


def test_requirements_are_pinned_runtime_packages_only(built):
    options, requirements = requirement_lines(built.folder / "requirements.txt")
    assert options == [f"--extra-index-url {space_files.CPU_TORCH_INDEX}"]  # cpu-basic: CPU wheels
    names = {canonicalize_name(r.name) for r in requirements}
    assert names == {canonicalize_name(n) for n in space_files.RUNTIME_PACKAGES}
    assert not names & {canonicalize_name(n) for n in DEV_PACKAGES}
    for requirement in requirements:
        (spec,) = requirement.specifier
        installed = Version(importlib.metadata.version(requirement.name)).public
        assert spec.operator == "==" and spec.version == installed, requirement
    facenet = next(r for r in requirements if r.name == "facenet-pytorch")
    assert next(iter(facenet.specifier)).version in SpecifierSet(">=2.5.3,<2.6")  # 2.6 pins torch 2.2


def test_requirements_install_everything_the_space_imports(built):
    _, requirements = requirement_lines(built.folder / "requirements.txt")
    installed = dependency_closure(r.name for r in requirements)
    modules_to_dists = importlib.metadata.packages_distributions()
    missing = {}
    for path in built.folder.rglob("*.py"):
        for top in top_level_imports(path.read_text(encoding="utf-8")):
            if top in sys.stdlib_module_names or top in ("hub", "spaces", "__future__"):
                continue  # `spaces` is preinstalled on ZeroGPU and imported only there
            if top == "finetune":  # ours: shipped (and its own imports checked here) when the Space may train,
                continue           # the only case in which hub/ui_train.py imports it
            dists = {canonicalize_name(d) for d in modules_to_dists.get(top, [top])}
            if not dists & installed:
                missing[top] = str(path.relative_to(built.folder))
    assert not missing, f"imported but not installed by requirements.txt: {missing}"


def test_gpu_hardware_gets_default_torch_wheels():
    lines = space_files.requirements_lines(cpu_only=False)
    assert not any(line.startswith("--") for line in lines)
    assert any(line.startswith("torch==") for line in lines)


def test_space_config_checked_before_anything_is_built(tiny_manifest):
    too_long = dataclasses.replace(tiny_manifest, space=dataclasses.replace(tiny_manifest.space,
                                                                            short_description="x" * 61))
    with pytest.raises(deploy.DeployError, match="space.short_description: 61 characters"):
        space_files.check_space_config(too_long)
    bad_color = dataclasses.replace(tiny_manifest, space=dataclasses.replace(tiny_manifest.space, color_to="teal"))
    with pytest.raises(deploy.DeployError, match="space.color_to"):
        space_files.check_space_config(bad_color)
    bad_hardware = dataclasses.replace(tiny_manifest, space=dataclasses.replace(tiny_manifest.space,
                                                                                suggested_hardware="gpu-big"))
    with pytest.raises(deploy.DeployError, match="suggested_hardware"):
        space_files.check_space_config(bad_hardware)
    space_files.check_space_config(read_manifest(PROJECT_ROOT / "spaces.yaml"))  # the project's own passes


def test_model_with_other_labels_is_refused(tiny_manifest):
    gender = dataclasses.replace(tiny_manifest.tasks["gender"], labels=("male", "female"))
    swapped = dataclasses.replace(tiny_manifest, tasks={**tiny_manifest.tasks, "gender": gender})
    with pytest.raises(deploy.DeployError, match="labels"):
        deploy.plan_models(swapped)


def test_out_folder_is_only_replaced_when_it_is_a_previous_build(tiny_manifest_path, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(deploy.DeployError, match="not empty"):
        deploy.build_space(SPACE_ID, foreign, manifest_path=tiny_manifest_path)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "out"
    deploy.build_space(SPACE_ID, out, manifest_path=tiny_manifest_path)
    (out / "stale.txt").write_text("old")
    deploy.build_space(SPACE_ID, out, manifest_path=tiny_manifest_path)
    assert not (out / "stale.txt").exists()


def test_cli_dry_run_says_what_it_skipped(tiny_manifest_path, tmp_path, capsys):
    code = deploy.main(["--space-id", SPACE_ID, "--dry-run", "--out", str(tmp_path / "out"),
                        "--manifest", str(tiny_manifest_path)])
    output = capsys.readouterr().out
    assert code == 0
    assert "skipped field: no model" in output
    assert f"https://huggingface.co/spaces/{SPACE_ID}" in output
    assert (tmp_path / "out" / "README.md").is_file()


# --- the upload ----------------------------------------------------------------------------------

class FakeHub(ThreadingHTTPServer):
    """Just enough of the Hub's HTTP API for create_repo + upload_folder; keeps what it receives."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _FakeHubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.repos: dict[str, dict] = {}       # "spaces/org/name" -> {"create": payload, "files": {path: bytes}}
        self.calls: list[tuple[str, str, str]] = []  # (method, path, authorization)


class _FakeHubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.server.calls.append(("GET", self.path, self.headers.get("authorization", "")))
        self._reply(404, {"error": "not emulated"})

    def do_POST(self):
        path = self.path.split("?")[0]
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.calls.append(("POST", path, self.headers.get("authorization", "")))
        if not self.headers.get("authorization", "").startswith("Bearer "):
            return self._reply(401, {"error": "Invalid credentials"})
        if path == "/api/repos/create":
            payload = json.loads(body)
            key = f"{payload.get('type', 'model')}s/{payload['organization']}/{payload['name']}"
            prefix = "" if key.startswith("models/") else key.split("/")[0] + "/"
            url = f"{self.server.url}/{prefix}{key.split('/', 1)[1]}"
            if key in self.server.repos:  # the Hub's conflict answer carries the url too (exist_ok reads it)
                return self._reply(409, {"error": "You already created this repo", "url": url})
            self.server.repos[key] = {"create": payload, "files": {}}
            return self._reply(200, {"url": url})
        if path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            match = re.match(r"---\n(.*?)\n---\n", content, re.S)
            errors = [] if match and isinstance(yaml.safe_load(match.group(1)), dict) else \
                [{"message": "no YAML front matter"}]
            return self._reply(400 if errors else 200, {"errors": errors, "warnings": []})
        match = re.fullmatch(r"/api/(models|spaces|datasets)/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path)
        if not match or f"{match[1]}/{match[2]}" not in self.server.repos:
            return self._reply(404, {"error": "Repository not found"})
        repo = self.server.repos[f"{match[1]}/{match[2]}"]
        if match[3] == "preupload":
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                "oid": None} for f in files]})
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] != "header":
                return self._reply(400, {"error": f"{item['key']} not emulated"})
        oid = hashlib.sha1(body).hexdigest()
        return self._reply(200, {"commitUrl": f"{self.server.url}/{match[1]}/{match[2]}/commit/{oid}",
                                 "commitOid": oid, "pullRequestUrl": None})


@pytest.fixture
def fake_hub(monkeypatch):
    from huggingface_hub import constants

    hub = FakeHub()
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    # the session runs offline (conftest); loopback is all this test talks to
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    yield hub
    hub.shutdown()
    hub.server_close()
    thread.join(timeout=5)


def test_upload_creates_gradio_space_and_commits_every_file(built, fake_hub):
    url = deploy.upload(built, token="hf_test", endpoint=fake_hub.url)
    assert url == f"{fake_hub.url}/spaces/{SPACE_ID}"
    space = fake_hub.repos[f"spaces/{SPACE_ID}"]
    assert space["create"] == {"name": "face-hub", "organization": "someone", "type": "space", "sdk": "gradio"}
    assert sorted(space["files"]) == built.files
    for name in built.files:
        assert space["files"][name] == (built.folder / name).read_bytes(), name
    assert all(auth == "Bearer hf_test" for method, path, auth in fake_hub.calls if method == "POST")
    # deploying again updates the same Space: create_repo answers 409 (exist_ok), a second commit lands
    assert deploy.upload(built, token="hf_test", endpoint=fake_hub.url) == url
    commits = [path for method, path, _ in fake_hub.calls if path.startswith(f"/api/spaces/{SPACE_ID}/commit/")]
    assert commits == [f"/api/spaces/{SPACE_ID}/commit/main"] * 2


def test_cli_deploy_pushes_models_then_space_and_prints_url(built_from_hub, tiny_manifest_path, tmp_path,
                                                            fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_cli")
    code = deploy.main(["--space-id", SPACE_ID, "--out", str(tmp_path / "out"), "--manifest", str(tiny_manifest_path),
                        "--models-from-hub", "--hub-org", "acme", "--push-models", "--private"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert f"Space: {fake_hub.url}/spaces/{SPACE_ID}" in output
    model = fake_hub.repos["models/acme/face-gender"]
    assert model["create"]["visibility"] == "private"
    assert set(model["files"]) == {"config.json", "model.safetensors"}
    assert json.loads(model["files"]["config.json"])["label_names"] == ["female", "male"]
    space = fake_hub.repos[f"spaces/{SPACE_ID}"]
    assert space["create"]["visibility"] == "private"
    assert not any(name.startswith("models/") for name in space["files"])
    assert b"hf-hub:acme/face-gender" in space["files"]["spaces.yaml"]


def test_no_token_is_a_clear_error(tiny_manifest_path, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    code = deploy.main(["--space-id", SPACE_ID, "--out", str(tmp_path / "out"), "--manifest", str(tiny_manifest_path)])
    error = capsys.readouterr().err
    assert code != 0
    assert "no Hugging Face token" in error and "hf auth login" in error and "HF_TOKEN" in error
    assert not (tmp_path / "out").exists()  # fails before building anything


def test_offline_mode_refuses_to_upload(built, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(deploy.DeployError, match="HF_HUB_OFFLINE"):
        deploy.upload(built, token="hf_test", endpoint="http://127.0.0.1:9")


def test_unreachable_hub_is_one_clear_error(built, monkeypatch):
    from huggingface_hub import constants

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    with pytest.raises(deploy.DeployError, match="upload to someone/face-hub failed .*the folder is built at"):
        deploy.upload(built, token="hf_test", endpoint=dead)


# --- the built app runs -------------------------------------------------------------------------

def test_built_space_app_answers_through_gradio_client(built):
    if not (PROJECT_ROOT / "app.py").is_file() or not (PROJECT_ROOT / "hub" / "ui.py").is_file():
        pytest.skip("app.py / hub/ui.py not written yet")
    from gradio_client import Client, handle_file

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HUB_MANIFEST")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(port), PYTHONDONTWRITEBYTECODE="1")
    app = subprocess.Popen([sys.executable, "app.py"], cwd=built.folder, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if app.poll() is not None:
                pytest.fail(f"app.py exited with {app.returncode}:\n{app.stdout.read()[-3000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail("app.py did not start listening within 180 s")
            time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert "/all" in endpoints and "/gender" in endpoints
        assert "/field" not in endpoints, "the Space's spaces.yaml dropped field: the app must read that one"
        _, result = client.predict(handle_file(str(built.folder / "examples" / "astronaut.jpg")), "", True,
                                   api_name="/all")
        assert result["faces"], result
        face = result["faces"][0]
        assert face["gender"]["label"] in ("female", "male", "uncertain")  # served by models/ of the Space
        assert face["age"]["years"] >= 0 and "mood" in face and not result["errors"]
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="set RUN_SLOW=1: resolves the pins on PyPI")
def test_requirements_resolve_on_pypi(built, tmp_path):
    # The CPU torch index is out of reach from here; the same versions are on PyPI.
    lines = [l for l in (built.folder / "requirements.txt").read_text().splitlines() if not l.startswith("--")]
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                             "--quiet", "-r", str(tmp_path / "requirements.txt")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


# --- Space / ZeroGPU detection ------------------------------------------------------------------

def test_runtime_detection_off_space(monkeypatch):
    import hub.spaces_runtime as runtime

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    runtime = importlib.reload(runtime)
    assert not runtime.on_space() and not runtime.on_zero_gpu()

    def infer(x):
        return x + 1

    assert runtime.gpu_decorator(infer) is infer
    assert runtime.gpu_decorator(duration=30)(infer) is infer
    monkeypatch.setenv("SPACE_ID", SPACE_ID)
    assert runtime.on_space()


def test_zero_gpu_uses_spaces_gpu(monkeypatch):
    import hub.spaces_runtime as runtime

    fake_spaces = types.ModuleType("spaces")
    fake_spaces.GPU = lambda func=None, **options: ("wrapped", func)
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    try:
        runtime = importlib.reload(runtime)
        assert runtime.on_zero_gpu()
        assert runtime.gpu_decorator(len) == ("wrapped", len)
        monkeypatch.setitem(sys.modules, "spaces", None)  # ZeroGPU flag but no package: stay usable
        assert importlib.reload(runtime).gpu_decorator(len) is len
    finally:
        monkeypatch.delenv("SPACES_ZERO_GPU")
        monkeypatch.delitem(sys.modules, "spaces", raising=False)
        importlib.reload(runtime)
