"""Checkpoints: tiny `test_vit` folders load through timm and transformers alike; pickles, label
mismatches and missing models fail the way the app expects."""
import dataclasses

import pytest
import torch
from PIL import Image

from conftest import write_tiny_model
from hub.config import Manifest
from hub.models import (AgePrediction, AttributeModel, ClassPrediction, ModelMismatch, ModelStore,
                        ModelUnavailable, read_model_config)


@pytest.fixture(scope="module")
def store(tiny_manifest):
    return ModelStore(tiny_manifest)


@pytest.fixture(scope="module")
def crops(astronaut):
    return [astronaut.crop((170, 50, 280, 180)), astronaut.crop((0, 300, 200, 500)), astronaut]


def with_task(manifest: Manifest, name: str, **changes) -> Manifest:
    """The manifest with one task changed, everything else shared."""
    tasks = dict(manifest.tasks)
    tasks[name] = dataclasses.replace(tasks[name], **changes)
    return dataclasses.replace(manifest, tasks=tasks)


def predict_counting_forwards(model, crops):
    """The model's predictions, and how many forward passes its net made for them."""
    calls = []
    handle = model.net.register_forward_hook(lambda *args: calls.append(1))
    try:
        return model.predict(crops), len(calls)
    finally:
        handle.remove()


def test_classifier_predicts_all_crops_in_one_forward(store, crops):
    model = store.get("gender")
    assert store.get("gender") is model  # loaded once
    predictions, forwards = predict_counting_forwards(model, crops)
    assert forwards == 1 and len(predictions) == 3
    for prediction in predictions:
        assert isinstance(prediction, ClassPrediction)
        assert list(prediction.probs) == ["female", "male"]
        assert sum(prediction.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.confidence == max(prediction.probs.values())
    assert model.predict([]) == []


def test_uncertain_below_the_threshold(tiny_manifest, crops):
    always = ModelStore(with_task(tiny_manifest, "mood", uncertain_below=1.0)).get("mood")
    never = ModelStore(with_task(tiny_manifest, "mood", uncertain_below=0.0)).get("mood")
    sure, unsure = never.predict(crops[:1])[0], always.predict(crops[:1])[0]
    assert unsure.uncertain and unsure.label == "uncertain"
    assert not sure.uncertain and sure.label == max(sure.probs, key=sure.probs.get)
    assert unsure.as_dict()["probs"] == {k: round(v, 4) for k, v in sure.probs.items()}


def test_age_has_interval_and_band(store, crops, tiny_manifest):
    for prediction in store.get("age").predict(crops):
        assert isinstance(prediction, AgePrediction)
        assert prediction.years >= 0 and prediction.low <= prediction.years <= prediction.high
        assert prediction.high - prediction.years == pytest.approx(6.0)  # age_interval of the tiny model
        assert prediction.band == tiny_manifest.task("age").band_for(prediction.years)


def test_transformers_pipeline_agrees_with_attribute_model(tiny_manifest, store, crops):
    from transformers import pipeline

    folder = tiny_manifest.resolve(tiny_manifest.task("mood").models[0])
    classifier = pipeline("image-classification", model=folder, device="cpu")
    model = store.get("mood")
    ours = dict(zip(model.labels, torch.softmax(model.net(model.batch(crops[:1])), -1)[0].tolist()))
    theirs = {row["label"]: row["score"] for row in classifier(crops[0], top_k=len(model.labels))}
    assert max(theirs, key=theirs.get) == max(ours, key=ours.get)
    assert theirs == pytest.approx(ours, abs=1e-3)


def test_missing_model_says_how_to_train(store):
    with pytest.raises(ModelUnavailable, match=r"python -m finetune --task field") as err:
        store.get("field")
    # fields, not text to take apart: advice for users, what was tried for the owner
    assert err.value.task == "field" and "python -m finetune recipe field" in err.value.advice
    assert "Tried" not in err.value.advice and len(err.value.tried) == 1 and "missing" in err.value.tried[0]
    assert str(err.value) == err.value.advice + " Tried: " + err.value.tried[0]
    assert not store.available("field") and store.available("gender")


def test_hub_location_fails_offline_and_falls_through(tiny_manifest, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local = tiny_manifest.task("gender").models[0]
    manifest = with_task(tiny_manifest, "gender", models=("hf-hub:nobody/no-such-model", local))
    assert ModelStore(manifest).get("gender").source.endswith("gender")
    only_hub = with_task(tiny_manifest, "gender", models=("hf-hub:nobody/no-such-model",))
    with pytest.raises(ModelUnavailable, match="hf-hub:nobody/no-such-model"):
        ModelStore(only_hub).get("gender")


def test_pickle_checkpoint_is_refused_unopened(tmp_path, tiny_manifest, monkeypatch):
    folder = write_tiny_model(tmp_path / "pickled", ["female", "male"])
    weights = folder / "model.safetensors"
    torch.save({"state_dict": {}}, folder / "pytorch_model.bin")
    weights.unlink()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was unpickled"))
    with pytest.raises(ValueError, match="pickle"):
        read_model_config(folder)
    with pytest.raises(ModelUnavailable, match="pickle"):
        ModelStore(with_task(tiny_manifest, "gender", models=(str(folder),))).get("gender")


def test_label_mismatch_with_the_manifest_raises(tmp_path, tiny_manifest):
    swapped = write_tiny_model(tmp_path / "swapped", ["male", "female"])
    with pytest.raises(ModelMismatch, match=r"tasks.gender.labels"):
        ModelStore(with_task(tiny_manifest, "gender", models=(str(swapped),))).get("gender")
    regression = write_tiny_model(tmp_path / "one_output", ["female", "male"], regression=True)
    with pytest.raises(ModelMismatch, match="1 outputs"):
        AttributeModel.load(tiny_manifest.task("gender"), str(regression))


def test_crops_of_any_size_go_through_the_transform(store):
    model = store.get("gender")
    batch = model.batch([Image.new("RGB", (7, 300)), Image.new("RGB", (500, 500))])
    assert tuple(batch.shape) == (2, 3, model.input_size, model.input_size)


def test_test_time_flip_averages_with_the_mirror_in_one_forward(tmp_path, tiny_manifest, crops):
    """A model saved with test_time_flip (as finetune saves them) averages each crop's logits with
    its mirror image's, in the same single forward pass."""
    import json

    folder = write_tiny_model(tmp_path / "flip", ["female", "male"], seed=3)
    plain = AttributeModel.load(tiny_manifest.task("gender"), str(folder))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "test_time_flip": True}))
    flipped = AttributeModel.load(tiny_manifest.task("gender"), str(folder))
    assert flipped.flip and not plain.flip

    batch = plain.batch(crops)
    with torch.inference_mode():
        expected = torch.softmax((plain.net(batch) + plain.net(batch.flip(-1))) / 2, dim=-1)
    predictions, forwards = predict_counting_forwards(flipped, crops)
    assert forwards == 1
    for prediction, row in zip(predictions, expected):
        assert list(prediction.probs.values()) == pytest.approx(row.tolist(), abs=1e-5)
    mirrored = flipped.predict([crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for crop in crops])
    for a, b in zip(predictions, mirrored):  # a mirrored face gets the same answer
        assert list(a.probs.values()) == pytest.approx(list(b.probs.values()), abs=1e-4)
