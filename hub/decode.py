"""Photos in, upright RGB images out: decoding with the size limits, EXIF orientation and mode
conversion that every input (upload, URL, CLI file, training data) goes through."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

# The largest photo decoded at full size (40 Mpx: 160 MB in Pillow). A JPEG above it, or above
# WORK_SIDE, is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode: the full size is never in
# memory); other formats cannot be decoded smaller, so above it they are refused from their header,
# before any pixel is decoded (a 13000x13000 PNG of one colour is 700 kB on disk, 680 MB decoded).
# Pillow's own guard stays on as well (it refuses anything over ~179 Mpx when opening).
MAX_PIXELS = 24_000_000
# Bigger photos are reduced to this longest side, before any copy, rotation or mode conversion.
# Face boxes, width and height then refer to the reduced photo; `original_size` gives the file's.
WORK_SIDE = 4096
_ORIGINAL_SIZE = "hub_original_size"  # key in the loaded image's `info`
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}  # EXIF orientation -> how to show the photo upright
_QUARTER_TURNS = {_TURNS[5], _TURNS[6], _TURNS[7], _TURNS[8]}


NOT_AN_IMAGE = "This file is not an image we can read."


class BadImage(ValueError):
    """An input that is not a usable image; the message is shown to the user as is."""



def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode (RGBA, P, LA, L, I;16, I, F, CMYK, YCbCr...) to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba)  # an RGBA mask: its alpha (no copy of the channel)
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _decode_smaller(image: Image.Image) -> None:
    """Before decoding a file: pick a JPEG's draft scale, or refuse a photo too large to decode."""
    width, height = image.size
    # a progressive JPEG keeps all its coefficients in memory at full size, whatever the scale
    shrinkable = image.format in ("JPEG", "MPO") and not image.info.get("progressive")
    scale = 1
    while shrinkable and scale < 8 and max(width, height) // (2 * scale) >= WORK_SIDE:
        scale *= 2
    while shrinkable and scale < 8 and (width // scale) * (height // scale) > MAX_PIXELS:
        scale *= 2
    if (width // scale) * (height // scale) > MAX_PIXELS:
        raise BadImage(f"This photo is too large to analyse ({width:,} x {height:,} pixels). Photos up to "
                       f"{MAX_PIXELS // 1_000_000} megapixels are read in full and larger JPEGs are reduced; "
                       "please send a smaller copy.")
    if scale > 1:  # draft picks the largest scale that keeps at least the size asked for
        image.draft(None, (width // scale, height // scale))


def original_size(image: Image.Image) -> tuple[int, int]:
    """The size of the file `image` was loaded from (upright), before any reduction."""
    return image.info.get(_ORIGINAL_SIZE, image.size)


def load_image(source) -> Image.Image:
    """Open a path, bytes, numpy array or PIL image as RGB, upright per its EXIF tag.

    Animated images give their first frame; photos over `WORK_SIDE` are reduced to it (see
    `original_size`), files over `MAX_PIXELS` reduced while decoding or refused.
    Raises `BadImage` with a plain message.
    """
    opened: list[Image.Image] = []
    try:
        return _load_image(source, opened)
    except BaseException:
        for image in opened:
            image.close()  # the file, now: a refused photo leaves nothing open
        raise


def _load_image(source, opened: list[Image.Image]) -> Image.Image:
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, np.ndarray):
            image = Image.fromarray(source)
        elif isinstance(source, (bytes, bytearray)):
            if not source:
                raise BadImage("The file is empty.")
            image = Image.open(io.BytesIO(source))
            opened.append(image)
        elif isinstance(source, (str, os.PathLike)):
            if Path(source).stat().st_size == 0:
                raise BadImage("The file is empty.")
            image = Image.open(source)
            opened.append(image)
        else:
            raise BadImage(f"Cannot read an image from {type(source).__name__}.")
        image.seek(0)
        size = original_size(image)
        if image is not source:  # opened here: nothing decoded yet (a caller's image is left alone)
            _decode_smaller(image)
        image.load()
        turn = _TURNS.get(image.getexif().get(ExifTags.Base.Orientation, 1))
        if max(image.size) > WORK_SIDE:  # a new image (the caller's is left alone)
            if image.mode in ("RGBA", "LA", "PA", "P"):
                image = _to_rgb(image)  # flattened first: Pillow resizes alpha in a premultiplied copy
            scale = WORK_SIDE / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.Resampling.BILINEAR, reducing_gap=2.0)
        rgb = _to_rgb(image)
        if turn is not None:
            rgb = rgb.transpose(turn)
            if turn in _QUARTER_TURNS:
                size = size[::-1]  # the file's size as shown
    except BadImage:
        raise
    except Image.DecompressionBombError:
        raise BadImage(f"This photo is too large to analyse (over {2 * Image.MAX_IMAGE_PIXELS // 1_000_000} "
                       "megapixels); please send a smaller copy.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
        raise BadImage(NOT_AN_IMAGE) from None
    if min(rgb.size) < 1:
        raise BadImage("The image has no pixels.")
    if rgb is not source:  # a photo held in memory is analysed as it is, without a copy
        rgb.info = {_ORIGINAL_SIZE: size}  # no EXIF kept (place, camera...), nor its orientation
    return rgb
