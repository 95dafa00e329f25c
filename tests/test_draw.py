"""The photo sent back (hub/draw.py): boxes, and face numbers that stay inside the image and
readable at any photo size, also for a face touching the top edge (issue 15, point 5)."""
import numpy as np
import pytest
from PIL import Image

from hub.draw import BOX_COLOUR, DISPLAY_SIDE, MIN_DISPLAY_SIDE, display_copy, draw_faces, label_font, tag_position
from hub.faces import Face


def tag_pixels(shown: Image.Image, near: tuple[int, int], reach: int):
    """The label's filled rectangle around `near`: its bounds, and whether dark text is inside."""
    pixels = np.asarray(shown).astype(int)
    fill = (np.abs(pixels - np.array(BOX_COLOUR)).sum(axis=2) < 30)
    x, y = near
    window = fill[max(0, y - reach): y + reach, max(0, x - reach): x + reach]
    ys, xs = np.nonzero(window)
    top, left = max(0, y - reach) + ys.min(), max(0, x - reach) + xs.min()
    bottom, right = max(0, y - reach) + ys.max(), max(0, x - reach) + xs.max()
    inside = pixels[top:bottom + 1, left:right + 1]
    dark = (inside.sum(axis=2) < 200).sum()
    return (left, top, right, bottom), dark


def test_tag_goes_above_the_box_or_inside_it_never_out_of_the_image():
    assert tag_position((100, 80, 200, 200), (30, 40), (400, 300)) == (100, 40)   # room above
    assert tag_position((100, 20, 200, 200), (30, 40), (400, 300)) == (100, 20)   # inside, at its top
    assert tag_position((100, -15, 200, 90), (30, 40), (400, 300)) == (100, 0)    # box cut by the top edge
    assert tag_position((-20, -15, 60, 90), (30, 40), (400, 300)) == (0, 0)       # and by the left edge
    assert tag_position((390, 290, 420, 330), (30, 40), (400, 300)) == (370, 250)  # bottom-right corner


@pytest.mark.parametrize("size", [(160, 120), (640, 480), (4000, 3000), (3000, 600)])
def test_numbers_are_drawn_inside_and_readable_at_any_photo_size(size):
    """A face touching the top edge at every photo size: its number is inside the image, the
    display copy is 512-1024 px, and the digit is at least 16 px tall on it."""
    photo = Image.new("RGB", size, (60, 70, 80))
    width = size[0] / 4
    face = Face(index=7, box=(size[0] / 3, -0.05 * width, size[0] / 3 + width, width), score=1.0)
    shown = draw_faces(photo, [face])
    assert MIN_DISPLAY_SIDE <= max(shown.size) <= DISPLAY_SIDE
    scale = max(shown.size) / max(size)
    (left, top, right, bottom), dark = tag_pixels(shown, (round(face.box[0] * scale) + 5, 5), 80)
    assert top == 0 and dark > 20  # at the top edge, with the digit in it
    assert bottom - top >= 16 + 4 and label_font(shown).size >= 16


def test_real_face_at_the_top_edge_keeps_its_number(astronaut):
    from hub.config import DetectorConfig
    from hub.faces import get_detector

    photo = astronaut.crop((0, 75, 512, 512))  # her hair and forehead cut by the top edge
    [face] = get_detector(DetectorConfig()).detect(photo)
    assert face.box[1] < 5
    shown = draw_faces(photo, [face])
    scale = max(shown.size) / max(photo.size)
    (left, top, right, bottom), dark = tag_pixels(shown, (round(face.box[0] * scale) + 8, 8), 60)
    assert top == 0 and dark > 20
    assert abs(left - face.box[0] * scale) < 6  # at the box's left edge


def test_small_photos_are_enlarged_big_ones_reduced():
    assert display_copy(Image.new("RGB", (48, 48)))[0].size == (512, 512)
    assert display_copy(Image.new("RGB", (800, 600)))[0].size == (800, 600)
    assert display_copy(Image.new("RGB", (4000, 2000)))[0].size == (1024, 512)
