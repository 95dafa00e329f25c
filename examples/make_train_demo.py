"""A zip to try the "Train your own" tab with: `python examples/make_train_demo.py train_demo.zip`.

Two public-domain portraits (astronaut Eileen Collins, NASA, from scikit-image; Rear Admiral Grace Hopper,
US Navy, from matplotlib), 30 varied copies each: cropped, scaled, turned, mirrored, and given a colour
cast. The labels are `warm` and `cool`: the photo's cast, whoever is in it. A model trained on them
scores well, and has learnt the photo style, not anything about the faces: the trap the report's caveat
warns about, in miniature.
"""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

PER_PERSON = 30


def portraits() -> dict[str, Image.Image]:
    import matplotlib.cbook
    from skimage import data

    hopper = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    return {"collins": Image.fromarray(data.astronaut()).crop((60, 0, 460, 400)), "hopper": hopper}


def variant(photo: Image.Image, rng: np.random.Generator, cast: float) -> Image.Image:
    """A new framing of the portrait with a colour cast: > 0 warm (orange), < 0 cool (blue)."""
    side = int(min(photo.size) * rng.uniform(0.75, 1.0))
    left = int(rng.integers(0, photo.width - side + 1))
    top = int(rng.integers(0, photo.height - side + 1))
    image = photo.crop((left, top, left + side, top + side)).rotate(rng.uniform(-8, 8), resample=Image.BICUBIC)
    image = image.resize((256, 256), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    pixels = np.asarray(image, dtype=float) * rng.uniform(0.8, 1.15)
    pixels += np.array([40.0, 10.0, -40.0]) * cast
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main(out: str) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for person, photo in portraits().items():
            for i in range(PER_PERSON):
                cast = rng.uniform(0.1, 1.0) * (1 if i % 2 else -1)  # faint casts make the ambiguous faces
                buffer = io.BytesIO()
                variant(photo, rng, cast).save(buffer, format="JPEG", quality=88)
                archive.writestr(f"train_demo/{'warm' if cast > 0 else 'cool'}/{person}_{i}.jpg", buffer.getvalue())
    return Path(out)


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "train_demo.zip"))
