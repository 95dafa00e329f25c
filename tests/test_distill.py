"""Distillation (finetune/distill.py): a student taught by a teacher of another architecture and input size,
run through `python -m finetune recipe` on tiny recipes; the loss's teacher term; resume and skip logic
with a teacher; states and recipe records written before the distillation options still count."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import yaml

from finetune.settings import shown
from test_finetune_data import FIELD_LABELS
from test_recipe import said, tiny  # noqa: F401 - `tiny` is a fixture

TEACHER = {"name": "teacher", "use": "tiny", "from": "scratch", "model": "test_resnet", "input_size": 48}
STUDENT = {"name": "student", "use": "tiny", "from": "scratch", "teacher": "teacher", "distill_temperature": 2.0}


def constant_teacher(folder, labels, k: int, size: int = 48):
    """A test_resnet (48 px) that answers class `k` for every face, with probability ~0.9997."""
    import timm

    from hub.models import save_checkpoint

    net = timm.create_model("test_resnet", pretrained=False, num_classes=len(labels))
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.zero_()
        net.fc.bias[k] = 9.0
    return save_checkpoint(net, folder, labels=list(labels), input_size=size, extra={"task": "field"})


# --- the loss ---------------------------------------------------------------------------------------------

def test_the_loss_mixes_the_task_loss_and_the_teacher_term():
    from finetune.config import make_config
    from finetune.distill import distillation_loss

    torch.manual_seed(0)
    student, teacher, targets = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,))
    task = torch.nn.CrossEntropyLoss()

    def loss(alpha, temperature=1.0, s=student, t=teacher):
        cfg = make_config({"task": "field", "distill_alpha": alpha, "distill_temperature": temperature})
        return float(distillation_loss(task, cfg, regression=False)(s, targets, t))

    assert loss(0.0) == pytest.approx(float(task(student, targets)))
    assert loss(1.0, t=student) == pytest.approx(0.0, abs=1e-6)  # a student that agrees with its teacher
    # alpha = 1: T^2 * KL(teacher || student) of the softened probabilities, the mean over faces
    p, q = torch.softmax(teacher / 3, 1), torch.softmax(student / 3, 1)
    assert loss(1.0, 3.0) == pytest.approx(float(9 * (p * (p.log() - q.log())).sum(1).mean()), rel=1e-5)
    assert loss(0.25, 3.0) == pytest.approx(0.75 * loss(0.0) + 0.25 * loss(1.0, 3.0), rel=1e-5)


def test_an_age_student_takes_the_teachers_years_as_a_second_target():
    from finetune.config import make_config
    from finetune.distill import distillation_loss

    l1 = lambda out, y: (out[:, 0] - y).abs().mean()  # noqa: E731
    cfg = make_config({"task": "age", "distill_alpha": 0.5})
    out, years, teacher = torch.tensor([[30.0], [40.0]]), torch.tensor([20.0, 40.0]), torch.tensor([[30.0], [50.0]])
    # task L1: (10 + 0) / 2 = 5; teacher L1: (0 + 10) / 2 = 5
    assert float(distillation_loss(l1, cfg, regression=True)(out, years, teacher)) == pytest.approx(5.0)


def test_the_teachers_classes_are_matched_by_name():
    from types import SimpleNamespace

    from finetune.config import ConfigError
    from finetune.distill import _order
    from finetune.settings import InitModel

    teacher = InitModel("t", "test_vit", 3, 32, {}, False, None, "x", labels=("sad", "happy", "angry"))
    settings = SimpleNamespace(teacher=teacher, regression=False)
    assert _order(settings, SimpleNamespace(labels=["angry", "happy", "sad"])) == [2, 1, 0]
    assert _order(settings, SimpleNamespace(labels=["angry", "sad"])) == [2, 0]  # a student that drops a class
    with pytest.raises(ConfigError, match="it has no class neutral"):
        _order(settings, SimpleNamespace(labels=["angry", "neutral"]))
    with pytest.raises(ConfigError, match="an age student needs an age model"):
        _order(SimpleNamespace(teacher=teacher, regression=True), SimpleNamespace(labels=["years"]))


# --- recipes with a teacher ----------------------------------------------------------------------------

def test_the_student_examples_in_the_recipes_file_run_as_written(tmp_path, capsys):
    """The commented students at the end of finetune/recipes.yaml, uncommented, are valid recipes that train
    LeViT at 64 px from the kept LeViT, taught by the task's published model (dry run: nothing is trained)."""
    from finetune.__main__ import main
    from finetune.recipe import RECIPES_FILE

    text = RECIPES_FILE.read_text()
    example = [line[4:] for line in text[text.index("# A ViT-family student"):].splitlines()
               if line.startswith("#   ")]
    raw = yaml.safe_load(text)
    raw["recipes"].update(yaml.safe_load("\n".join(example)))
    recipes = tmp_path / "recipes.yaml"
    recipes.write_text(yaml.safe_dump(raw))
    runs = tmp_path / "runs"
    for task, teacher in (("mood", "cycle160"), ("gender", "tune")):
        assert main(["recipe", f"{task}-student", "--dry-run", "--recipes", str(recipes), "--runs", str(runs)]) == 0
        lines = capsys.readouterr().out.splitlines()
        stages = [stage["name"] for stage in raw["recipes"][task]["stages"]]
        assert [line.split(":")[0] for line in lines] == ["[recipe] face-backbone/convert",
                                                          *(f"[recipe] {task}/{name}" for name in stages),
                                                          f"[recipe] {task}-student/levit"]
        assert stages[-1] == teacher  # the published model teaches
        student = lines[-1]
        assert f"--teacher {shown(runs / task / teacher)}" in student and f"--task {task} " in student
        assert f"--init-from runs/levit-start/{task} " in student  # the kept LeViT, relative to spaces.yaml's folder
        assert "--input-size 64" in student and "--distill-alpha 0.5" in student


def test_a_student_is_distilled_from_a_teacher_stage(tiny, tmp_path, capsys):  # noqa: F811
    assert tiny([TEACHER, STUDENT], "--dry-run") == 0
    assert f"--teacher {shown(tmp_path / 'runs' / 'field' / 'teacher')}" in capsys.readouterr().out
    assert tiny([TEACHER, STUDENT]) == 0
    out = capsys.readouterr().out
    assert "[distil] from" in out and "loss (1 - 0.5) * task + 0.5 * teacher term, T=2.0" in out
    assert "[teacher]" in out and "(test_resnet, 48px): outputs on" in out

    student = tmp_path / "runs" / "field" / "student"
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["training"]["teacher"]["architecture"] == "test_resnet"
    assert metrics["training"]["teacher"]["input_size"] == 48 and metrics["training"]["teacher"]["alpha"] == 0.5
    assert json.loads((student / "config.json").read_text())["architecture"] == "test_vit"
    assert "distilled from our model" in (student / "README.md").read_text()
    config = yaml.safe_load((student / "train_config.yaml").read_text())
    assert config["teacher"].endswith("teacher") and config["distill_temperature"] == 2.0
    # the teacher's outputs: per training face (4 classes x 10 faces, 70% train), plain and mirrored
    (cached,) = (tmp_path / "cache" / "teacher").glob("*.npy")
    assert np.load(cached).shape == (metrics["data"]["sizes"]["train"], 2, len(FIELD_LABELS))

    assert tiny([TEACHER, STUDENT]) == 0
    assert said(capsys) == {"teacher": "done", "student": "done"}
    # a retrained teacher makes its student run again, although the student starts from scratch
    assert tiny([{**TEACHER, "lr": 0.01}, STUDENT]) == 0
    assert said(capsys) == {"teacher": "training", "student": "training"}


def test_with_alpha_one_the_student_follows_a_constant_teacher(tiny, tmp_path, capsys):  # noqa: F811
    import timm

    from test_finetune_data import make_image_folder

    k = 2
    constant_teacher(tmp_path / "always-german", FIELD_LABELS, k)
    student = {"name": "student", "use": "tiny", "from": "scratch", "teacher": "./always-german",
               "distill_alpha": 1.0, "epochs": 4, "lr": 0.02, "warmup_epochs": 0.0, "patience": 10}
    assert tiny([student]) == 0
    agrees = re.search(r"it agrees with ([\d.]+)% of the labels", capsys.readouterr().out)
    assert 20 < float(agrees[1]) < 30  # one class in four
    # the last epoch's weights (the published ones are the best on validation, where following the
    # teacher scores 25%): every face, of every class, is read as the teacher's class
    state = torch.load(tmp_path / "runs" / "field" / ".train" / "student" / "last.pt", weights_only=False)
    net = timm.create_model("test_vit", pretrained=False, num_classes=4, img_size=32)
    net.load_state_dict(state["model"])
    net.eval()
    faces = make_image_folder(tmp_path / "new-faces", per_class=3, seed=7)
    from PIL import Image

    from finetune.loaders import eval_transform

    transform = eval_transform(net, 32)
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p in sorted(faces.rglob("*.jpg"))])
    with torch.no_grad():
        predicted = net(images).argmax(1)
    assert (predicted == k).all(), predicted.tolist()


class Interrupted(Exception):
    pass


def test_an_interrupted_student_resumes_with_the_cached_teacher_outputs(tiny, tmp_path, monkeypatch,  # noqa: F811
                                                                         capsys):
    from finetune import runstate

    constant_teacher(tmp_path / "always-german", FIELD_LABELS, 2)
    student = {**STUDENT, "teacher": "./always-german", "epochs": 2}

    original = runstate.save_state

    def crash_in_the_student(path, **state):
        original(path, **state)
        if path.name == runstate.STATE_FILE and path.parent.name == "student":
            raise Interrupted

    monkeypatch.setattr(runstate, "save_state", crash_in_the_student)
    with pytest.raises(Interrupted):
        tiny([student])
    monkeypatch.setattr(runstate, "save_state", original)
    capsys.readouterr()
    assert tiny([student]) == 0
    out = capsys.readouterr().out
    assert "[recipe] field/student: resuming" in out
    assert "[resume] from epoch 1" in out and "outputs on" in out and "read from" in out


# --- states and records ----------------------------------------------------------------------------------

def test_a_state_from_another_teacher_is_not_resumed(tmp_path):
    from finetune import runstate
    from finetune.config import ConfigError, make_config

    config = make_config({"task": "field", "teacher": "t"})
    runstate.save_state(tmp_path / runstate.STATE_FILE, config=runstate.dataclasses.asdict(config), start=None,
                        teacher="aaa")
    assert runstate.resumable(tmp_path, config, None, "aaa")
    assert not runstate.resumable(tmp_path, config, None, "bbb")
    with pytest.raises(ConfigError, match="distilled from another teacher"):
        runstate.load_state(tmp_path / runstate.STATE_FILE, config, None, "cpu", "bbb")


def test_states_and_records_from_before_the_distillation_options_still_count(tiny_manifest, tmp_path):
    """A run interrupted (or a stage done) before distill_alpha/distill_temperature existed had their defaults."""
    from finetune import runstate
    from finetune.config import make_config
    from finetune.recipe import Recipe, Stage, Start
    from finetune.recipe_run import RECORD_FILE, Runner

    config = make_config({"task": "field"})
    old = {k: v for k, v in runstate.dataclasses.asdict(config).items() if not k.startswith("distill_")}
    runstate.save_state(tmp_path / runstate.STATE_FILE, config=old, start=None)  # and no "teacher" key
    assert runstate.resumable(tmp_path, config, None)
    assert not runstate.resumable(tmp_path, make_config({"task": "field", "distill_alpha": 0.9}), None)

    stage = Stage("field", "first", (("epochs", 3),), Start("scratch"))
    runner = Runner({"field": Recipe("field", "field", (stage,), "first")}, tiny_manifest, tmp_path / "runs")
    record = runner.record(stage)
    folder = runner.folder(stage.key)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    written = {**record, "options": {k: v for k, v in record["options"].items() if not k.startswith("distill_")}}
    (folder / RECORD_FILE).write_text(json.dumps(written))
    assert runner.done(stage, record)
    assert not runner.done(stage, {**record, "options": {**record["options"], "distill_alpha": 0.9}})
