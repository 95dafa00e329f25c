"""Load test: N concurrent gradio_client clients, each sending M photos to one endpoint.

    python -m benchmarks.load --clients 8 --requests 50          # launches the app itself
    python -m benchmarks.load --tiny --clients 8 --requests 50   # ... serving tiny random models
    python -m benchmarks.load --url http://127.0.0.1:7860/ [--pid PID]
    python -m benchmarks.load --tiny --clients 4 --requests 25 --same-photo   # duplicates (issue 14)

Each client sends its own 640x480 photo with one face (the astronaut; one pixel differs per
client, so no two clients upload the same file); with --same-photo they all send the same file,
which the server stores under one path (Gradio names uploads by content). Prints throughput, p50/p95 latency, the errors,
which tasks answered, and the server's resident memory (peak, and after each quarter of the
requests, to see that it stays flat); when it launches the app, also the files left in the
app's upload cache afterwards (only the cached examples should remain).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SERVE = ("import sys; from hub.ui import build_demo, launch; "
         "launch(build_demo(), server_name='127.0.0.1', server_port=int(sys.argv[1]), quiet=True)")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """The server's RSS every `every` seconds; `peak` and `last` in MB."""

    def __init__(self, pid: int | None, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = self.last = None
        self._stop = threading.Event()

    def run(self):
        while self.pid and not self._stop.is_set():
            value = rss_mb(self.pid)
            if value is not None:
                self.last = value
                self.peak = value if self.peak is None else max(self.peak, value)
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()


def write_tiny_manifest(folder: Path) -> Path:
    """spaces.yaml with tiny random `test_vit` models for gender, age and mood (as the tests use)."""
    import timm
    import torch
    import yaml

    from hub.config import DEFAULT_MANIFEST
    from hub.models import save_checkpoint

    raw = yaml.safe_load(DEFAULT_MANIFEST.read_text())
    for name, task in raw["tasks"].items():
        task.update(input_size=32, backbone="test_vit")
        if name == "field":
            task["models"] = [str(folder / "missing")]
            continue
        regression = task["kind"] == "regression"
        torch.manual_seed(0)
        net = timm.create_model("test_vit", pretrained=False, img_size=32,
                                num_classes=1 if regression else len(task["labels"]))
        extra = {"task": task["kind"]}
        if regression:
            extra["age_interval"] = {"low": -4.0, "high": 6.0, "coverage": 0.8}
        save_checkpoint(net, folder / name, labels=task["labels"], input_size=32, extra=extra)
        task["models"] = [str(folder / name)]
    path = folder / "spaces.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def one_face_photos(count: int, folder: Path, same: bool = False) -> list[Path]:
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((480, 480))
    paths = []
    for i in range(count):
        if same and paths:
            paths.append(paths[0])
            continue
        canvas = Image.new("RGB", (640, 480), (40, 40, 60))
        canvas.paste(face, (80, 0))
        canvas.putpixel((i % 640, 0), (255, 255, 255))  # a different file (and hash) per client
        path = folder / f"client{i}.jpg"
        canvas.save(path, quality=90)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the app did not answer at {url} within {timeout:.0f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running app; default: launch one on a free port")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, for its memory")
    parser.add_argument("--manifest", help="spaces.yaml for the launched app (default: $HUB_MANIFEST or the project's)")
    parser.add_argument("--tiny", action="store_true", help="launch with tiny random models (no trained ones needed)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--api", default="all", help="endpoint name (default: all)")
    parser.add_argument("--same-photo", action="store_true", help="every client sends the same photo")
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="hub-load-"))
    server = None
    cache = work / "gradio_cache"
    pid = args.pid
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            env = dict(os.environ, GRADIO_TEMP_DIR=str(cache), GRADIO_ANALYTICS_ENABLED="False",
                       HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
            if args.tiny:
                env["HUB_MANIFEST"] = str(write_tiny_manifest(work / "tiny"))
            elif args.manifest:
                env["HUB_MANIFEST"] = str(Path(args.manifest).resolve())
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=ROOT, env=env)
            pid = server.pid
            print(f"launching the app (manifest: {env.get('HUB_MANIFEST', 'spaces.yaml')}) ...", flush=True)
            wait_until_up(url, server)
        photos = one_face_photos(args.clients, work, same=args.same_photo)
        clients = [Client(url, verbose=False, download_files=False) for _ in range(args.clients)]

        _, first = clients[0].predict(handle_file(str(photos[0])), "", False, api_name=f"/{args.api}")  # warm-up
        answered = sorted(set(first["faces"][0]) - {"index", "box", "score"}) if first["faces"] else []
        cache_before = {str(p) for p in cache.rglob("*")} if server else set()

        sampler = MemorySampler(pid)
        sampler.start()
        time.sleep(0.5)
        start_rss = rss_mb(pid) if pid else None
        total = args.clients * args.requests
        latencies: list[float] = []
        errors: list[str] = []
        quarters: dict[int, float | None] = {}
        lock = threading.Lock()

        def work_for(client: Client, photo: Path) -> None:
            for _ in range(args.requests):
                began = time.perf_counter()
                try:
                    _, result = client.predict(handle_file(str(photo)), "", False, api_name=f"/{args.api}")
                    ok = len(result["faces"]) == 1
                    problem = None if ok else f"expected one face, got {len(result['faces'])}"
                except Exception as err:  # noqa: BLE001 - counted and reported
                    problem = f"{type(err).__name__}: {err}"
                with lock:
                    (errors.append(problem) if problem else latencies.append(time.perf_counter() - began))
                    done = len(latencies) + len(errors)
                    if pid and done % max(1, total // 4) == 0:
                        quarters[done] = rss_mb(pid)

        began = time.perf_counter()
        threads = [threading.Thread(target=work_for, args=(c, p)) for c, p in zip(clients, photos)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        sampler.stop()

        print(f"\nendpoint /{args.api} at {url}: {args.clients} clients x {args.requests} requests, "
              f"640x480 photo with one face, {'the same photo for all' if args.same_photo else 'one per client'}")
        print(f"tasks answered: {', '.join(answered) or 'none'}"
              + (f"; without a model: {', '.join(sorted(first['errors']))}" if first.get("errors") else ""))
        print(f"wall time     : {wall:.1f} s")
        print(f"throughput    : {len(latencies) / wall:.2f} requests/s")
        if latencies:
            print(f"latency       : p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
                  f"max {max(latencies):.2f} s, mean {statistics.mean(latencies):.2f} s")
        print(f"errors        : {len(errors)} of {total}")
        for text in sorted(set(errors))[:5]:
            print(f"  {errors.count(text)} x {text[:300]}")
        if pid:
            steps = ", ".join(f"{n}: {mb:.0f}" for n, mb in sorted(quarters.items()) if mb is not None)
            print(f"server RSS MB : after warm-up {start_rss:.0f}, after requests {{{steps}}}, "
                  f"peak {sampler.peak:.0f}")
        else:
            print("server RSS    : unknown (pass --pid with --url)")
        if server:
            left = sorted({str(p) for p in cache.rglob("*") if p.is_file()} - cache_before)
            print(f"upload cache  : {len(left)} new files left after the run"
                  + (f" (e.g. {left[0]})" if left else ""))
        return 1 if errors else 0
    finally:
        if server and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
