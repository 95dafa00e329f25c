"""Fine-tuning end to end on tiny synthetic data (test_vit, 32 px, CPU, offline): the model folder it writes
loads in the app, its metrics, figures and card; `evaluate`; resume; calibration maths; push-to-hub.
Recipes and the resolved settings: tests/test_recipe.py, tests/test_settings.py."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_finetune_data import FIELD_LABELS, make_age_parquet, make_image_folder

FIGURES = {"classification": ["confusion_matrix.png", "reliability.png", "gallery_confident_mistakes.png",
                              "gallery_ambiguous.png"],
           "regression": ["age_scatter.png", "gallery_largest_errors.png"]}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train(manifest: Path, task: str, data: Path, output: Path, *extra: str) -> int:
    from finetune.__main__ import main

    return main(["--task", task, "--data", str(data), "--manifest", str(manifest), "--output", str(output),
                 "--model", "test_vit", "--no-pretrained", "--input-size", "32", "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--no-detect-faces", "--no-progress",
                 "--cache-dir", str(output.parent / "cache"), *extra])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def field_data(work) -> Path:
    return make_image_folder(work / "field-data")


@pytest.fixture(scope="module")
def age_data(work) -> Path:
    return make_age_parquet(work / "age-data")


@pytest.fixture(scope="module")
def field_model(tiny_manifest_path, work, field_data) -> Path:
    output = work / "models" / "field"
    assert train(tiny_manifest_path, "field", field_data, output) == 0
    return output


@pytest.fixture(scope="module")
def age_model(tiny_manifest_path, work, age_data) -> Path:
    output = work / "models" / "age"
    assert train(tiny_manifest_path, "age", age_data, output) == 0
    return output


def manifest_serving(tiny_manifest_path: Path, folder: Path, task: str, where: Path) -> Path:
    raw = yaml.safe_load(tiny_manifest_path.read_text())
    raw["tasks"][task]["models"] = [str(folder)]
    path = where / f"spaces-{task}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


# --- the model folder -------------------------------------------------------------------------------

def test_classification_folder(field_model, tiny_manifest, tiny_manifest_path, tmp_path):
    from huggingface_hub import ModelCard
    from PIL import Image

    from hub.config import read_manifest
    from hub.models import AttributeModel, ModelStore

    for name in ["model.safetensors", "config.json", "metrics.json", "train_config.yaml", "no_face.log",
                 "README.md", *FIGURES["classification"]]:
        assert (field_model / name).is_file(), name
    assert not any(field_model.glob("*.pt")), "training state does not belong in the model folder"

    config = json.loads((field_model / "config.json").read_text())
    assert config["task"] == "field" and config["kind"] == "classification"
    assert config["label_names"] == list(FIELD_LABELS)
    assert 0.05 <= config["temperature"] <= 20
    assert set(config["metrics"]) >= {"test_accuracy", "test_macro_f1", "test_ece", "test_samples"}
    assert config["test_time_flip"] is True  # measured with the mirror averaging the app then applies

    metrics = json.loads((field_model / "metrics.json").read_text())
    test = metrics["test"]
    assert test["n"] == metrics["data"]["sizes"]["test"] > 0
    assert 0.0 <= test["accuracy"] <= 1.0 and 0.0 <= test["macro_f1"] <= 1.0
    assert set(test["per_class"]) == set(FIELD_LABELS)
    assert sum(row["support"] for row in test["per_class"].values()) == test["n"]
    assert sum(row["predicted"] for row in test["class_distribution"].values()) == test["n"]
    assert {"ece", "ece_uncalibrated", "nll", "nll_uncalibrated", "temperature"} <= set(test)
    assert math.isfinite(test["nll"]) and math.isfinite(test["ece"])
    assert np.array(test["confusion_matrix"]).sum() == test["n"]
    assert metrics["calibration"]["temperature"] == config["temperature"]

    resolved = yaml.safe_load((field_model / "train_config.yaml").read_text())
    assert resolved["model"] == "test_vit" and resolved["input_size"] == 32 and resolved["task"] == "field"

    card = ModelCard.load(field_model / "README.md")
    assert card.data.library_name == "timm" and card.data.pipeline_tag == "image-classification"
    assert card.data.license == "other" and card.data.license_name == "unknown-training-data"
    assert card.data.eval_results and card.data.eval_results[0].metric_type == "accuracy"
    assert "Do not use it to judge anyone" in card.text  # the task's caveat
    assert "![confusion_matrix](confusion_matrix.png)" in card.text

    model = AttributeModel.load(tiny_manifest.task("field"), str(field_model))
    assert model.temperature == config["temperature"]
    crop = Image.new("RGB", (40, 40), (200, 40, 40))
    [prediction] = model.predict([crop])
    assert set(prediction.probs) == set(FIELD_LABELS)
    assert sum(prediction.probs.values()) == pytest.approx(1.0, abs=1e-4)

    store = ModelStore(read_manifest(manifest_serving(tiny_manifest_path, field_model, "field", tmp_path)))
    assert store.available("field") and store.get("field").labels == list(FIELD_LABELS)


def test_regression_folder(age_model, tiny_manifest, tiny_manifest_path, tmp_path):
    from PIL import Image

    from hub.config import read_manifest
    from hub.models import AttributeModel, ModelStore

    for name in ["model.safetensors", "config.json", "metrics.json", "README.md", *FIGURES["regression"]]:
        assert (age_model / name).is_file(), name
    config = json.loads((age_model / "config.json").read_text())
    interval = config["age_interval"]
    assert interval["low"] <= interval["high"] and interval["coverage"] == 0.8
    assert "temperature" not in config
    metrics = json.loads((age_model / "metrics.json").read_text())
    test = metrics["test"]
    assert test["mae"] >= 0 and test["rmse"] >= test["mae"]
    assert set(test["per_band"]) <= {"20-29", "30-39", "40-49"}
    assert sum(row["n"] for row in test["per_band"].values()) == test["n"]
    assert 0.0 <= test["interval"]["coverage"] <= 1.0
    assert set(metrics["groups"]) == {"gender", "race"}
    assert sum(row["n"] for row in metrics["groups"]["gender"].values()) == test["n"]
    assert set(metrics["groups"]["gender"]) <= {"male", "female"}

    from huggingface_hub import ModelCard
    card = ModelCard.load(age_model / "README.md")
    assert [r.metric_type for r in card.data.eval_results] == ["mae", "rmse", "coverage"]
    assert "| 20-29 |" in card.text and "By gender" in card.text and "age_interval" in card.text

    model = AttributeModel.load(tiny_manifest.task("age"), str(age_model))
    [prediction] = model.predict([Image.new("RGB", (40, 40), (140, 105, 70))])
    assert prediction.high - prediction.years == pytest.approx(interval["high"], abs=1e-6)
    store = ModelStore(read_manifest(manifest_serving(tiny_manifest_path, age_model, "age", tmp_path)))
    assert store.available("age")


def test_evaluate_subcommand_matches_training(field_model, age_model, field_data, age_data, tiny_manifest_path,
                                              tmp_path, capsys):
    from finetune.__main__ import main

    common = ["--manifest", str(tiny_manifest_path), "--cache-dir", str(tmp_path / "cache")]
    assert main(["evaluate", str(field_model), "--data", str(field_data), "--out", str(tmp_path / "field"),
                 *common]) == 0
    printed = capsys.readouterr().out
    assert "[test] accuracy" in printed and "ECE" in printed
    ours = json.loads((tmp_path / "field" / "metrics.json").read_text())
    trained = json.loads((field_model / "metrics.json").read_text())
    # the same seed and fractions (read from train_config.yaml) give the same held-out split and numbers
    assert ours["test"]["n"] == trained["test"]["n"]
    assert ours["test"]["accuracy"] == pytest.approx(trained["test"]["accuracy"])
    assert ours["test"]["nll"] == pytest.approx(trained["test"]["nll"], rel=1e-4, abs=1e-6)
    for name in FIGURES["classification"]:
        assert (tmp_path / "field" / name).is_file()

    # default --out: MODEL_DIR/eval-<data name>; --split all measures every row
    assert main(["evaluate", str(age_model), "--data", str(age_data), "--split", "all", *common]) == 0
    out = age_model / "eval-age-data"
    every = json.loads((out / "metrics.json").read_text())
    assert every["split"] == "all" and every["test"]["n"] == 45
    assert "[all] MAE" in capsys.readouterr().out
    for name in FIGURES["regression"]:
        assert (out / name).is_file()


def test_the_final_figures_are_measured_on_the_weights_as_saved(tmp_path):
    """With save_dtype float16, the run measures the rounded weights: the figures are the shipped file's."""
    import torch
    from safetensors.torch import load_file, save_file

    from finetune.finish import as_saved
    from hub.models import store_weights_as

    torch.manual_seed(0)
    net, x = torch.nn.Linear(64, 2), torch.randn(32, 64)
    trained = net(x).detach()
    as_saved(net, None)
    assert torch.equal(net(x).detach(), trained)  # float32 runs are left alone
    as_saved(net, "float16")
    measured = net(x).detach()
    assert not torch.equal(measured, trained)  # float16 moved the outputs
    path = tmp_path / "model.safetensors"
    save_file(net.state_dict(), path)
    store_weights_as(path, "float16")
    shipped = torch.nn.Linear(64, 2)
    shipped.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    assert torch.equal(shipped(x).detach(), measured)  # exactly the model that was measured


def test_evaluate_needs_a_known_task(tmp_path, tiny_manifest_path):
    from conftest import write_tiny_model

    from finetune.__main__ import main

    folder = write_tiny_model(tmp_path / "model", ["a", "b"])  # config.json task: "classification"
    with pytest.raises(SystemExit, match="pass --task"):
        main(["evaluate", str(folder), "--data", str(tmp_path), "--manifest", str(tiny_manifest_path)])


# --- resume -------------------------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def test_resume_gives_the_same_state(tiny_manifest_path, field_data, tmp_path, monkeypatch):
    """2 epochs straight == 1 epoch, a crash, then --resume: python/numpy/torch RNG state is restored."""
    import torch

    from finetune import runstate

    def run(name: str, *extra: str) -> int:
        return train(tiny_manifest_path, "field", field_data, tmp_path / name, "--epochs", "2",
                     "--state-dir", str(tmp_path / f"state-{name}"), *extra)

    assert run("straight") == 0

    original = runstate.save_state

    def crash_after_first_epoch(path, **state):
        original(path, **state)
        if path.name == runstate.STATE_FILE:
            raise Interrupted

    monkeypatch.setattr(runstate, "save_state", crash_after_first_epoch)
    with pytest.raises(Interrupted):
        run("resumed")
    monkeypatch.setattr(runstate, "save_state", original)
    assert torch.load(tmp_path / "state-resumed" / "last.pt", weights_only=False)["epoch"] == 0
    assert run("resumed", "--resume") == 0

    straight = torch.load(tmp_path / "state-straight" / "last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "state-resumed" / "last.pt", weights_only=False)
    assert straight["epoch"] == resumed["epoch"] == 1 and straight["step"] == resumed["step"]
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    from safetensors.torch import load_file
    final_a = load_file(tmp_path / "straight" / "model.safetensors")
    final_b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


# --- calibration and metrics maths ------------------------------------------------------------------

def test_fit_temperature_recovers_a_known_temperature():
    from finetune.calibration import fit_temperature, nll, softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    true_probs = softmax(logits, 2.0)  # labels drawn as if the right temperature were 2
    targets = np.array([rng.choice(5, p=p) for p in true_probs])
    fitted = fit_temperature(logits, targets)
    assert fitted == pytest.approx(2.0, rel=0.1)
    assert nll(logits, targets, fitted) <= min(nll(logits, targets, t) for t in (1.0, 1.5, 2.5, 3.0))


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    from finetune.calibration import expected_calibration_error, softmax

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (5000, 3))
    probs = softmax(logits)
    targets = np.array([rng.choice(3, p=p) for p in probs])
    assert expected_calibration_error(probs, targets) < 0.03
    assert expected_calibration_error(softmax(logits, 0.2), targets) > 0.15


def test_age_interval_and_regression_metrics():
    from hub.config import AgeBand

    from finetune.calibration import fit_age_interval
    from finetune.metrics import regression_metrics

    rng = np.random.default_rng(2)
    true = rng.uniform(1, 80, 2000)
    predicted = true + rng.normal(1.0, 4.0, 2000)  # predicts a year too old on average
    interval = fit_age_interval(predicted, true)
    assert interval["low"] < 0 < interval["high"] and interval["coverage"] == 0.8
    assert interval["low"] == pytest.approx(-1.0 - 1.2816 * 4.0, abs=0.6)
    bands = (AgeBand("0-39", 0, 40), AgeBand("40+", 40, math.inf))
    metrics = regression_metrics(predicted[:, None], true, bands, interval)
    assert metrics["interval"]["coverage"] == pytest.approx(0.8, abs=0.03)
    assert metrics["bias"] == pytest.approx(1.0, abs=0.3)
    assert metrics["mae"] == pytest.approx(np.abs(np.maximum(predicted, 0) - true).mean())
    assert sum(band["n"] for band in metrics["per_band"].values()) == 2000


def test_group_metrics_bucket_ages(tiny_manifest):
    from datasets import ClassLabel, Dataset, Features, Value

    from finetune.metrics import group_metrics

    split = Dataset.from_dict({"age": [1, 5, 25, 27, 75], "race": [0, 1, 0, 1, 0]},
                              features=Features({"age": Value("int32"),
                                                 "race": ClassLabel(names=["white", "black"])}))
    correct = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    # the manifest's age bands (spaces.yaml tasks.age.bands), for an age column of any task's data
    tables = group_metrics(split, ["age", "race", "absent"], "classification", correct, tiny_manifest.age_bands)
    assert list(tables["age"]) == ["0-2", "3-9", "20-29", "70+"]
    assert tables["age"]["20-29"] == {"n": 2, "accuracy": 1.0}
    assert tables["race"]["black"] == {"n": 2, "accuracy": 0.5}
    assert "absent" not in tables
    # a manifest without an age task: decades, computed, not a copy of the bands
    decades = group_metrics(split, ["age"], "classification", correct, ())
    assert list(decades["age"]) == ["0-9", "20-29", "70-79"] and decades["age"]["0-9"]["n"] == 2


def test_group_tables_again_without_the_youngest_faces(tiny_manifest):
    """A group with many babies (UTKFace's asian faces) looks worse for gender than it is at any one age:
    `from_age` adds each group's table over the older faces only, after the plain tables."""
    from datasets import ClassLabel, Dataset, Features, Value

    from finetune.metrics import group_metrics

    split = Dataset.from_dict({"age": [1, 1, 2, 30, 40, 30, 40, None], "race": [1, 1, 1, 1, 1, 0, 0, 0]},
                              features=Features({"age": Value("int32"),
                                                 "race": ClassLabel(names=["white", "asian"])}))
    correct = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    targets = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    tables = group_metrics(split, ["race", "age"], "classification", correct, tiny_manifest.age_bands,
                           targets, ["female", "male"], from_age=13)
    assert list(tables) == ["race", "age", "race, aged 13+"]      # no "age, aged 13+": it would say nothing
    assert tables["race"]["asian"]["accuracy"] == pytest.approx(0.6)
    older = tables["race, aged 13+"]
    assert older["asian"] == {"n": 2, "accuracy": 1.0, "recall": {"female": 1.0, "male": 1.0}}
    assert older["white"]["n"] == 2                              # the face of unknown age is left out
    assert list(older)[-1] == "all" and older["all"]["n"] == 4 and older["all"]["accuracy"] == 0.75
    assert "race, aged 13+" not in group_metrics(split, ["race"], "classification", correct, ())
    regression = group_metrics(split, ["race"], "regression", np.arange(8.0), (), from_age=13)
    assert regression["race, aged 13+"]["asian"] == {"n": 2, "mae": 3.5, "bias": 3.5}
    assert regression["race, aged 13+"]["all"]["n"] == 4
    from finetune.card_tables import groups
    card = groups(tiny_manifest.task("gender"), {"groups": tables})
    assert card.index("By race:") < card.index("By race, faces aged 13 and over (groups hold different shares")


# --- card and push --------------------------------------------------------------------------------------

def settings_for(manifest, *flags: str):
    from finetune.config import parse_config
    from finetune.settings import resolve

    return resolve(parse_config(list(flags)), manifest)


@pytest.mark.parametrize("task, source, licence", [
    ("age", None, "utkface-non-commercial-research"),           # the manifest's dataset: its local copy
    ("gender", "nu-delta/utkface", "utkface-non-commercial-research"),  # ... or its Hub id
    ("mood", None, "fer2013-research"),
    ("mood", "/data/my-faces", "unknown-training-data"),        # other data: the terms of its images
    ("field", "data/field", "unknown-training-data"),
])
def test_card_licence_follows_the_data(tiny_manifest, task, source, licence):
    from finetune.card import data_terms

    terms = data_terms(settings_for(tiny_manifest, "--task", task, *(["--data", source] if source else [])))
    assert terms.license_name == licence
    if licence != "unknown-training-data":  # written once, in spaces.yaml's licences:
        assert terms == tiny_manifest.task(task).dataset.licence


def test_push_without_token_is_a_clear_error(field_model, monkeypatch):
    import huggingface_hub

    from finetune.push import PushError, push_folder

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(PushError, match="no Hugging Face token.*hf auth login"):
        push_folder(field_model, "someone/field-model")


def test_push_uploads_the_folder_without_training_state(field_model, monkeypatch):
    import huggingface_hub

    from finetune.push import push_folder

    calls = []
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    assert push_folder(field_model, "someone/field-model") == "https://huggingface.co/someone/field-model"
    assert calls[0][:2] == ("create", "someone/field-model") and calls[0][2]["exist_ok"] is True
    upload = calls[1][1]
    assert upload["repo_id"] == "someone/field-model" and upload["folder_path"] == str(field_model)
    assert "*.pt" in upload["ignore_patterns"]


def test_push_failure_names_the_retry(field_model, monkeypatch):
    import huggingface_hub

    from finetune.push import PushError, push_folder

    def refuse(self, repo_id, **kw):
        raise huggingface_hub.errors.OfflineModeIsEnabled("offline")

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    with pytest.raises(PushError, match="hf upload someone/field-model"):
        push_folder(field_model, "someone/field-model")


def test_model_kwargs_reach_timm_and_survive_the_checkpoint(tmp_path, tiny_manifest):
    import timm

    from finetune.config import parse_config
    from finetune.nets import create_net
    from hub.models import save_checkpoint

    cfg = parse_config(["--task", "mood", "--no-pretrained", "--model-kwargs", "stem_type=s8", "drop_rate=0.1"])
    assert cfg.model_kwargs == {"stem_type": "s8", "drop_rate": 0.1}
    net = create_net(settings_for(tiny_manifest, "--task", "mood", "--no-pretrained", "--model", "levit_128s",
                                  "--input-size", "48", "--model-kwargs", "stem_type=s8", "drop_rate=0.1"), 7)
    assert type(net.stem).__name__ == "Stem8"
    save_checkpoint(net, tmp_path / "m", labels=[str(i) for i in range(7)], input_size=48)
    reloaded = timm.create_model(f"local-dir:{tmp_path / 'm'}", pretrained=True)
    assert type(reloaded.stem).__name__ == "Stem8"
    with pytest.raises(SystemExit):
        parse_config(["--task", "mood", "--model-kwargs", "no-equals-sign"])


@pytest.mark.parametrize("margin, shift", [(-0.1, 0.1), (0.15, 0.0)])
def test_framing_recovers_how_a_crop_was_cut(astronaut, margin, shift):
    """`python -m finetune framing` reads back the framing of crops cut with a known one."""
    from finetune.framing import measure
    from hub.config import DetectorConfig
    from hub.faces import FaceDetector, crop_face

    detector = FaceDetector(DetectorConfig(min_face_size=20, min_confidence=0.8))
    box = detector.detect(astronaut)[0].box
    found = measure(crop_face(astronaut, box, 200, margin, shift=shift), detector)
    assert found.margin == pytest.approx(margin, abs=0.03)
    assert found.shift == pytest.approx(shift, abs=0.03)


def test_init_from_a_model_at_another_input_size(tmp_path, tiny_manifest):
    """--init-from with a new --input-size keeps every size-independent weight of the checkpoint."""
    import torch
    from conftest import TINY_SIZE, write_tiny_model
    from safetensors.torch import load_file

    from finetune.nets import create_net

    folder = write_tiny_model(tmp_path / "small", ["female", "male"])
    size = TINY_SIZE * 2
    settings = settings_for(tiny_manifest, "--task", "gender", "--init-from", str(folder), "--input-size", str(size))
    assert settings.model == "test_vit"  # the --init-from model's architecture, not the manifest's backbone
    net = create_net(settings, 2)
    saved = load_file(str(folder / "model.safetensors"))
    state = net.state_dict()
    assert torch.equal(state["blocks.0.attn.qkv.weight"], saved["blocks.0.attn.qkv.weight"])
    assert state["pos_embed"].shape != saved["pos_embed"].shape  # one position per patch: new
    assert net(torch.zeros(1, 3, size, size)).shape == (1, 2)


def test_age_from_a_classifier_starts_at_the_mean_age(tmp_path, tiny_manifest):
    """An age run warm-started from another task's model gets a new head, which starts at the mean age
    like a run from scratch; an age run from an age model keeps its trained head."""
    from conftest import write_tiny_model

    gender = write_tiny_model(tmp_path / "gender", ["female", "male"])
    age = write_tiny_model(tmp_path / "age", ["years"], regression=True)
    assert settings_for(tiny_manifest, "--task", "age").fresh_age_head
    assert settings_for(tiny_manifest, "--task", "age", "--init-from", str(gender)).fresh_age_head
    assert not settings_for(tiny_manifest, "--task", "age", "--init-from", str(age)).fresh_age_head
    assert not settings_for(tiny_manifest, "--task", "gender").fresh_age_head  # classifiers: no age head


@pytest.mark.parametrize("args, says", [([], "random init"), (["--pretrained"], "ImageNet-pretrained"),
                                        (["--init-from", "MODEL"], "continued from our model `")])
def test_card_says_where_training_started(args, says, tiny_manifest, tmp_path):
    from conftest import write_tiny_model

    from finetune.card import _start

    if "MODEL" in args:
        args = ["--init-from", str(write_tiny_model(tmp_path / "age", ["years"], regression=True))]
    assert _start(settings_for(tiny_manifest, "--task", "gender", "--no-pretrained", *args)).startswith(says)
