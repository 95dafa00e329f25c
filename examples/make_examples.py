"""Rebuild the example photos from scikit-image's bundled public-domain NASA images:
`python examples/make_examples.py`. Run once; the JPEGs are committed."""
from pathlib import Path

from PIL import Image, ImageOps
from skimage import data

HERE = Path(__file__).resolve().parent


def main() -> None:
    astronaut = Image.fromarray(data.astronaut())  # Eileen Collins, NASA, public domain
    astronaut.save(HERE / "astronaut.jpg", quality=88)

    # Three faces for numbering: the head and shoulders at three scales, one mirrored, one gray.
    head = astronaut.crop((120, 10, 330, 260))
    canvas = Image.new("RGB", (760, 300), (236, 236, 240))
    for i, (tile, height) in enumerate([(head, 250), (ImageOps.mirror(head), 200),
                                         (ImageOps.grayscale(head).convert("RGB"), 280)]):
        tile = tile.resize((round(tile.width * height / tile.height), height), Image.Resampling.LANCZOS)
        canvas.paste(tile, (20 + i * 250, (300 - height) // 2))
    canvas.save(HERE / "three_faces.jpg", quality=88)

    # No face at all: shows the 'classify the whole image' option.
    Image.fromarray(data.rocket()).save(HERE / "rocket.jpg", quality=88)  # NASA, public domain


if __name__ == "__main__":
    main()
