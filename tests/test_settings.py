"""The typed flag parser, and the settings resolved once from a config plus the manifest: data source,
model, input size, columns, face detection and the crop spec that the app serves with."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from test_finetune_data import make_image_folder


def parse(*flags: str):
    from finetune.config import parse_config

    return parse_config(list(flags))


# --- flags and YAML, by type ---------------------------------------------------------------------------

def test_task_is_required(capsys):
    with pytest.raises(SystemExit):
        parse("--epochs", "3")
    assert "--task is required" in capsys.readouterr().err


def test_flags_take_their_field_types():
    cfg = parse("--task", "age", "--lr", "5e-4", "--epochs", "3", "--split", "0.8", "0.1", "0.1",
                "--drop-classes", "disgust", "--no-detect-faces", "--loss", "l1", "--model-kwargs", "drop_rate=0.1")
    assert (cfg.lr, cfg.epochs, cfg.split, cfg.drop_classes) == (5e-4, 3, [0.8, 0.1, 0.1], ["disgust"])
    assert cfg.detect_faces is False and cfg.loss == "l1" and cfg.model_kwargs == {"drop_rate": 0.1}


@pytest.mark.parametrize("flags", [["--task", "age", "--epochs", "3.5"], ["--task", "age", "--loss", "l2"],
                                   ["--task", "age", "--balance", "often"]])
def test_flags_of_the_wrong_type_are_refused(flags):
    with pytest.raises(SystemExit):
        parse(*flags)


def test_yaml_values_are_checked_against_the_same_types(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("task: mood\nlr: 5e-4\nwarmup_epochs: 1\n")  # YAML reads 5e-4 as a string; 1 as an int
    cfg = parse("--config", str(path), "--epochs", "2")
    assert cfg.lr == 5e-4 and isinstance(cfg.warmup_epochs, float) and cfg.epochs == 2
    for bad, says in (("task: mood\nepochs: many\n", "epochs: expected int"),
                      ("task: mood\nlearning_rate: 0.1\n", "unknown option(s) ['learning_rate']"),
                      ("task: mood\nloss: l2\n", "loss: expected one of ['l1', 'huber']"),
                      ("lr: 0.1\n", "--task is required")):
        path.write_text(bad)
        with pytest.raises(SystemExit):
            parse("--config", str(path))
        assert says in capsys.readouterr().err


def test_every_option_has_a_typed_flag():
    import dataclasses

    from finetune.config import TrainConfig, build_parser

    flags = {action.dest for action in build_parser()._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= flags


# --- settings, resolved once ----------------------------------------------------------------------------

def test_settings_fill_every_default_from_the_manifest(tiny_manifest):
    from finetune.settings import resolve
    from hub.faces import crop_spec

    settings = resolve(parse("--task", "age"), tiny_manifest)
    task = tiny_manifest.task("age")
    assert settings.model == task.backbone and settings.input_size == task.input_size
    assert (settings.data.image_column, settings.data.label_column) == ("image", "age")
    assert settings.data.detect_faces is False  # UTKFace is already cropped
    assert settings.data.crop == crop_spec(task, tiny_manifest.detector)
    assert settings.data.crop.margin == task.crop_margin and settings.data.crop.shift == task.crop_shift
    assert settings.output == Path(tiny_manifest.resolve(task.models[0]))
    assert settings.state_dir == settings.output.parent / ".train" / "age"
    resolved = settings.as_config()  # train_config.yaml: every value concrete
    assert resolved.model == task.backbone and resolved.input_size == task.input_size
    assert resolved.detect_faces is False and resolved.label_column == "age"
    field = resolve(parse("--task", "field", "--data", "photos"), tiny_manifest)
    assert field.data.detect_faces and field.data.crop.margin == tiny_manifest.detector.margin


def test_the_manifests_data_path_is_relative_to_the_manifest(tmp_path, monkeypatch, tiny_manifest_path):
    """Not to the current folder: the same resolution as `finetune framing`."""
    from finetune.settings import resolve_data
    from hub.config import read_manifest

    raw = yaml.safe_load(tiny_manifest_path.read_text())
    raw["tasks"]["field"]["dataset"]["path"] = "photos"
    make_image_folder(tmp_path / "project" / "photos")
    (tmp_path / "project" / "spaces.yaml").write_text(yaml.safe_dump(raw))
    manifest = read_manifest(tmp_path / "project" / "spaces.yaml")
    monkeypatch.chdir(tmp_path)  # elsewhere
    data = resolve_data(parse("--task", "field"), manifest)
    assert Path(data.source) == tmp_path / "project" / "photos" and data.from_manifest
    assert data.shown_source == str(Path("project") / "photos")  # no absolute path in configs and cards
    given = resolve_data(parse("--task", "field", "--data", "project/photos"), manifest)
    assert given.source == "project/photos" and given.from_manifest  # the same folder, typed by the user


def test_missing_local_copy_falls_back_to_the_hub_id(tiny_manifest):
    from finetune.settings import resolve_data

    spec = tiny_manifest.task("mood").dataset
    data = resolve_data(parse("--task", "mood"), tiny_manifest)  # ../shared is not beside the tmp manifest
    assert data.source == f"{spec.id}@{spec.revision}" and data.from_manifest and data.licence == spec.licence
    other = resolve_data(parse("--task", "mood", "--data", "someone/faces"), tiny_manifest)
    assert not other.from_manifest and other.licence is None


def test_training_crops_are_the_apps_crops(tiny_manifest, astronaut):
    """finetune.data cuts detected faces with the very spec hub.predict serves with."""
    import numpy as np

    from finetune.settings import resolve
    from hub.faces import get_detector
    from hub.predict import crops_for

    settings = resolve(parse("--task", "age", "--detect-faces"), tiny_manifest)
    faces = get_detector(tiny_manifest.detector).detect(astronaut)
    served = crops_for(astronaut, faces, tiny_manifest.task("age"), tiny_manifest, 32)[0]
    trained = settings.data.crop.cut(astronaut, faces[0].box, 32)
    assert np.array_equal(np.asarray(served), np.asarray(trained))


def test_init_model_settings_are_read_once(tmp_path, tiny_manifest):
    import json

    from conftest import write_tiny_model

    from finetune.config import ConfigError
    from finetune.settings import resolve

    folder = write_tiny_model(tmp_path / "backbone", ["female", "male"])
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "freeze_bn": True, "pretrained_from": "faces"}))
    settings = resolve(parse("--task", "mood", "--init-from", str(folder)), tiny_manifest)
    assert settings.freeze_bn and settings.init.pretrained_from == "faces" and not settings.pretrained
    assert not resolve(parse("--task", "mood", "--init-from", str(folder), "--no-freeze-bn"), tiny_manifest).freeze_bn
    with pytest.raises(ConfigError, match="differs from the --init-from model"):
        resolve(parse("--task", "mood", "--init-from", str(folder), "--model", "resnet18"), tiny_manifest)
    with pytest.raises(ConfigError, match="no config.json"):
        resolve(parse("--task", "mood", "--init-from", str(tmp_path / "nothing")), tiny_manifest)


# --- resume -------------------------------------------------------------------------------------------------

def test_resume_refuses_a_state_from_another_config(tiny_manifest_path, tmp_path, capsys):
    from finetune.__main__ import main

    data = make_image_folder(tmp_path / "data")
    common = ["--task", "field", "--data", str(data), "--manifest", str(tiny_manifest_path), "--model", "test_vit",
              "--no-pretrained", "--input-size", "32", "--epochs", "1", "--batch-size", "8", "--no-progress",
              "--no-detect-faces", "--state-dir", str(tmp_path / "state"), "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--output", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main([*common, "--output", str(tmp_path / "b"), "--lr", "0.01", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "written by another configuration" in err and "lr: 0.002 then, 0.01 now" in err
    # the same options resume (here: nothing left to train; the model folder is written again)
    assert main([*common, "--output", str(tmp_path / "c"), "--resume", "--threads", "1"]) == 0
    assert "[resume] from epoch 1" in capsys.readouterr().out


def test_resume_refuses_a_state_that_started_from_other_weights(tiny_manifest_path, tmp_path, capsys):
    from conftest import write_tiny_model

    from finetune.__main__ import main

    data = make_image_folder(tmp_path / "data")
    start = write_tiny_model(tmp_path / "start", ["cs", "econ", "german", "mechanical"], seed=0)
    common = ["--task", "field", "--data", str(data), "--manifest", str(tiny_manifest_path), "--init-from", str(start),
              "--epochs", "1", "--batch-size", "8", "--no-progress", "--no-detect-faces", "--input-size", "32",
              "--state-dir", str(tmp_path / "state"), "--cache-dir", str(tmp_path / "cache"),
              "--output", str(tmp_path / "out")]
    assert main(common) == 0
    write_tiny_model(start, ["cs", "econ", "german", "mechanical"], seed=1)  # the same path, other weights
    capsys.readouterr()
    assert main([*common, "--resume"]) == 2
    assert "started from other weights" in capsys.readouterr().err
