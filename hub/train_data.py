"""What a user trains on in the "Train your own" tab: a zip of labelled photos, checked and unpacked
safely (finetune.user_data turns it into the DatasetDict that finetune reads).

Zip layouts: `train/<label>/*.jpg` (optionally `validation/`, `test/`), `<label>/*.jpg`, or the seed
study's `index.csv` (`id,category`) beside `<id>.jpg`; one enclosing folder is fine. Refused, each with
a message that says what to change: not a zip, too large, too many photos, zip bombs (declared or actual
sizes over the limit, extreme compression), paths that climb out of the folder, symbolic links,
encrypted files, files that are not photos, empty labels, one label only, too few photos per label.
"""
from __future__ import annotations

import csv
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP")
INDEX = "index.csv"
JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini")  # what zip tools add by themselves
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "valid": "validation",
               "test": "test"}
MIN_PER_LABEL = 10   # enough for a stratified 70/20/10 split to give every label a test face
MAX_LABELS = 50
MAX_RATIO = 50       # photos barely compress: a member inflating more than this is a zip bomb
UNPACKED_FACTOR = 2  # unpacked photos may total this many times the zip limit
LAYOUTS = ("Put the photos in one folder per label (`train/<label>/photo.jpg`, or `<label>/photo.jpg`), "
           "or beside an `index.csv` with the columns `id,category` (`<id>.jpg`).")


class UploadRefused(ValueError):
    """The upload cannot be trained on; the message is shown to the user as is."""


@dataclass(frozen=True)
class Photo:
    path: Path          # unpacked, inside the upload's folder
    name: str           # as in the zip, for messages and the list of photos without a face
    label: str
    split: str | None   # train / validation / test, or None: the app splits 70/20/10


@dataclass
class Upload:
    folder: Path
    photos: list[Photo]
    labels: list[str]
    notes: list[str] = field(default_factory=list)  # what was skipped, in plain words


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The member's path, refused when it could land outside the folder or is not a plain file."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in name.split("/"):
        raise UploadRefused(f"The zip holds a file with an unsafe path ({info.filename!r}): refused.")
    if stat.S_ISLNK(mode):
        raise UploadRefused(f"The zip holds a symbolic link ({info.filename!r}): refused. Zip the photos "
                            "themselves.")
    if info.flag_bits & 0x1:
        raise UploadRefused("The zip is password-protected: zip the photos without a password.")
    return tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))


def _strip_common_folder(entries: dict[tuple[str, ...], zipfile.ZipInfo]) -> dict:
    """Drop enclosing folders (`my_photos/train/...` -> `train/...`), but never the label folders."""
    while entries:
        firsts = {parts[0] for parts in entries}
        if len(firsts) != 1 or next(iter(firsts)).lower() in SPLIT_NAMES or min(map(len, entries)) < 2:
            return entries
        deeper = any(len(parts) >= 3 for parts in entries) or any(parts[1:] == (INDEX,) for parts in entries)
        if not deeper:
            return entries
        entries = {parts[1:]: info for parts, info in entries.items()}
    return entries


def _read_index(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> list[tuple[str, str]]:
    if info.file_size > 5_000_000:
        raise UploadRefused(f"{INDEX} is larger than 5 MB.")
    try:
        rows = list(csv.DictReader(io.StringIO(archive.read(info).decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        raise UploadRefused(f"{INDEX} is not a readable CSV file (UTF-8 text, comma-separated).") from None
    if not rows or not {"id", "category"} <= set(rows[0]):
        raise UploadRefused(f"{INDEX} needs the columns id and category.")
    return [(str(row["id"]).strip(), str(row["category"]).strip()) for row in rows]


def _layout(entries: dict, archive: zipfile.ZipFile, notes: list[str]) -> list[tuple[tuple, str, str | None]]:
    """(member parts, label, split) for every photo used."""
    images = {parts for parts in entries if parts[-1].lower().endswith(IMAGE_SUFFIXES)}
    if (INDEX,) in entries:
        by_name = {parts[0]: parts for parts in images if len(parts) == 1}
        chosen, missing = [], 0
        for ident, category in _read_index(archive, entries[(INDEX,)]):
            parts = by_name.get(f"{ident}.jpg")
            if parts is None:
                missing += 1
            elif category:
                chosen.append((parts, category, None))
        if missing:
            notes.append(f"{_plural(missing, 'row')} of {INDEX} had no photo `<id>.jpg` and were skipped.")
        if len(images) > len(chosen):
            notes.append(f"{_plural(len(images) - len(chosen), 'photo')} not listed in {INDEX} were skipped.")
        return chosen
    split_layout = any(parts[0].lower() in SPLIT_NAMES for parts in entries)
    chosen = []
    for parts in sorted(images):
        if split_layout:
            if parts[0].lower() not in SPLIT_NAMES or len(parts) < 3:
                raise UploadRefused(f"{'/'.join(parts)} is not inside train/<label>/, validation/<label>/ or "
                                    f"test/<label>/. {LAYOUTS}")
            chosen.append((parts, parts[1], SPLIT_NAMES[parts[0].lower()]))
        else:
            if len(parts) < 2:
                raise UploadRefused(f"{parts[0]} is not in a label folder. {LAYOUTS}")
            chosen.append((parts, parts[0], None))
    return chosen


def _check_labels(chosen: list, entries: dict) -> list[str]:
    train = [label for _, label, split in chosen if split in (None, "train")]
    counts = {label: train.count(label) for label in dict.fromkeys(sorted(train))}
    folders = {parts[1] if parts[0].lower() in SPLIT_NAMES and len(parts) > 1 else parts[0]
               for parts, info in entries.items() if info.is_dir() and parts}
    empty = sorted(folders - set(counts) - set(SPLIT_NAMES))
    if empty:
        raise UploadRefused(f"The label folder '{empty[0]}' has no photos: add photos or remove the folder.")
    if not counts:
        raise UploadRefused(f"The zip holds no photos (.jpg, .jpeg, .png, .webp, .bmp). {LAYOUTS}")
    if len(counts) < 2:
        raise UploadRefused(f"Only one label ('{next(iter(counts))}') has photos: a classifier needs at least "
                            "two labels, each in its own folder.")
    if len(counts) > MAX_LABELS:
        raise UploadRefused(f"The zip has {len(counts)} labels; the limit is {MAX_LABELS}.")
    few = [label for label, n in counts.items() if n < MIN_PER_LABEL]
    if few:
        raise UploadRefused(f"The label '{few[0]}' has {_plural(counts[few[0]], 'photo')}; each label needs at "
                            f"least {MIN_PER_LABEL} for training.")
    unknown = sorted({label for _, label, split in chosen if split in ("validation", "test")} - set(counts))
    if unknown:
        raise UploadRefused(f"The label '{unknown[0]}' appears in validation/ or test/ but not in train/.")
    return list(counts)


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: list[int]) -> None:
    """Copy one member, counting the bytes actually inflated (a header may lie about them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        for block in iter(lambda: source.read(1 << 16), b""):
            written += len(block)
            budget[0] -= len(block)
            if written > info.file_size or budget[0] < 0:
                raise UploadRefused("The zip unpacks to much more than it claims (a zip bomb?): refused.")
            sink.write(block)


def unpack(zip_path: str | os.PathLike, folder: str | os.PathLike, *, max_bytes: int, max_images: int) -> Upload:
    """Check the zip, then unpack only the photos used into `folder` (which the caller deletes)."""
    size = os.path.getsize(zip_path)
    if size > max_bytes:
        raise UploadRefused(f"The zip is {size / 2**20:.1f} MB; the limit here is {max_bytes / 2**20:.0f} MB. "
                            "Use fewer or smaller photos (faces need no more than 1000 px).")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise UploadRefused("This file is not a zip archive.") from None
    with archive:
        notes: list[str] = []
        entries, junk, declared = {}, 0, 0
        for info in archive.infolist():
            parts = _parts(info)
            if not parts:
                continue
            if any(part in JUNK or part.startswith("._") for part in parts):
                junk += 1
                continue
            if not info.is_dir():
                is_image = parts[-1].lower().endswith(IMAGE_SUFFIXES)
                if not is_image and parts[-1] != INDEX:
                    raise UploadRefused(f"{'/'.join(parts)} is not a photo: the zip may hold only photos "
                                        f"({', '.join(IMAGE_SUFFIXES)}) and an {INDEX}.")
                if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1_000_000:
                    raise UploadRefused(f"{'/'.join(parts)} inflates {info.file_size // max(info.compress_size, 1)}"
                                        " times (a zip bomb?): refused.")
                declared += info.file_size
            entries[parts] = info
        images = sum(1 for parts, info in entries.items() if not info.is_dir() and parts[-1] != INDEX)
        if images > max_images:
            raise UploadRefused(f"The zip holds {images:,} photos; the limit here is {max_images:,}.")
        if declared > UNPACKED_FACTOR * max_bytes:
            raise UploadRefused(f"The zip unpacks to {declared / 2**20:.0f} MB; the limit is "
                                f"{UNPACKED_FACTOR * max_bytes / 2**20:.0f} MB (a zip bomb?).")
        if junk:
            notes.append(f"{_plural(junk, 'file')} added by the zip tool (__MACOSX, .DS_Store...) ignored.")
        entries = _strip_common_folder(entries)
        chosen = _layout(entries, archive, notes)
        labels = _check_labels(chosen, entries)
        folder = Path(folder).resolve()
        budget, photos = [UNPACKED_FACTOR * max_bytes], []
        for parts, label, split in chosen:
            target = folder.joinpath(*parts).resolve()
            if not target.is_relative_to(folder):  # _parts already refused "..": a second lock
                raise UploadRefused(f"The zip holds a file with an unsafe path ({'/'.join(parts)!r}): refused.")
            _extract(archive, entries[parts], target, budget)
            photos.append(Photo(path=target, name="/".join(parts), label=label, split=split))
    for photo in photos:
        _check_photo(photo)
    return Upload(folder=folder, photos=photos, labels=labels, notes=notes)


def _check_photo(photo: Photo) -> None:
    """The content, not the name: Pillow reads the header only."""
    try:
        with Image.open(photo.path) as image:
            kind = image.format
    except Exception:  # noqa: BLE001 - any failure to identify means "not a photo"
        kind = None
    if kind not in IMAGE_FORMATS:
        raise UploadRefused(f"{photo.name} is not a photo (its content is not JPEG, PNG, WebP or BMP).")
