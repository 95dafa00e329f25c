"""finetune.data on tiny synthetic data in every layout it reads, and the bad data it must refuse.

The helpers here (make_image_folder, make_age_parquet) build the data the other finetune tests train on.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import needs_shared_data

FIELD_LABELS = ("cs", "econ", "german", "mechanical")   # the manifest's field task
COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (120, 120, 120), (200, 40, 200),
           (40, 200, 200), (20, 20, 20))


def _face(colour, rng, size: int = 40) -> Image.Image:
    """A noisy square of one colour: classes the tiny model can tell apart."""
    noise = rng.normal(0, 35, (size, size, 3))
    return Image.fromarray(np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8))


def make_image_folder(root: Path, labels=FIELD_LABELS, per_class: int = 10, splits=("train",), seed: int = 0) -> Path:
    """root/<split>/<label>/<n>.jpg"""
    rng = np.random.default_rng(seed)
    for split in splits:
        for label, colour in zip(labels, COLOURS):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _face(colour, rng).save(folder / f"{label}_{i}.jpg", quality=90)
    return root


def make_age_parquet(root: Path, rows: int = 45, seed: int = 0, with_gender: bool = True) -> Path:
    """UTKFace-like parquet: image, age (20-49, in three bands), gender and race as ClassLabels."""
    from datasets import ClassLabel, Dataset, Features, Image as ImageFeature, Value

    rng = np.random.default_rng(seed)
    data = {"image": [], "age": [], "race": []}
    if with_gender:
        data["gender"] = []
    for i in range(rows):
        age = int((25, 35, 45)[i % 3] + rng.integers(-4, 5))
        buffer = io.BytesIO()
        _face((age * 4, age * 3, age * 2), rng).save(buffer, format="JPEG")
        data["image"].append({"bytes": buffer.getvalue(), "path": None})
        data["age"].append(age)
        data["race"].append(i % 5)
        if with_gender:
            data["gender"].append(i % 2)
    features = {"image": ImageFeature(), "age": Value("int32"),
                "race": ClassLabel(names=["white", "black", "asian", "indian", "other"])}
    if with_gender:
        features["gender"] = ClassLabel(names=["male", "female"])
    root.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(data, features=Features(features)).to_parquet(str(root / "part-0.parquet"))
    return root


def data_settings(manifest, task: str, source: Path, tmp_path: Path, **options):
    """The data settings of a run with these options, resolved as training resolves them."""
    from finetune.config import make_config
    from finetune.settings import resolve_data

    values = {"task": task, "data": str(source), "input_size": 32, "detect_faces": False,
              "cache_dir": str(tmp_path / "cache"), **options}
    return resolve_data(make_config(values), manifest)


def load(manifest, task: str, source: Path, tmp_path: Path, **options):
    from finetune.data import load_task_data

    return load_task_data(data_settings(manifest, task, source, tmp_path, **options))


# --- layouts --------------------------------------------------------------------------------------

def test_image_folder_is_split_stratified_in_manifest_order(tiny_manifest, tmp_path):
    data = load(tiny_manifest, "field", make_image_folder(tmp_path / "field"), tmp_path)
    assert data.labels == list(FIELD_LABELS) and data.kind == "classification"
    sizes = {name: len(part) for name, part in data.splits.items()}
    assert sum(sizes.values()) == 40 and sizes["train"] > sizes["validation"] > sizes["test"] > 0
    for part in data.splits.values():  # stratified: every class in every split
        assert set(part["label"]) == {0, 1, 2, 3}
    image = data.splits["test"][0]["image"]
    assert image.size == (32, 32)
    assert data.skipped == {"unreadable": 0, "no_face": 0}


def test_image_folder_with_validation_uses_it(tiny_manifest, tmp_path):
    root = make_image_folder(tmp_path / "field", per_class=10)
    make_image_folder(root, per_class=4, splits=("validation",), seed=1)
    data = load(tiny_manifest, "field", root, tmp_path)
    assert len(data.splits["validation"]) == 16          # the folder's own, untouched
    assert len(data.splits["train"]) + len(data.splits["test"]) == 40


def test_seed_layout_index_csv(tiny_manifest, tmp_path):
    root = tmp_path / "seed"
    root.mkdir()
    rng = np.random.default_rng(0)
    lines = ["id,category,name"]
    for label, colour in zip(FIELD_LABELS, COLOURS):
        for i in range(8):
            ident = f"{label}{i:03d}"
            _face(colour, rng).save(root / f"{ident}.jpg")
            lines.append(f"{ident},{label},Person {ident}")
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    data = load(tiny_manifest, "field", root, tmp_path)
    assert data.labels == list(FIELD_LABELS)
    assert sum(len(part) for part in data.splits.values()) == 32


def test_parquet_regression_keeps_group_columns(tiny_manifest, tmp_path):
    data = load(tiny_manifest, "age", make_age_parquet(tmp_path / "age"), tmp_path)
    assert data.kind == "regression" and data.labels == ["years"]
    assert data.groups == ["gender", "race"]
    test = data.splits["test"]
    assert {"image", "label", "gender", "race"} <= set(test.column_names)
    assert all(20 <= v < 50 for v in test["label"])


# --- bad data ---------------------------------------------------------------------------------------

def test_corrupt_files_are_skipped_and_counted(tiny_manifest, tmp_path):
    root = make_image_folder(tmp_path / "field")
    (root / "train" / "cs" / "notes.jpg").write_text("this is text, not a JPEG")
    whole = (root / "train" / "econ" / "econ_0.jpg").read_bytes()
    (root / "train" / "econ" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (root / "train" / "german" / "empty.jpg").write_bytes(b"")
    data = load(tiny_manifest, "field", root, tmp_path)
    assert data.skipped["unreadable"] == 3
    assert sum(len(part) for part in data.splits.values()) == 40


def test_class_with_too_few_images_is_named(tiny_manifest, tmp_path):
    from finetune.data import DataError

    root = make_image_folder(tmp_path / "field", labels=FIELD_LABELS[:3])
    make_image_folder(root, labels=("mechanical",), per_class=2)
    with pytest.raises(DataError, match="mechanical"):
        load(tiny_manifest, "field", root, tmp_path)


def test_one_class_only_is_refused(tiny_manifest, tmp_path):
    from finetune.data import DataError

    root = make_image_folder(tmp_path / "field", labels=("cs",))
    with pytest.raises(DataError, match="one class"):
        load(tiny_manifest, "field", root, tmp_path)


def test_missing_column_is_named(tiny_manifest, tmp_path):
    from finetune.data import DataError

    root = make_age_parquet(tmp_path / "age", with_gender=False)
    with pytest.raises(DataError, match="'gender'"):
        load(tiny_manifest, "gender", root, tmp_path)  # the gender task's label column is missing
    with pytest.raises(DataError, match="'years_old'"):
        load(tiny_manifest, "age", root, tmp_path, label_column="years_old")


def test_missing_source_is_a_data_error(tiny_manifest, tmp_path):
    from finetune.data import DataError

    with pytest.raises(DataError, match="no such file"):
        load(tiny_manifest, "field", tmp_path / "nowhere", tmp_path)


def test_face_detection_crops_and_logs_images_without_a_face(tiny_manifest, tmp_path, astronaut):
    """MTCNN (the app's detector) crops photos; one without a face is skipped and named in the log."""
    root = tmp_path / "photos"
    small = astronaut.resize((256, 256))
    for label, flip in (("cs", False), ("econ", True)):
        folder = root / "train" / label
        folder.mkdir(parents=True)
        for i in range(6):
            photo = small.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else small
            photo.rotate(3 * i - 6).save(folder / f"{label}_{i}.jpg")
    _face((90, 90, 90), np.random.default_rng(0), size=128).save(root / "train" / "cs" / "wall.jpg")
    data = load(tiny_manifest, "field", root, tmp_path, detect_faces=True)
    assert data.skipped == {"unreadable": 0, "no_face": 1}
    assert len(data.no_face) == 1 and data.no_face[0].endswith("wall.jpg")
    assert sum(len(part) for part in data.splits.values()) == 12
    assert data.splits["train"][0]["image"].size == (32, 32)


@needs_shared_data("utkface")
@pytest.mark.data
def test_utkface_gender_groups_and_age_buckets(tiny_manifest, tmp_path):
    from conftest import SHARED_DATA

    from finetune.metrics import group_metrics

    data = load(tiny_manifest, "gender", SHARED_DATA / "utkface", tmp_path, max_samples=60)
    assert data.labels == ["female", "male"] and data.groups == ["race", "age"]
    test = data.splits["test"]
    tables = group_metrics(test, data.groups, "classification", np.ones(len(test)), tiny_manifest.age_bands)
    assert set(tables["race"]) <= {"white", "black", "asian", "indian", "other"}
    assert set(tables["age"]) <= {band.name for band in tiny_manifest.task("age").bands}
    assert sum(row["n"] for row in tables["age"].values()) == len(test)
