"""Shared fixtures: tiny randomly initialised timm models in the project's checkpoint format,
and a manifest that points at them, so no test needs the network or ../shared."""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import yaml

from hub.config import DEFAULT_MANIFEST, read_manifest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_SIZE = 32


def write_tiny_model(folder: Path, labels: list[str], regression: bool = False, seed: int = 0) -> Path:
    """A `test_vit` (a few k parameters) saved like every model of the project."""
    import timm
    import torch

    from hub.models import save_checkpoint

    torch.manual_seed(seed)
    net = timm.create_model("test_vit", pretrained=False, num_classes=1 if regression else len(labels),
                            img_size=TINY_SIZE)
    extra = {"task": "regression" if regression else "classification"}
    if regression:
        extra["age_interval"] = {"low": -4.0, "high": 6.0, "coverage": 0.8}
    return save_checkpoint(net, folder, labels=labels, input_size=TINY_SIZE, extra=extra)


@pytest.fixture(scope="session")
def tiny_manifest_path(tmp_path_factory) -> Path:
    """spaces.yaml with gender, age and mood served by tiny models; field left without one (it is the task
    that "Train your own" fills, on a tiny backbone)."""
    root = tmp_path_factory.mktemp("manifest")
    raw = yaml.safe_load(DEFAULT_MANIFEST.read_text())
    for name, task in raw["tasks"].items():
        task["input_size"] = TINY_SIZE
        task["backbone"] = "test_vit"
        if name == "field":
            task["models"] = [str(root / "missing" / name)]
            continue
        regression = task["kind"] == "regression"
        write_tiny_model(root / "models" / name, task["labels"], regression=regression)
        task["models"] = [f"models/{name}"]
    # "Train your own": a tiny feature extractor in place of the face backbone, a small zip limit
    write_tiny_model(root / "models" / "face-backbone", [])
    raw["train_your_own"].update(backbone="models/face-backbone", input_size=TINY_SIZE, max_zip_mb=12)
    path = root / "spaces.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.fixture(scope="session")
def tiny_manifest(tiny_manifest_path):
    return read_manifest(tiny_manifest_path)


@pytest.fixture(scope="session")
def astronaut():
    """A real public-domain photo with one face (NASA), shipped by scikit-image."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.astronaut())


def top_level_imports(source: str) -> set[str]:
    """The top-level modules a Python source imports (absolute imports only)."""
    import ast
    import warnings

    with warnings.catch_warnings():  # a file's own escape-sequence warnings are not the caller's
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def needs_shared_data(subfolder: str):
    path = SHARED_DATA / subfolder
    return pytest.mark.skipif(not path.is_dir(), reason=f"training data not found at {path} (CI has it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_app(manifest, gradio_temp: Path):
    """The app built from `manifest`, listening on a free loopback port, with Gradio's temp folder at
    `gradio_temp` (set while it is built, so its upload folder goes there); yields (demo, url)."""
    from hub.ui import build_demo, launch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(gradio_temp))
        demo = build_demo(manifest)
        _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
        try:
            yield demo, url
        finally:
            demo.close()


@contextmanager
def serve_photo(body: bytes, name: str = "face.jpg"):
    """A plain HTTP server on 127.0.0.1 answering every GET with `body`; yields the photo's URL."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{name}"
    finally:
        server.shutdown()
        server.server_close()


def raw_call(base_url: str, api: str, data: list, session_hash: str | None = None,
             timeout: float = 120) -> tuple[str, object]:
    """One call through Gradio's plain HTTP API (POST /gradio_api/call/<api>, then GET its event
    stream), as any script could make it. Returns ("complete", outputs) or ("error", message)."""
    import json

    import httpx

    base = base_url.rstrip("/")
    body = {"data": data} if session_hash is None else {"data": data, "session_hash": session_hash}
    posted = httpx.post(f"{base}/gradio_api/call/{api}", json=body, timeout=timeout)
    posted.raise_for_status()
    event, payload = None, None
    with httpx.stream("GET", f"{base}/gradio_api/call/{api}/{posted.json()['event_id']}",
                      timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line.split(":", 1)[1])
    if event == "error" and isinstance(payload, dict):
        payload = payload.get("error")
    return event, payload


def raw_upload(base_url: str, path: Path) -> dict:
    """Upload a file the way the page does; the FileData dict a request then names it by."""
    import httpx

    with open(path, "rb") as handle:
        answer = httpx.post(f"{base_url.rstrip('/')}/gradio_api/upload",
                            files={"files": (path.name, handle, "application/octet-stream")}, timeout=60)
    answer.raise_for_status()
    [server_path] = answer.json()
    return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
