"""Bad and odd images, through the Predictor and through the running app (gradio_client on
loopback): each gets a clear answer, huge ones are refused or reduced before any model runs, and
the server goes on serving. Also: image URLs in the app, and model folders the app must refuse."""
import io
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import write_tiny_model
from hub.decode import WORK_SIDE, BadImage
from hub.predict import NOT_A_FACE_MESSAGE, Predictor, no_face_message
from hub.ui import WHOLE_IMAGE_OPTION, build_demo, launch
from conftest import serve_photo
from conftest import free_port
from test_app import call

ROOT = Path(__file__).resolve().parents[1]
FACE = (150, 20, 310, 220)  # the astronaut's face with a little margin (512x512 photo)


# --- the files ----------------------------------------------------------------------------------

def png_of_one_colour(width: int, height: int, rows: int | None = None, colour=(200, 60, 40)) -> bytes:
    """An 8-bit RGB PNG written row by row, never whole in memory. With `rows` below `height` the
    data stops early: the header alone claims the size (enough for a check made at open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(colour) * width
    packer = zlib.compressobj(1)
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def crowd(astronaut: Image.Image, count: int = 30) -> Image.Image:
    """`count` faces, face k at x = 20 + 50k on one of five rows, so left-to-right order is k."""
    face = astronaut.crop(FACE).resize((80, 100))
    canvas = Image.new("RGB", (20 + 50 * (count - 1) + 80 + 20, 20 + 110 * 4 + 100 + 20), (235, 235, 235))
    for k in range(count):
        canvas.paste(ImageOps.mirror(face) if k % 2 else face, (20 + 50 * k, 20 + 110 * (k % 5)))
    return canvas


@pytest.fixture(scope="module")
def files(astronaut, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_input")
    upright = astronaut.crop((0, 0, 512, 420))  # not square, so a rotation shows in the size
    whole = io.BytesIO()
    astronaut.save(whole, format="JPEG", quality=90)
    grey = Image.fromarray(np.asarray(ImageOps.grayscale(astronaut)).astype(np.uint16) * 257)
    gif = io.BytesIO()
    astronaut.quantize(colors=128).save(gif, format="GIF", save_all=True, duration=100, loop=0,
                                        append_images=[Image.new("P", astronaut.size, 0)])
    cmyk, crowd_jpeg = io.BytesIO(), io.BytesIO()
    astronaut.convert("CMYK").save(cmyk, format="JPEG", quality=90)
    crowd(astronaut).save(crowd_jpeg, format="JPEG", quality=90)
    contents = {
        "empty.jpg": b"",
        "truncated.jpg": whole.getvalue()[: len(whole.getvalue()) // 2],
        "notes.jpg": b"Dear diary, this is not a photo.\n",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
                       b'<circle cx="20" cy="20" r="15" fill="red"/></svg>',
        "animated.gif": gif.getvalue(),
        "pixel.png": b"",  # written below
        "huge.png": png_of_one_colour(20_000, 20_000, rows=4),  # 400 Mpx claimed, refused at open
        "bomb.png": png_of_one_colour(10_000, 10_000),  # 1.4 MB that decodes to 100 Mpx
        "largest.png": png_of_one_colour(4898, 4898),  # 24.0 Mpx: the largest decoded in full
        "sixteen.png": b"",
        "cmyk.jpg": cmyk.getvalue(),
        "turned.jpg": jpeg_with_orientation(upright.rotate(90, expand=True), 6),  # shown upright
        "orientation9.jpg": jpeg_with_orientation(upright, 9),
        "crowd.jpg": crowd_jpeg.getvalue(),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    Image.new("RGB", (1, 1), (90, 90, 90)).save(folder / "pixel.png")
    grey.save(folder / "sixteen.png")
    with Image.open(folder / "sixteen.png") as check:
        assert check.mode.startswith("I;16")
    big = Image.new("RGB", (12_000, 9_000), (90, 120, 150))  # 108 Mpx: over Pillow's warning
    big.paste(astronaut.resize((2048, 2048)), (5000, 3500))
    exif = Image.Exif()
    exif[0x0112] = 6
    big.save(folder / "big.jpg", quality=80, exif=exif)
    return {path.name: path for path in folder.iterdir()}


@pytest.fixture(scope="module")
def predictor(tiny_manifest):
    return Predictor(tiny_manifest)


REFUSED = [
    ("empty.jpg", "The file is empty."),
    ("truncated.jpg", "not an image we can read"),
    ("notes.jpg", "not an image we can read"),
    ("drawing.svg", "not an image we can read"),
    ("huge.png", "too large"),
]


# --- through the Predictor ---------------------------------------------------------------------

@pytest.mark.parametrize("name, message", REFUSED)
def test_predictor_refuses_with_a_clear_message(predictor, files, name, message):
    with pytest.raises(BadImage, match=message):
        predictor.analyze(files[name])


@pytest.mark.parametrize("name, size", [
    ("animated.gif", (512, 512)),    # the first frame: the astronaut
    ("sixteen.png", (512, 512)),     # 16-bit grey, scaled to 8 bits
    ("cmyk.jpg", (512, 512)),
    ("turned.jpg", (512, 420)),      # stored sideways with orientation 6: turned upright
    ("orientation9.jpg", (512, 420)),  # an invalid orientation is ignored
])
def test_odd_but_valid_photos_find_the_face(predictor, files, name, size):
    analysis = predictor.analyze(files[name])
    assert analysis.image.size == size and analysis.image.mode == "RGB"
    [face] = analysis.faces
    x1, y1, x2, y2 = face.box
    assert 150 < (x1 + x2) / 2 < 300 and 40 < (y1 + y2) / 2 < 220, face.box  # where the face is upright
    assert set(analysis.predictions) == {"gender", "age", "mood"}


def test_one_pixel_has_no_face_even_as_a_whole_image(predictor, files):
    analysis = predictor.analyze(files["pixel.png"])
    assert analysis.faces == [] and analysis.message() == no_face_message()
    analysis = predictor.analyze(files["pixel.png"], whole_image_if_no_face=True)
    assert analysis.faces == [] and analysis.predictions == {} and analysis.message() == NOT_A_FACE_MESSAGE


@pytest.mark.parametrize("name", [name for name, _ in REFUSED])
def test_refusals_are_plain_words(predictor, files, name):
    """No exception class names (UnidentifiedImageError...) in what the user reads."""
    with pytest.raises(BadImage) as refused:
        predictor.analyze(files[name])
    assert not re.search(r"[A-Z]\w+(Error|Exception)|\(\w+\)", str(refused.value)), str(refused.value)


def test_thirty_faces_are_all_found_and_numbered_left_to_right(predictor, files, record_property):
    start = time.perf_counter()
    analysis = predictor.analyze(files["crowd.jpg"])
    seconds = time.perf_counter() - start
    record_property("thirty_faces_seconds", round(seconds, 2))
    print(f"\n30 faces: detection + 3 tiny models in {seconds:.2f} s")
    assert [face.index for face in analysis.faces] == list(range(1, 31))
    for k, face in enumerate(analysis.faces):  # face k was pasted at x = 20 + 50k, 80 wide
        centre = (face.box[0] + face.box[2]) / 2
        assert 20 + 50 * k < centre < 20 + 50 * k + 80, (k, face.box)
    assert all(len(predictions) == 30 for predictions in analysis.predictions.values())


MEASURE = r"""
import json, re, sys, warnings
warnings.simplefilter("ignore")
from hub.decode import BadImage, load_image
try:
    size = list(load_image(sys.argv[1]).size)
except BadImage as err:
    size = str(err)
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, from before exec)
peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"size": size, "peak_mb": peak_kb / 1024}))
"""


def peak_memory_of_loading(path: Path) -> dict:
    """Load in a fresh interpreter and report its peak RSS (the interpreter alone is ~60 MB)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("name, size, peak_mb", [
    # 400 Mpx (1.6 GB decoded) claimed by the header: refused by Pillow before decoding
    ("huge.png", "too large", 100),
    # 100 Mpx PNG (a PNG cannot be decoded smaller): refused from its header, over MAX_PIXELS
    # (before: ~810 MB, then ~500 MB when reduced right after decoding)
    ("bomb.png", "too large", 100),
    # 108 Mpx JPEG: decoded at 1/4 scale by draft() (1/2 would be over MAX_PIXELS); orientation 6
    # kept (before: ~880 MB)
    ("big.jpg", [2250, 3000], 150),
    # the worst case: decoded in full (96 MB), then reduced (Pillow's two passes: ~150 MB more)
    ("largest.png", [WORK_SIDE, WORK_SIDE], 330),
])
def test_huge_images_are_refused_or_reduced_with_bounded_memory(files, name, size, peak_mb):
    result = peak_memory_of_loading(files[name])
    print(f"\n{name}: {result}")
    if isinstance(size, str):
        assert size in result["size"]
    else:
        assert result["size"] == size
    assert result["peak_mb"] < peak_mb, result


# --- through the app ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(tiny_manifest):
    from gradio_client import Client

    demo = build_demo(tiny_manifest)
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                       quiet=True)
    try:
        yield Client(url, verbose=False, download_files=False)
    finally:
        demo.close()


def refusal(client, api: str, photo: Path) -> str:
    """Why the app refuses a photo: from the photo component's own check (an AppError before our
    function runs) or from ours (the result's `error`, shown where the answer would be)."""
    from gradio_client.exceptions import AppError

    try:
        image, result = call(client, api, photo)
    except AppError as err:
        return str(err)
    assert image is None and result["faces"] == []
    return result["error"]


def test_app_answers_every_bad_file_clearly_and_keeps_serving(client, files):
    for name, message in REFUSED:
        assert re.search(message, refusal(client, "all", files[name])), name
    _, result = call(client, "mood", files["pixel.png"])
    assert result["faces"] == [] and result["message"] == no_face_message(WHOLE_IMAGE_OPTION)
    assert re.search("too large to analyse", refusal(client, "gender", files["bomb.png"]))
    _, result = call(client, "gender", files["big.jpg"])  # 108 Mpx: reduced, and the answer says so
    assert (result["width"], result["height"]) == (2250, 3000) and result["original_size"] == [9000, 12000]
    assert "was reduced to 2,250 x 3,000" in result["message"]
    for name in ("animated.gif", "cmyk.jpg", "turned.jpg"):
        image, result = call(client, "all", files[name])
        assert len(result["faces"]) == 1 and image["url"].startswith("data:image/jpeg;base64,"), name
    _, result = call(client, "age", files["crowd.jpg"])
    assert [face["index"] for face in result["faces"]] == list(range(1, 31))


@pytest.fixture
def photo_server(files):
    """A plain HTTP server on 127.0.0.1 serving the sideways-tagged astronaut JPEG."""
    with serve_photo(files["turned.jpg"].read_bytes()) as url:
        yield url


def test_url_to_loopback_refused_unless_allowed(client, photo_server, monkeypatch):
    monkeypatch.delenv("HUB_URL_ALLOW_HOSTS", raising=False)
    _, result = call(client, "all", url=photo_server)
    assert "loopback" in result["error"] and result["faces"] == []
    monkeypatch.setenv("HUB_URL_ALLOW_HOSTS", "127.0.0.1")
    _, result = call(client, "all", url=photo_server)
    assert (result["width"], result["height"]) == (512, 420) and len(result["faces"]) == 1


# --- model files the app must not take -------------------------------------------------------
# (test_models.py covers the loader itself: pickles unopened, label mismatches raised)

def test_app_with_a_pickle_model_starts_and_says_why(tiny_manifest, tmp_path, monkeypatch, caplog):
    import dataclasses

    import torch

    folder = write_tiny_model(tmp_path / "pickled", ["female", "male"])
    torch.save({"state_dict": {}}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was unpickled"))
    tasks = dict(tiny_manifest.tasks)
    tasks["gender"] = dataclasses.replace(tasks["gender"], models=(str(folder),))
    with caplog.at_level("WARNING", logger="hub.ui"):
        demo = build_demo(dataclasses.replace(tiny_manifest, tasks=tasks))
    page = " ".join(str(b.value) for b in demo.blocks.values() if b.get_block_name() == "markdown")
    assert "This tab has no gender model yet" in page
    assert "pickle checkpoint: refused" in caplog.text  # the owner sees why in the log


def test_app_refuses_to_start_when_labels_disagree_with_the_manifest(tiny_manifest, tmp_path):
    import dataclasses

    from hub.models import ModelMismatch

    swapped = write_tiny_model(tmp_path / "swapped", ["male", "female"])
    tasks = dict(tiny_manifest.tasks)
    tasks["gender"] = dataclasses.replace(tasks["gender"], models=(str(swapped),))
    with pytest.raises(ModelMismatch, match=r"tasks.gender.labels"):
        build_demo(dataclasses.replace(tiny_manifest, tasks=tasks))
