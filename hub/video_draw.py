"""Drawing followed faces on a video frame: a numbered box and each face's current answers."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .draw import BOX_COLOUR, TEXT_COLOUR
from .models import AgePrediction
from .tracking import TrackedFace


def short_label(prediction) -> str:
    if isinstance(prediction, AgePrediction):
        return f"{prediction.years:.0f} y"
    return prediction.label if prediction.uncertain else f"{prediction.label} {prediction.confidence:.0%}"


def draw_tracked(image: Image.Image, faces: list[TrackedFace]) -> Image.Image:
    """Boxes, numbers and each face's current answers, drawn on the frame itself."""
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 320))
    font = ImageFont.load_default(size=max(12, round(max(image.size) / 40)))
    for face in faces:
        x1, y1, x2, y2 = face.box
        draw.rectangle((x1, y1, x2, y2), outline=BOX_COLOUR, width=width)
        tag = str(face.number)
        left, top, right, bottom = draw.textbbox((0, 0), tag, font=font)
        tag_y = max(0.0, y1 - (bottom - top) - 2 * width)
        draw.rectangle((x1, tag_y, x1 + right - left + 2 * width, tag_y + bottom - top + 2 * width), fill=BOX_COLOUR)
        draw.text((x1 + width - left, tag_y + width - top), tag, fill=TEXT_COLOUR, font=font)
        text = "\n".join(short_label(p) for p in face.answers.values())
        if text:  # under the box, moved left or up to stay inside the frame
            left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, stroke_width=2)
            x = max(0.0, min(x1, image.width - (right - left) - 2))
            y = max(0.0, min(y2 + width, image.height - (bottom - top) - 2))
            draw.multiline_text((x - left, y - top), text, fill=BOX_COLOUR, font=font, stroke_width=2,
                                stroke_fill=(0, 0, 0))
    return image
