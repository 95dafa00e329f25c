"""Decoding any image mode to RGB, square crops with margin, and MTCNN detection order."""
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from hub.config import DetectorConfig
from hub.decode import BadImage, load_image
from hub.faces import crop_face, get_detector, square_box, whole_image_face

HEAD = (120, 10, 330, 260)  # head and shoulders of the astronaut (512x512)


@pytest.fixture(scope="module")
def detector():
    return get_detector(DetectorConfig())


# --- detection -------------------------------------------------------------------------------

def test_astronaut_has_one_face_around_the_head(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert faces[0].index == 1 and faces[0].score > 0.99
    assert 170 < x1 < 200 and 250 < x2 < 290 and 40 < y1 < 80 and 150 < y2 < 200, faces[0].box


def test_collage_faces_are_counted_and_numbered_left_to_right(detector, astronaut):
    head = astronaut.crop(HEAD)
    tiles = [ImageOps.mirror(head), head.resize((168, 200)), ImageOps.grayscale(head).convert("RGB")]
    canvas = Image.new("RGB", (900, 320), (230, 230, 230))
    lefts = [620, 40, 330]  # pasted out of order: numbering must follow x, not insertion
    for tile, left in zip(tiles, lefts):
        canvas.paste(tile, (left, 30))
    faces = detector.detect(canvas)
    assert [face.index for face in faces] == [1, 2, 3]
    centres = [(face.box[0] + face.box[2]) / 2 for face in faces]
    assert centres == sorted(centres)
    for centre, left in zip(centres, sorted(lefts)):
        assert left < centre < left + 210


def test_no_face_and_tiny_images(detector):
    assert detector.detect(Image.new("RGB", (300, 200), (128, 128, 128))) == []
    assert detector.detect(Image.new("RGB", (8, 8))) == []


# --- crops ------------------------------------------------------------------------------------

def white_square_on_black(box=(100, 100, 140, 140), size=(400, 300)) -> Image.Image:
    image = Image.new("RGB", size)
    image.paste((255, 255, 255), box)
    return image


def white_fraction(image: Image.Image) -> float:
    return float((np.asarray(image.convert("L")) > 127).mean())


def test_square_box_adds_the_margin_on_every_side():
    assert square_box((10, 20, 30, 60), margin=0.0) == (0.0, 20.0, 40.0, 60.0)
    assert square_box((10, 20, 30, 60), margin=0.5) == (-20.0, 0.0, 60.0, 80.0)
    # negative margins crop inside the box; shift moves the square down by a fraction of the longer edge
    assert square_box((10, 20, 30, 60), margin=-0.25) == (10.0, 30.0, 30.0, 50.0)
    assert square_box((10, 20, 30, 60), margin=0.0, shift=0.1) == (0.0, 24.0, 40.0, 64.0)


def test_crop_size_and_margin():
    image = white_square_on_black()
    tight = crop_face(image, (100, 100, 140, 140), size=32, margin=0.0)
    loose = crop_face(image, (100, 100, 140, 140), size=32, margin=0.5)  # side doubles
    assert tight.size == loose.size == (32, 32) and tight.mode == "RGB"
    assert white_fraction(tight) > 0.95
    assert white_fraction(loose) == pytest.approx(0.25, abs=0.04)


def test_crop_outside_the_photo_is_black_and_gray_option():
    image = white_square_on_black(box=(0, 0, 40, 40))
    crop = crop_face(image, (0, 0, 40, 40), size=20, margin=0.5)
    assert white_fraction(crop) == pytest.approx(0.25, abs=0.06)
    colour = Image.new("RGB", (50, 50), (200, 30, 30))
    gray = np.asarray(crop_face(colour, (10, 10, 40, 40), size=16, margin=0.0, grayscale=True))
    assert gray.shape == (16, 16, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_whole_image_face():
    assert whole_image_face(Image.new("RGB", (64, 48))).box == (0.0, 0.0, 64.0, 48.0)


# --- decoding -----------------------------------------------------------------------------------

def encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [
    lambda: Image.new("RGBA", (30, 20), (255, 0, 0, 0)),
    lambda: Image.new("P", (30, 20), 3),
    lambda: Image.new("L", (30, 20), 90),
    lambda: Image.new("LA", (30, 20), (90, 255)),
    lambda: Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100),
    lambda: Image.new("CMYK", (30, 20), (0, 255, 255, 0)),
], ids=["RGBA", "P", "L", "LA", "I;16", "CMYK"])
def test_any_mode_loads_as_rgb(make):
    image = load_image(make())
    assert image.mode == "RGB" and image.size == (30, 20)


def test_transparent_pixels_become_white_and_16_bit_is_scaled():
    assert load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    ramp = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    assert ramp.mode.startswith("I;16")
    assert np.asarray(load_image(ramp))[0, :, 0].tolist() == [0, 255]


def test_files_bytes_and_exif_orientation(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° when shown
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)
    assert load_image(path.read_bytes()).size == (20, 40)
    assert load_image(encoded(Image.new("CMYK", (5, 6)), "TIFF")).size == (5, 6)


@pytest.mark.parametrize("source, message", [
    (b"", "empty"), (b"not an image at all", "not an image"), (12, "Cannot read"),
])
def test_bad_inputs_raise_bad_image(source, message):
    with pytest.raises(BadImage, match=message):
        load_image(source)


def test_empty_and_broken_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(encoded(Image.new("RGB", (50, 50)), "PNG")[:60])
    with pytest.raises(BadImage, match="empty"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(BadImage, match="not an image"):
        load_image(tmp_path / "cut.png")
