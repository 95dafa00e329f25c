"""The manifest's Hub datasets, without the network: local folders laid out like each Hub repo stand in
for it. Only the Hub lookup is replaced (repo id and revision -> folder); `datasets` reads each folder
with its own file-name rules (split names from data/<split>-00000-of-00001-*.parquet, features from the
parquet files), and everything after that is the code a Hub id goes through."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

FER = "Aaryan333/fer2013_train_publicTest_privateTest"
FER_REVISION = "435bbcb3c98581134be1b9db3f4c2b7e9a3a5faa"
FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]   # FER2013's own ids 0-6
# the three files of the pinned commit, as the Hub lists them
FER_FILES = {"train": "data/train-00000-of-00001-5eab84e1c6a2fc27.parquet",
             "publicTest": "data/publicTest-00000-of-00001-f41bb7384b8aad6e.parquet",
             "privateTest": "data/privateTest-00000-of-00001-4b8a0715cf1b7560.parquet"}
UTK = "nu-delta/utkface"
SCRIPT = "Jeneral/fer-2013"


def _png(value: int, size: int = 48, mode: str = "L") -> bytes:
    rng = np.random.default_rng(value)
    pixels = np.clip(value + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, columns: dict, features: dict) -> None:
    from datasets import Dataset, Features

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=Features(features)).to_parquet(str(path))


def fer_copy(root: Path, per_id=(3, 3, 4, 5, 6, 7, 8), label_feature=None) -> Path:
    """Aaryan333's layout: image (image) and label (integer ids in FER2013's order), three split files.
    Id k has per_id[k] training faces, so where each id ends up can be counted."""
    from datasets import Image as ImageFeature, Value

    for split, name in FER_FILES.items():
        counts = per_id if split == "train" else (1,) * 7
        ids = [k for k, n in enumerate(counts) for _ in range(n)]
        _write(root / name, {"image": [{"bytes": _png(30 * k), "path": None} for k in ids], "label": ids},
               {"image": ImageFeature(), "label": label_feature or Value("int64")})
    return root


def utk_copy(root: Path, rows: int = 30) -> Path:
    """nu-delta/utkface's columns: image, age (integer), gender (Male/Female), ethnicity (strings)."""
    from datasets import Image as ImageFeature, Value

    ethnicities = ["White", "Black", "Asian", "Indian", "Others"]
    columns = {"image": [{"bytes": _png(20 + 5 * i, 200, "RGB"), "path": None} for i in range(rows)],
               "age": [(5, 25, 45, 75)[i % 4] + i % 3 for i in range(rows)],
               "gender": [("Male", "Female")[i % 2] for i in range(rows)],
               "ethnicity": [ethnicities[i % 5] for i in range(rows)]}
    _write(root / "data" / "train-00000-of-00001.parquet", columns,
           {"image": ImageFeature(), "age": Value("int64"), "gender": Value("string"),
            "ethnicity": Value("string")})
    return root


def script_copy(root: Path) -> Path:
    """Jeneral/fer-2013 at main: a loading script beside pickles."""
    root.mkdir(parents=True)
    (root / "fer-2013.py").write_text("import datasets  # a loading script\n")
    (root / "train.pt").write_bytes(b"\x80\x04N.")
    return root


def parquet_conversion(root: Path) -> Path:
    """The Hub's refs/convert/parquet of that script: default/<split>/0000.parquet, the script's columns."""
    from datasets import ClassLabel, Value

    names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for split, per_class in (("train", 8), ("test", 1)):
        ids = [k for k in range(7) for _ in range(per_class)]
        _write(root / "default" / split / "0000.parquet",
               {"img_bytes": [_png(30 * k) for k in ids], "labels": ids},
               {"img_bytes": Value("binary"), "labels": ClassLabel(names=names)})
    return root


@pytest.fixture
def hub(monkeypatch):
    """Replaces the Hub lookup only: (repo, revision) -> a local folder that `datasets` then reads."""
    import datasets

    from finetune import hub_datasets

    repos, calls = {}, []

    def load_dataset(path, name=None, revision=None, **kwargs):
        calls.append((path, revision))
        if (path, revision) not in repos:
            raise FileNotFoundError(f"Revision '{revision}' doesn't exist for dataset '{path}' on the Hub.")
        return datasets.load_dataset(str(repos[path, revision]), name, **kwargs)

    monkeypatch.setattr(hub_datasets, "load_dataset", load_dataset)
    return repos, calls


def hub_task(manifest, name: str, tmp_path: Path):
    """The manifest's task as a user's clone has it: no local copy of the data."""
    task = manifest.task(name)
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, path=str(tmp_path / "absent")))


def load(task, tmp_path, source=None, **options):
    """The task's data, with the settings training resolves (the task as given: no local copy)."""
    from finetune.config import make_config
    from finetune.data import load_task_data
    from finetune.settings import resolve_data
    from hub.config import load_manifest

    values = {"task": task.name, "data": source, "input_size": 32, "detect_faces": False,
              "cache_dir": str(tmp_path / "cache"), **options}
    return load_task_data(resolve_data(make_config(values), load_manifest(), task=task))


def counts(data) -> dict[str, int]:
    labels = [data.labels[i] for part in data.splits.values() for i in part["label"]]
    return {name: labels.count(name) for name in data.labels}


# --- where the data comes from ------------------------------------------------------------------

def test_default_source_is_the_local_copy_else_the_pinned_hub_dataset(tiny_manifest, tmp_path):
    from finetune.hub_datasets import default_source, is_hub_id, split_revision

    spec = tiny_manifest.task("mood").dataset
    assert spec.id == FER and spec.revision == FER_REVISION
    absent = dataclasses.replace(spec, path=str(tmp_path / "absent"))
    assert default_source(absent) == f"{FER}@{FER_REVISION}"
    (tmp_path / "fer2013").mkdir()
    assert default_source(dataclasses.replace(spec, path=str(tmp_path / "fer2013"))) == str(tmp_path / "fer2013")
    assert default_source(spec, root=tmp_path / "manifest") == f"{FER}@{FER_REVISION}"  # relative to the root
    field = tiny_manifest.task("field").dataset   # local only: its folder, even when missing
    assert default_source(field) == field.path
    assert split_revision(f"{FER}@{FER_REVISION}") == (FER, FER_REVISION) and split_revision(UTK) == (UTK, None)
    assert is_hub_id(UTK) and is_hub_id(f"{FER}@refs/convert/parquet")
    assert not is_hub_id(str(tmp_path)) and not is_hub_id("data/field/train") and not is_hub_id("fer2013")


# --- the chosen datasets ------------------------------------------------------------------------

def test_fer_copy_loads_with_its_official_splits_and_its_own_label_order(tiny_manifest, hub, tmp_path):
    repos, calls = hub
    repos[FER, FER_REVISION] = fer_copy(tmp_path / "fer")
    data = load(hub_task(tiny_manifest, "mood", tmp_path), tmp_path)
    assert calls == [(FER, FER_REVISION)]                       # the pinned revision, and only it
    assert data.labels == list(tiny_manifest.task("mood").labels)
    assert {name: len(part) for name, part in data.splits.items()} == {"train": 36, "validation": 7, "test": 7}
    # FER2013's id 4 is sad, 5 surprise, 6 neutral: read in manifest order they would be neutral, sad, surprise
    per_id = dict(zip(FER_ORDER, (3, 3, 4, 5, 6, 7, 8)))
    assert counts(data) == {name: per_id[name] + 2 for name in data.labels}
    assert data.splits["train"][0]["image"].size == (32, 32)


def test_class_names_in_the_data_are_overridden_by_the_manifests_label_names(tiny_manifest, hub, tmp_path,
                                                                                capsys):
    """If the copy declares alphabetical class names over FER2013's ids, the manifest's label_names win."""
    from datasets import ClassLabel

    repos, _ = hub
    alphabetical = ClassLabel(names=sorted(FER_ORDER))
    repos[FER, FER_REVISION] = fer_copy(tmp_path / "fer", label_feature=alphabetical)
    data = load(hub_task(tiny_manifest, "mood", tmp_path), tmp_path)
    assert counts(data)["neutral"] == 8 + 2 and counts(data)["sad"] == 6 + 2
    assert "label_names" in capsys.readouterr().out


def test_utkface_copy_gender_names_match_the_manifest_and_groups_are_kept(tiny_manifest, hub, tmp_path):
    repos, calls = hub
    repos[UTK, None] = utk_copy(tmp_path / "utk")
    gender = load(hub_task(tiny_manifest, "gender", tmp_path), tmp_path)
    assert calls == [(UTK, None)]
    assert gender.labels == ["female", "male"]                # the data says Female/Male
    assert counts(gender) == {"female": 15, "male": 15}
    assert gender.groups == ["ethnicity", "age"]               # race is the local share's name for it
    sizes = [len(gender.splits[name]) for name in ("train", "validation", "test")]
    assert sum(sizes) == 30 and sizes[0] > sizes[1] > sizes[2] > 0   # one train split: cut 70/20/10
    age = load(hub_task(tiny_manifest, "age", tmp_path), tmp_path)
    assert age.kind == "regression" and age.labels == ["years"] and age.groups == ["gender", "ethnicity"]
    ages = sorted(v for part in age.splits.values() for v in part["label"])
    assert ages[0] == 5.0 and ages[-1] == 77.0 and len(ages) == 30


# --- the checks on any Hub dataset --------------------------------------------------------------

def test_integer_labels_without_names_take_the_manifest_order(tiny_manifest, hub, tmp_path, capsys):
    """Another Hub dataset (--data ORG/NAME): the manifest's label_names are for its own dataset only."""
    repos, _ = hub
    per_id = (10, 11, 12, 13, 14, 15, 16)
    repos["someone/fer-ids", None] = fer_copy(tmp_path / "ids", per_id=per_id)
    data = load(hub_task(tiny_manifest, "mood", tmp_path), tmp_path, source="someone/fer-ids")
    assert counts(data) == dict(zip(tiny_manifest.task("mood").labels, per_id))  # its train split, cut 70/20/10
    out = capsys.readouterr().out
    assert "reading them as the manifest's labels in order" in out
    assert "splits not used: privateTest, publicTest" in out    # its split names are not mapped


def test_integer_ids_beyond_the_known_names_are_refused(tiny_manifest, hub, tmp_path):
    from finetune.data import DataError

    repos, _ = hub
    repos["someone/ten", None] = fer_copy(tmp_path / "ten", per_id=(3,) * 10)
    with pytest.raises(DataError, match=r"ids 0\.\.9 but only 7 class names.*--label-column"):
        load(hub_task(tiny_manifest, "mood", tmp_path), tmp_path, source="someone/ten")


@pytest.mark.parametrize("task, flags, message", [
    ("mood", {}, r"no image column 'image'; no label column 'label'\. The data has: picture \(image\), "
                 r"emotion \(int64\), note \(string\)\. Choose other columns with --image-column and --label-column"),
    ("mood", {"image_column": "note", "label_column": "emotion"}, r"the image column 'note' holds string"),
    ("age", {"image_column": "picture", "label_column": "note"}, r"the label column 'note' holds string, not numbers"),
])
def test_wrong_columns_name_what_the_data_has_and_the_flags(tiny_manifest, hub, tmp_path, task, flags, message):
    from datasets import Image as ImageFeature, Value

    from finetune.data import DataError

    repos, _ = hub
    root = tmp_path / "other"
    _write(root / "data" / "train-00000-of-00001.parquet",
           {"picture": [{"bytes": _png(9), "path": None}] * 3, "emotion": [0, 1, 2], "note": ["a", "b", "c"]},
           {"picture": ImageFeature(), "emotion": Value("int64"), "note": Value("string")})
    repos["someone/other", None] = root
    with pytest.raises(DataError, match=message):
        load(hub_task(tiny_manifest, task, tmp_path), tmp_path, source="someone/other", **flags)


# --- script datasets ----------------------------------------------------------------------------

def test_script_dataset_is_read_from_its_parquet_conversion(tiny_manifest, hub, tmp_path, capsys):
    from finetune.data import DataError

    repos, calls = hub
    repos[SCRIPT, None] = script_copy(tmp_path / "fer-2013")
    repos[SCRIPT, "refs/convert/parquet"] = parquet_conversion(tmp_path / "converted")
    task = hub_task(tiny_manifest, "mood", tmp_path)
    with pytest.raises(DataError, match=r"no image column 'image'.*img_bytes \(binary\), labels \(class label: "
                                        r"angry, .*--image-column and --label-column"):
        load(task, tmp_path, source=SCRIPT)
    assert calls == [(SCRIPT, None), (SCRIPT, "refs/convert/parquet")]
    assert "script dataset (fer-2013.py)" in capsys.readouterr().out
    data = load(task, tmp_path, source=SCRIPT, image_column="img_bytes", label_column="labels")
    assert data.labels == list(task.labels) and counts(data) == {name: 9 for name in task.labels}
    assert data.splits["train"][0]["image"].size == (32, 32)   # binary image bytes decode like images


def test_script_dataset_without_a_conversion_names_the_way_out(tiny_manifest, hub, tmp_path, capsys):
    from finetune.__main__ import main

    repos, calls = hub
    repos[SCRIPT, None] = script_copy(tmp_path / "fer-2013")
    assert main(["--task", "mood", "--data", SCRIPT, "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {SCRIPT} is a script dataset (fer-2013.py)")
    assert "refs/convert/parquet" in err and f"--data {SCRIPT}@refs/convert/parquet" in err
    assert "Traceback" not in err and "Error:" not in err
    assert calls == [(SCRIPT, None), (SCRIPT, "refs/convert/parquet")]


def test_unreachable_hub_is_a_plain_message(tiny_manifest, tmp_path):
    """The real lookup, offline (the tests run with HF_HUB_OFFLINE=1) and not in the cache."""
    from finetune.data import DataError

    with pytest.raises(DataError, match="nobody-here/no-such-faces: the Hugging Face Hub could not be reached"):
        load(hub_task(tiny_manifest, "mood", tmp_path), tmp_path, source="nobody-here/no-such-faces")


def test_manifest_split_names_are_checked(tmp_path):
    from hub.config import DEFAULT_MANIFEST, ManifestError, read_manifest

    raw = yaml.safe_load(DEFAULT_MANIFEST.read_text())
    raw["tasks"]["mood"]["dataset"]["splits"] = {"holdout": "privateTest"}
    path = tmp_path / "spaces.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ManifestError, match="tasks.mood.dataset.splits.holdout: must be train, validation or test"):
        read_manifest(path)


# --- the headline command -----------------------------------------------------------------------

def test_finetune_task_mood_without_data_trains_on_the_hub_dataset(tiny_manifest_path, hub, tmp_path):
    """`python -m finetune --task mood` on a clone without ../shared: the manifest's pinned Hub copy."""
    from finetune.__main__ import main

    repos, calls = hub
    repos[FER, FER_REVISION] = fer_copy(tmp_path / "fer")
    raw = yaml.safe_load(tiny_manifest_path.read_text())
    raw["tasks"]["mood"]["dataset"]["path"] = str(tmp_path / "absent")
    manifest = tmp_path / "spaces.yaml"
    manifest.write_text(yaml.safe_dump(raw))
    output = tmp_path / "mood"
    assert main(["--task", "mood", "--manifest", str(manifest), "--output", str(output), "--model", "test_vit",
                 "--no-pretrained", "--input-size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
                 "--no-progress", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert calls and set(calls) == {(FER, FER_REVISION)}
    config = yaml.safe_load((output / "train_config.yaml").read_text())
    assert config["data"] == f"{FER}@{FER_REVISION}"           # the run says what it trained on
    import json
    assert json.loads((output / "config.json").read_text())["label_names"] == raw["tasks"]["mood"]["labels"]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test"]["n"] == 7                            # FER2013's PrivateTest stand-in
    assert f"https://huggingface.co/datasets/{FER}" in (output / "README.md").read_text()
