"""Security (issue 14), through Gradio's plain HTTP API as any script could call it: a photo is
taken only as an upload this server received, a photo it holds, a shipped example or a URL through
hub.fetch. Paths to anything else (absolute, relative, `../`, Gradio's temp folder, models/, a
symlink, a folder, a missing file), with or without Gradio's file marker, get one and the same
message; nothing is read, fetched or deleted, and the log quotes none of them. Huge photos are
reduced or refused without the server's memory growing; a restart clears uploads left behind;
slow URLs do not hold the analysis."""
import base64
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from conftest import raw_call, raw_upload, serve_photo, served_app
from hub.ui import CONCURRENCY, FETCH_SLOTS
from hub import uploads
from hub.upload_folder import FOLDER_PREFIX
from hub.uploads import SWEEP_SECONDS, UNAVAILABLE
from conftest import free_port
from test_app import ENDPOINTS, call

ROOT = Path(__file__).resolve().parents[1]
MAX_AGE = uploads.UPLOAD_MAX_AGE
MARKED = {"_type": "gradio.FileData"}  # Gradio's file marker: with it, Gradio checks the path itself


@pytest.fixture(scope="module")
def app(tiny_manifest, tmp_path_factory):
    """The app, its Gradio temp folder (GRADIO_TEMP_DIR, as another Gradio app would share it)
    and its own upload folder inside."""
    from gradio_client import Client

    base = tmp_path_factory.mktemp("gradio_temp")
    with pytest.MonkeyPatch.context() as patch:
        # the sweep would delete the canary planted in the app's folder (it empties that folder, by
        # design): here only what requests do is watched
        patch.setattr(uploads, "UPLOAD_MAX_AGE", 3600)
        with served_app(tiny_manifest, base) as (demo, url):
            folder = Path(os.environ["GRADIO_TEMP_DIR"])  # the app's own folder, set while it was built
            yield demo, url, base, folder, Client(url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def canaries(app, astronaut, tmp_path_factory) -> dict[str, Path]:
    """Files an attacker would like read or deleted: real images, so a read would show."""
    _, _, base, folder, _ = app
    outside = tmp_path_factory.mktemp("server_files")
    files = {"secret": outside / "secret.png", "notes": outside / "notes.txt",
             "other_app": base / "f00d" / "other_app.png",     # another Gradio app's cache
             "planted": folder / "beef" / "planted.png"}       # in the app's folder, never uploaded
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
        astronaut.save(path, format="PNG") if path.suffix == ".png" else path.write_text("password=1234")
    link = folder / "feed" / "link.png"
    link.parent.mkdir()
    link.symlink_to(files["secret"])
    files["link"] = link
    return files


def refusal(answer: tuple[str, object]) -> str:
    """The reason the app gives for not answering: a request it receives gets it in the result's
    `error` (shown where the answer would be), with no photo."""
    event, outputs = answer
    assert event == "complete" and outputs[0] is None, answer
    return outputs[1]["error"]


def hostile_paths(canaries: dict[str, Path]) -> list[str]:
    secret = canaries["secret"]
    return [str(secret), os.path.relpath(secret), f"{secret.parent}/../{secret.parent.name}/{secret.name}",
            "models/age/age_scatter.png", "examples/astronaut.jpg", "hub/ui.py", "/etc/passwd",
            str(canaries["notes"]), str(secret.parent), str(secret.parent / "missing.png"),
            str(canaries["other_app"]), str(canaries["planted"]), str(canaries["link"]),
            str(canaries["planted"].parent.parent / ".." / canaries["other_app"].parent.name / "other_app.png")]


def contents(canaries: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in canaries.items()}


@pytest.mark.parametrize("api", ENDPOINTS)
def test_paths_not_uploaded_here_get_one_message_and_nothing_is_read_or_deleted(app, canaries, api, capfd):
    _, url, _, folder, _ = app
    assert Path("models/age/age_scatter.png").is_file() and Path("examples/astronaut.jpg").is_file()
    before, tree = contents(canaries), sorted(folder.rglob("*"))
    payloads = [shape for path in hostile_paths(canaries) for shape in
                ({"path": path}, {"path": path, "meta": MARKED}, {"path": path, "orig_name": "x.png"})]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda payload: raw_call(url, api, [payload, "", False]), payloads))
    assert all(event == "error" for event, _ in answers), answers  # no picture comes back
    assert {message for _, message in answers} == {UNAVAILABLE}  # one message: it tells nothing about what exists on the server
    assert contents(canaries) == before and sorted(folder.rglob("*")) == tree  # nothing deleted
    log = "".join(capfd.readouterr())
    assert "Traceback" not in log and "server_files" not in log and "f00d" not in log, log[-2000:]


def test_the_video_endpoint_gets_the_same_check(app, canaries, tmp_path):
    """A video input is a file argument too: a plain-dict path to a server file (a video or anything else)
    is refused with the same message, and nothing is read or deleted."""
    _, url, _, folder, _ = app
    secret_clip = tmp_path / "secret.mp4"
    secret_clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    before, tree = contents(canaries), sorted(folder.rglob("*"))
    paths = [*hostile_paths(canaries), str(secret_clip)]
    answers = [raw_call(url, "video", [{"path": path, "meta": MARKED} if i % 2 else {"path": path}, ""])
               for i, path in enumerate(paths)]
    assert all(event == "error" for event, _ in answers), answers
    assert {message for _, message in answers} == {UNAVAILABLE}
    assert contents(canaries) == before and sorted(folder.rglob("*")) == tree and secret_clip.is_file()


def test_other_shapes_of_photo_are_refused_and_nothing_is_fetched(app, astronaut, tmp_path):
    _, url, _, folder, _ = app
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    astronaut.save(tmp_path / "face.png")
    inline = "data:image/png;base64," + base64.b64encode((tmp_path / "face.png").read_bytes()).decode()
    tree = sorted(folder.rglob("*"))
    try:
        for payload in ({"path": f"http://127.0.0.1:{server.server_address[1]}/face.png", "meta": MARKED},
                        {"url": inline, "meta": MARKED}, {"url": inline}, "hub/ui.py", ["/etc/passwd"], {},
                        {"path": "x" * 10_000}, {"path": "/etc/passwd\0.png"}):
            assert raw_call(url, "all", [payload, "", False]) == ("error", UNAVAILABLE), payload
    finally:
        server.shutdown()
        server.server_close()
    assert requests == [] and sorted(folder.rglob("*")) == tree  # nothing fetched, nothing written


def test_the_same_photo_from_four_users_at_once_never_fails(app, photo_640):
    from gradio_client import Client

    _, url, _, folder, _ = app
    clients = [Client(url, verbose=False, download_files=False) for _ in range(4)]

    def three_calls(client) -> list[int]:
        return [len(call(client, "all", photo_640)[1]["faces"]) for _ in range(3)]

    with ThreadPoolExecutor(4) as pool:  # identical uploads share one path on the server
        assert list(pool.map(three_calls, clients)) == [[1, 1, 1]] * 4
    assert not [p for p in folder.rglob("*.jpg") if "one_face" in p.name]  # and none is left


def test_uploads_never_analysed_are_swept_and_the_sweep_is_frequent(app, photo_640):
    demo, url, _, folder, _ = app
    keeper = demo.photos
    upload = Path(raw_upload(url, photo_640)["path"])
    examples = sorted(folder.glob("*/*.jpg"))
    assert upload.is_file() and upload.parent.parent == folder
    keeper.sweep()  # too young to go
    assert upload.is_file()
    old = time.time() - uploads.UPLOAD_MAX_AGE - 1
    os.utime(upload, (old, old))
    keeper.sweep()
    assert not upload.exists() and not upload.parent.exists()  # with its hash-named folder
    assert str(upload) not in demo.upload_file_set
    empty, fresh = folder / "0ld", folder / "n3w"  # as Gradio's sweep would leave them; just made
    empty.mkdir(), fresh.mkdir()
    os.utime(empty, (old, old))
    keeper.sweep()
    assert not empty.exists() and fresh.exists()  # an upload may be about to land in a new one
    assert all(path.is_file() for path in examples if path != upload)  # the examples stay
    assert SWEEP_SECONDS <= 30 and MAX_AGE <= 120  # minutes at most, not Gradio's 5-9


@pytest.fixture(scope="module")
def photo_640(astronaut, tmp_path_factory) -> Path:
    canvas = Image.new("RGB", (640, 480), (40, 40, 60))
    canvas.paste(astronaut.resize((480, 480)), (80, 0))
    path = tmp_path_factory.mktemp("dup") / "one_face.jpg"
    canvas.save(path, quality=90)
    return path


def test_slow_urls_hold_no_analysis_slot(app, photo_640, monkeypatch):
    """FETCH_SLOTS URLs that never answer, one more URL, and a photo: the photo is analysed while
    the URLs still hang, and the extra URL is told at once to come back later."""
    _, url, _, _, client = app
    release, hanging = threading.Event(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hanging.append(self.path)
            release.wait(20)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HUB_URL_ALLOW_HOSTS", "127.0.0.1")
    slow = f"http://127.0.0.1:{server.server_address[1]}/slow.jpg"
    try:
        with ThreadPoolExecutor(FETCH_SLOTS) as pool:
            waiting = [pool.submit(raw_call, url, "age", [None, slow, False]) for _ in range(FETCH_SLOTS)]
            deadline = time.monotonic() + 60
            while len(hanging) < FETCH_SLOTS and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(hanging) == FETCH_SLOTS
            assert "being fetched right now" in refusal(raw_call(url, "gender", [None, slow + "?more", False]))
            _, result = call(client, "all", photo_640)
            assert len(result["faces"]) == 1 and not any(f.done() for f in waiting)  # the URLs still hang
            release.set()
            assert all("the server answered 404" in refusal(f.result()) for f in waiting)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert CONCURRENCY >= 1


# --- the app in its own process: restarts, memory and the log ----------------------------------

SERVE = ("import sys; from hub.ui import build_demo, launch; "
         "launch(build_demo(), server_name='127.0.0.1', server_port=int(sys.argv[1]), quiet=True)")


def start_app(tiny_manifest_path: Path, base: Path, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(base), HUB_MANIFEST=str(tiny_manifest_path), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONWARNINGS="default", PYTHONUNBUFFERED="1",
               HUB_URL_ALLOW_HOSTS="127.0.0.1")
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=ROOT, env=env,
                              stdout=log.open("a"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            httpx.get(url + "config", timeout=5).raise_for_status()
            return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    pytest.fail("the app did not start")


def stop(server: subprocess.Popen, how=signal.SIGTERM) -> None:
    if server.poll() is None:
        server.send_signal(how)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def restarted(tiny_manifest_path, photo_640, tmp_path_factory):
    """The app in its own process: started, sent an upload it never analyses, killed (a crash: no
    clean-up runs), and started again on the same GRADIO_TEMP_DIR."""
    from types import SimpleNamespace

    work = tmp_path_factory.mktemp("restarted")
    base, log = work / "gradio_temp", work / "app.log"
    server, url = start_app(tiny_manifest_path, base, log)
    leftover = Path(raw_upload(url, photo_640)["path"])
    stop(server, signal.SIGKILL)
    assert leftover.is_file()
    server, url = start_app(tiny_manifest_path, base, log)
    try:
        yield SimpleNamespace(server=server, url=url, base=base, log=log, leftover=leftover, work=work)
    finally:
        stop(server)


def test_a_restart_clears_uploads_left_behind(restarted, photo_640):
    assert not restarted.leftover.exists() and not restarted.leftover.parent.parent.exists()
    [folder] = restarted.base.glob(FOLDER_PREFIX + "*")  # only the running app's
    upload = Path(raw_upload(restarted.url, photo_640)["path"])
    assert upload.is_file() and upload.is_relative_to(folder)


def one_bit_png(width: int, height: int) -> bytes:
    """A black-and-white PNG, quick to write at any size (1 bit a pixel, all white)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def corrupt_exif_jpeg(photo: Image.Image) -> bytes:
    """A JPEG whose EXIF claims 100 kB of text it does not have (Pillow warns when it reads it)."""
    import io

    exif = Image.Exif()
    exif[0x010E] = "x" * 100
    raw = bytearray(exif.tobytes())
    at = raw.find(b"\x01\x0e\x00\x02")
    raw[at + 4: at + 8] = (100_000).to_bytes(4, "big")
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=bytes(raw))
    return buffer.getvalue()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from /proc (Linux)")
def test_huge_photos_are_refused_or_reduced_and_the_memory_stays_flat(restarted, astronaut, photo_640, tmp_path,
                                                                      record_property):
    url, server = restarted.url, restarted.server
    png = tmp_path / "bomb.png"  # 13000 x 13000: 40 kB on disk, 169 Mpx (680 MB once in RGB)
    png.write_bytes(one_bit_png(13_000, 13_000))
    jpeg = tmp_path / "forty.jpg"  # 40 Mpx, 2 MB
    astronaut.resize((7746, 5164), Image.Resampling.BICUBIC).save(jpeg, quality=85)
    assert raw_call(url, "all", [raw_upload(url, photo_640), "", False])[0] == "complete"  # warm
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # the peak starts again from now
    start = peak_rss_mb(server.pid)
    with serve_photo(png.read_bytes(), "bomb.png") as png_url, serve_photo(jpeg.read_bytes()) as jpeg_url:
        for photo, link in ((raw_upload(url, png), ""), (None, png_url)):  # uploaded, then by URL
            assert "too large to analyse" in refusal(raw_call(url, "all", [photo, link, False]))
        for photo, link in ((raw_upload(url, jpeg), ""), (None, jpeg_url)):
            event, outputs = raw_call(url, "gender", [photo, link, False])
            assert event == "complete" and outputs[1]["original_size"] == [7746, 5164]
            assert "was reduced to" in outputs[1]["message"]
    growth = peak_rss_mb(server.pid) - start
    record_property("peak_rss_growth_mb", round(growth))
    print(f"\npeak RSS growth for a 13000x13000 PNG and a 40 Mpx JPEG, each uploaded and by URL: {growth:.0f} MB")
    assert growth < 300


def test_the_log_says_nothing_about_photos_or_paths(restarted, astronaut, tmp_path):
    url = restarted.url
    odd = tmp_path / "odd_exif.jpg"
    odd.write_bytes(corrupt_exif_jpeg(astronaut))
    png = tmp_path / "bomb.png"
    png.write_bytes(one_bit_png(13_000, 13_000))
    assert raw_call(url, "mood", [raw_upload(url, odd), "", False])[0] == "complete"
    assert "too large to analyse" in refusal(raw_call(url, "mood", [raw_upload(url, png), "", False]))
    for path in ("/etc/passwd", f"{tmp_path}/secret.png", "../../secret.png", "models/age/age_scatter.png"):
        for payload in ({"path": path}, {"path": path, "meta": MARKED}):
            assert raw_call(url, "age", [payload, "", False]) == ("error", UNAVAILABLE)
    time.sleep(1)
    text = restarted.log.read_text()
    for sign in ("pixels", "DecompressionBomb", "EXIF", "Truncated", "Traceback", "secret", "passwd",
                 "age_scatter", str(tmp_path)):
        assert sign not in text, (sign, text[-3000:])


def test_a_stop_takes_the_apps_folder_with_it(restarted):  # last: it stops the app
    [folder] = restarted.base.glob(FOLDER_PREFIX + "*")
    stop(restarted.server)  # what a Space or systemd sends: SIGTERM
    assert restarted.server.returncode == 0 and not folder.exists()
