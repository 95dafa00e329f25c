"""The photo sent back: a copy sized for the screen, each face boxed and numbered inside the image."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .faces import Face

DISPLAY_SIDE = 1024      # the copy's longest side at most this; predictions use the full photo
MIN_DISPLAY_SIDE = 512   # small photos are enlarged, so that lines and numbers stay sharp
BOX_COLOUR = (255, 214, 0)
TEXT_COLOUR = (0, 0, 0)


def display_copy(image: Image.Image, max_side: int = DISPLAY_SIDE) -> tuple[Image.Image, float]:
    """The photo scaled for display (between MIN_DISPLAY_SIDE and max_side), and the scale used."""
    side = max(image.size)
    scale = min(max_side, max(side, MIN_DISPLAY_SIDE)) / side
    if scale == 1.0:
        return image.copy(), 1.0
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.LANCZOS
    return image.resize(size, resample), scale


def tag_position(box, tag: tuple[int, int], image: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of a number's label (`tag` = its width, height) for a face box: above the
    box when there is room, else just inside its top edge; always wholly inside the image."""
    x1, y1 = box[0], box[1]
    width, height = tag
    x = min(max(0, round(x1)), max(0, image[0] - width))
    y = round(y1) - height if y1 - height >= 0 else max(0, round(y1))
    return x, min(y, max(0, image[1] - height))


def label_font(shown: Image.Image) -> ImageFont.ImageFont:
    # about 1/28 of the copy's longest side: ~37 px on a 1024 px copy, never below 16 px
    return ImageFont.load_default(size=max(16, round(max(shown.size) / 28)))


def draw_faces(image: Image.Image, faces: list[Face], max_side: int = DISPLAY_SIDE) -> Image.Image:
    """A copy of the photo for display with each face boxed and numbered."""
    shown, scale = display_copy(image, max_side)
    draw = ImageDraw.Draw(shown)
    width = max(2, round(max(shown.size) / 250))
    font = label_font(shown)
    pad = max(2, width)
    for face in faces:
        box = [v * scale for v in face.box]
        draw.rectangle(box, outline=BOX_COLOUR, width=width)
        text = str(face.index)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag = (right - left + 2 * pad, bottom - top + 2 * pad)
        x, y = tag_position(box, tag, shown.size)
        draw.rectangle((x, y, x + tag[0] - 1, y + tag[1] - 1), fill=BOX_COLOUR)
        draw.text((x + pad - left, y + pad - top), text, fill=TEXT_COLOUR, font=font)
    return shown
