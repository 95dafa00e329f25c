"""Synthetic clips for the video tests, from public-domain faces: scikit-image's astronaut (NASA),
matplotlib's Grace Hopper (US Navy), and the astronaut mirrored in gray as a third person.

The clip (320x240, 12 fps, 4 s): "astro" crosses the top row from left to right and leaves on the
right; "grace" enters on the right of the bottom row and walks left; "gray" enters on the left of
the bottom row and walks right, so the two cross in the middle of the bottom row (frames ~27-33).
"""
from __future__ import annotations

from fractions import Fraction

from PIL import Image, ImageOps

from benchmarks.video import write_y4m  # noqa: F401 - Chromium's fake-camera format, for the browser test

SIZE = (320, 240)
FPS = 12
FRAMES = 48
TILE = (92, 110)
BACKGROUND = (96, 104, 112)


def heads() -> dict[str, Image.Image]:
    import matplotlib.cbook
    from skimage import data

    astronaut = Image.fromarray(data.astronaut()).crop((120, 10, 330, 260))
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as photo:
        grace = photo.convert("RGB").crop((110, 20, 420, 390))
    gray = ImageOps.grayscale(ImageOps.mirror(astronaut)).convert("RGB")
    return {name: image.resize(TILE, Image.Resampling.LANCZOS)
            for name, image in (("astro", astronaut), ("grace", grace), ("gray", gray))}


def positions(frame: int) -> dict[str, tuple[int, int]]:
    """Top-left corner of each head in view at `frame`."""
    where = {}
    astro_x = -20 + 9 * frame                      # leaves through the right edge around frame 34
    if astro_x < SIZE[0] - TILE[0] // 3:
        where["astro"] = (astro_x, 6)
    if frame >= 4:
        where["grace"] = (SIZE[0] - 30 - 6 * (frame - 4), 126)   # comes in from the right
    if frame >= 10:
        where["gray"] = (-40 + 6 * (frame - 10), 126)            # comes in from the left
    return where


def truth_boxes(frame: int) -> dict[str, tuple[int, int, int, int]]:
    return {name: (x, y, x + TILE[0], y + TILE[1]) for name, (x, y) in positions(frame).items()}


def crossing(frame: int) -> bool:
    """The two bottom heads overlap (or nearly) in this frame."""
    boxes = truth_boxes(frame)
    if "grace" not in boxes or "gray" not in boxes:
        return False
    return abs(boxes["grace"][0] - boxes["gray"][0]) < TILE[0] + 12


def frames(start: float = 0, count: int = FRAMES, step: float = 1.0) -> list[Image.Image]:
    """The clip's frames; `step` < 1 plays it slower (a webcam whose people move less between the
    frames a loaded machine manages to analyse)."""
    tiles = heads()
    out = []
    for index in range(count):
        canvas = Image.new("RGB", SIZE, BACKGROUND)
        for name, (x, y) in positions(start + index * step).items():   # later names are drawn over earlier ones
            canvas.paste(tiles[name], (round(x), round(y)))
        out.append(canvas)
    return out


def mp4_bytes(images: list[Image.Image], fps: int = FPS) -> bytes:
    from hub.video import Mp4Writer

    writer = Mp4Writer(images[0].size, Fraction(fps))
    for image in images:
        writer.write(image)
    return writer.finish()
