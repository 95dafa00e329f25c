"""`python -m finetune framing --task age`: how a pre-cropped dataset frames its faces, as the
`crop_margin` / `crop_shift` that make the app's MTCNN crops look like it.

A model trained on UTKFace's 200x200 crops has only ever seen faces framed the UTKFace way; served
on MTCNN boxes with a different margin, it sees faces smaller or larger than in training. This runs
the app's detector on a sample of the training images (padded in gray, so that MTCNN finds faces
that fill the whole image) and prints the median framing to put in spaces.yaml.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

from PIL import Image

from hub.config import DetectorConfig, load_manifest
from hub.decode import load_image
from hub.faces import FaceDetector, largest_face

PAD = 0.5         # gray border on each side, as a fraction of the image side
MIN_SIDE = 192    # small crops (FER2013's 48 px) are enlarged first: MTCNN misses tiny faces


@dataclass
class Framing:
    margin: float  # the image side is the face box's longer edge times (1 + 2 * margin)
    shift: float   # the image centre lies this fraction of the edge below the box centre


def measure(image: Image.Image, detector: FaceDetector) -> Framing | None:
    """The framing of one already-cropped face, or None when the detector finds no face."""
    scale = max(1.0, MIN_SIDE / min(image.size))
    image = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                        Image.Resampling.BICUBIC)
    pad = round(PAD * max(image.size))
    canvas = Image.new("RGB", (image.width + 2 * pad, image.height + 2 * pad), (128, 128, 128))
    canvas.paste(image, (pad, pad))
    faces = detector.detect(canvas)
    if not faces:
        return None
    x1, y1, x2, y2 = largest_face(faces).box
    edge = max(x2 - x1, y2 - y1)
    return Framing(margin=(max(image.size) / edge - 1.0) / 2.0,
                   shift=(pad + image.height / 2.0 - (y1 + y2) / 2.0) / edge)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune framing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", help="default: the manifest's dataset for the task")
    parser.add_argument("--image-column", default=None)
    parser.add_argument("--limit", type=int, default=300, help="images to measure (default 300)")
    parser.add_argument("--manifest", default=None)
    args = parser.parse_args(argv)

    from .config import make_config
    from .data import read_source
    from .settings import resolve_data

    manifest = load_manifest(args.manifest)
    settings = resolve_data(make_config({"task": args.task, "data": args.data, "image_column": args.image_column}),
                            manifest)
    source, column = settings.source, settings.image_column
    train = read_source(source, settings.config_name)["train"]
    sample = train.shuffle(seed=0).select(range(min(args.limit, len(train))))
    detector = FaceDetector(DetectorConfig(min_face_size=20, min_confidence=0.8))

    found = []
    for raw in sample[column]:
        image = raw if isinstance(raw, Image.Image) else load_image(raw["bytes"] or raw["path"])
        framing = measure(image, detector)
        if framing is not None:
            found.append(framing)
    if not found:
        print(f"no face found in {len(sample)} images of {source}", file=sys.stderr)
        return 1
    margins = sorted(f.margin for f in found)
    shifts = sorted(f.shift for f in found)
    quartile = len(found) // 4
    print(f"{args.task}: a face in {len(found)} of {len(sample)} images of {source}")
    print(f"  margin median {statistics.median(margins):+.3f} (quartiles {margins[quartile]:+.3f} "
          f"{margins[-quartile - 1]:+.3f}); shift median {statistics.median(shifts):+.3f} "
          f"(quartiles {shifts[quartile]:+.3f} {shifts[-quartile - 1]:+.3f})")
    print(f"spaces.yaml, tasks.{args.task}:\n  crop_margin: {statistics.median(margins):.2f}\n"
          f"  crop_shift: {statistics.median(shifts):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
