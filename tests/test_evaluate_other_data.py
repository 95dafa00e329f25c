"""`python -m finetune evaluate` on data from elsewhere: class names mapped (--label-map), classes the model
does not know dropped with a note, and data lacking some of the model's classes measured over those present."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_finetune_data import make_image_folder

CK_LIKE = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")  # CK+'s folder names
CK_MAP = ["anger=angry", "happiness=happy", "sadness=sad"]


@pytest.fixture(scope="module")
def ck_like(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("ck") / "ck", labels=CK_LIKE, per_class=10)


def evaluate(tiny_manifest_path, tmp_path, data, *flags: str) -> int:
    from finetune.__main__ import main

    return main(["evaluate", str(tiny_manifest_path.parent / "models" / "mood"), "--task", "mood",
                 "--data", str(data), "--no-detect-faces", "--manifest", str(tiny_manifest_path),
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), *flags])


def test_ck_like_folder_with_a_label_map_on_every_row(ck_like, tiny_manifest_path, tmp_path, capsys):
    assert evaluate(tiny_manifest_path, tmp_path, ck_like, "--split", "all", "--label-map", *CK_MAP) == 0
    printed = capsys.readouterr().out
    assert "[labels] anger -> angry, happiness -> happy, sadness -> sad" in printed
    assert "[labels] dropped 10 face(s) of class(es) the model does not know: contempt (10)" in printed
    assert "no faces of neutral in this data: macro-F1 is over the 6 classes present; accuracy over all 60" \
        in printed

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    test = metrics["test"]
    assert metrics["split"] == "all" and test["n"] == 60 == metrics["data"]["rows"]
    assert test["classes_without_data"] == ["neutral"]
    assert metrics["data"]["labels"]["dropped"] == {"contempt": 10}
    assert metrics["data"]["labels"]["mapped"] == {"anger": "angry", "happiness": "happy", "sadness": "sad"}
    support = {name: row["support"] for name, row in test["per_class"].items()}
    assert support == {"angry": 10, "disgust": 10, "fear": 10, "happy": 10, "neutral": 0, "sad": 10, "surprise": 10}
    assert test["per_class"]["neutral"]["recall"] is None and test["per_class"]["neutral"]["f1"] is None
    present = [row["f1"] for name, row in test["per_class"].items() if name != "neutral"]
    assert test["macro_f1"] == pytest.approx(np.mean(present))  # not dragged down by the class without faces
    matrix = np.array(test["confusion_matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == 60 and matrix[4].sum() == 0
    # accuracy over every face, the predictions of the absent class counting as mistakes
    assert test["accuracy"] == pytest.approx(np.trace(matrix) / 60)
    for name in ("confusion_matrix.png", "reliability.png", "gallery_confident_mistakes.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_held_out_split_of_data_with_other_classes(ck_like, tiny_manifest_path, tmp_path, capsys):
    # no map: the classes whose names the model does not share are dropped, not refused
    assert evaluate(tiny_manifest_path, tmp_path, ck_like) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    dropped = metrics["data"]["labels"]["dropped"]
    assert list(dropped) == ["anger", "contempt", "happiness", "sadness"]  # the held-out split has each class
    assert f"dropped {sum(dropped.values())} face(s) of class(es) the model does not know: anger (" in printed
    assert metrics["split"] == "test" and metrics["test"]["classes_without_data"] == ["angry", "happy", "neutral",
                                                                                       "sad"]
    assert metrics["test"]["n"] == sum(row["support"] for row in metrics["test"]["per_class"].values()) >= 3


def test_one_class_data_on_every_row(tiny_manifest_path, tmp_path, capsys):
    smiles = make_image_folder(tmp_path / "smiles", labels=("happiness",), per_class=5)
    assert evaluate(tiny_manifest_path, tmp_path, smiles, "--split", "all", "--label-map", "happiness=happy") == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["test"]["n"] == 5 and len(metrics["test"]["classes_without_data"]) == 6
    assert metrics["test"]["macro_f1"] == pytest.approx(metrics["test"]["per_class"]["happy"]["f1"])


@pytest.mark.parametrize("flags, says", [
    (["--label-map", "anger=angy"], "the model has no class angy"),
    (["--label-map", "anger"], "expected DATA=MODEL pairs"),
    (["--label-map", "contempt=fear", "anger=fear", "disgust=fear", "happiness=fear", "sadness=fear",
      "surprise=fear", "fear=x"], "the model has no class x"),
])
def test_label_map_mistakes_are_named(ck_like, tiny_manifest_path, tmp_path, capsys, flags, says):
    assert evaluate(tiny_manifest_path, tmp_path, ck_like, "--split", "all", *flags) == 2
    assert says in capsys.readouterr().err


def test_data_with_none_of_the_models_classes(tiny_manifest_path, tmp_path, capsys):
    other = make_image_folder(tmp_path / "other", labels=("cats", "dogs"), per_class=4)
    assert evaluate(tiny_manifest_path, tmp_path, other, "--split", "all") == 2
    assert "none of the data's classes (cats, dogs) is one of the model's" in capsys.readouterr().err
