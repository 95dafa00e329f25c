"""Recipes: the project's default models as stages (finetune/recipes.yaml), and `python -m finetune recipe`
running tiny ones: stages in order, done ones skipped, an interrupted one resumed, the last one published."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from finetune.settings import shown
from test_finetune_data import make_image_folder

TEACHER = {"input_size": 112, "batch_size": 64, "lr": 5e-4, "head_lr": 5e-3, "warmup_epochs": 0.5, "patience": 3,
           "save_dtype": "float16"}


# --- the project's recipes ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def project():
    from finetune.recipe import load_recipes
    from hub.config import DEFAULT_MANIFEST, read_manifest

    manifest = read_manifest(DEFAULT_MANIFEST)
    return manifest, load_recipes(manifest)


def test_every_task_has_a_recipe_and_every_stage_parses(project):
    from finetune.recipe import stage_options

    manifest, recipes = project
    assert set(manifest.tasks) <= set(recipes)
    for recipe in recipes.values():
        assert recipe.task == (recipe.name if recipe.name in manifest.tasks else None)
        for stage in recipe.stages:
            if not stage.convert:
                stage_options(stage, recipe.task)  # a valid TrainConfig, every value of its type


@pytest.mark.parametrize("task, epochs", [("mood", 10), ("age", 6)])
def test_default_models_are_teachers_from_the_converted_face_backbone(project, task, epochs):
    from finetune.recipe import Start, stage_options

    manifest, recipes = project
    backbone = recipes["face-backbone"].stage("convert")
    assert Path(backbone.convert).resolve() == (manifest.root / "../shared/pretrained/hse-faceres-deep").resolve()
    recipe = recipes[task]
    teacher = recipe.stage("teacher")
    assert teacher.start == Start("stage", "face-backbone/convert")
    options = stage_options(teacher, task)
    assert {k: options[k] for k in TEACHER} == TEACHER and options["epochs"] == epochs
    assert "model" not in options  # the architecture comes from the converted backbone


def test_gender_fits_a_head_on_the_frozen_backbone_then_tunes_from_it(project):
    from finetune.recipe import Start, stage_options

    _, recipes = project
    probe, tune = recipes["gender"].stages
    assert probe.start == Start("stage", "face-backbone/convert") and tune.start == Start("stage", "gender/probe")
    fitted = stage_options(probe, "gender")
    assert fitted["head_only"] and fitted["input_size"] == 160
    options = stage_options(tune, "gender")
    assert not options.get("head_only") and options["input_size"] == 160 and options["unfreeze_blocks"] == 2
    assert "test_flip" not in options  # the default: served with the mirrored pass, as age and mood are
    assert recipes["gender"].publish == "tune"


def test_dry_run_converts_the_backbone_once_then_trains_each_teacher(capsys, tmp_path):
    from finetune.__main__ import main

    assert main(["recipe", "gender", "age", "mood", "--dry-run", "--runs", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["[recipe] face-backbone/convert",
                                                      "[recipe] gender/probe", "[recipe] gender/tune",
                                                      "[recipe] age/teacher", "[recipe] age/cycle", "[recipe] age/cycle2",
                                                      "[recipe] age/cycle160",
                                                      "[recipe] mood/teacher", "[recipe] mood/polish",
                                                      "[recipe] mood/cycle", "[recipe] mood/cycle2",
                                                      "[recipe] mood/cycle160"]
    probe, tune = lines[1:3]
    assert "--head-only" in probe and "--input-size 160" in probe
    assert "--init-from " + shown(tmp_path / "runs" / "gender" / "probe") in tune and "--head-only" not in tune
    age_last = lines[6]
    assert "--init-from " + shown(tmp_path / "runs" / "age" / "cycle2") in age_last and "--input-size 160" in age_last
    teacher, polish, cycle, _, last = lines[-5:]
    assert "--init-from " + shown(tmp_path / "runs" / "face-backbone" / "convert") in teacher
    assert "--input-size 112" in teacher and "--epochs 10" in teacher and "--stop-after 5" in teacher
    assert "--init-from " + shown(tmp_path / "runs" / "mood" / "teacher") in polish
    assert "--init-from " + shown(tmp_path / "runs" / "mood" / "polish") in cycle and "--unfreeze-blocks -1" in cycle
    assert "--init-from " + shown(tmp_path / "runs" / "mood" / "cycle2") in last and "--input-size 160" in last


# --- tiny recipes, run --------------------------------------------------------------------------------

@pytest.fixture()
def tiny(tmp_path, tiny_manifest_path):
    """A manifest whose field model goes to tmp_path/models/field, data, and a recipes file to fill."""
    raw = yaml.safe_load(tiny_manifest_path.read_text())
    raw["tasks"]["field"]["models"] = ["models/field"]
    manifest = tmp_path / "spaces.yaml"
    manifest.write_text(yaml.safe_dump(raw))
    data = make_image_folder(tmp_path / "data")
    template = {"model": "test_vit", "input_size": 32, "epochs": 1, "batch_size": 8, "detect_faces": False,
                "progress": False, "threads": 1, "data": str(data), "cache_dir": str(tmp_path / "cache")}

    def run(stages: list[dict], *flags: str, **recipe) -> int:
        from finetune.__main__ import main

        recipes = tmp_path / "recipes.yaml"
        recipes.write_text(yaml.safe_dump({"templates": {"tiny": template},
                                           "recipes": {"field": {"stages": stages, **recipe}}}))
        return main(["recipe", "field", "--recipes", str(recipes), "--manifest", str(manifest),
                     "--runs", str(tmp_path / "runs"), *flags])
    return run


def stages(second_lr: float = 0.002, first_lr: float = 0.002, second_epochs: int = 1) -> list[dict]:
    return [{"name": "first", "use": "tiny", "from": "scratch", "lr": first_lr},
            {"name": "second", "use": "tiny", "lr": second_lr, "epochs": second_epochs}]


def said(capsys) -> dict[str, str]:
    """What the recipe said about each stage: done, training, resuming."""
    found = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("[recipe] field/"):
            stage, _, rest = line[len("[recipe] field/"):].partition(": ")
            found[stage] = rest.split()[0]
    return found


def test_stages_run_in_order_and_the_last_is_published(tiny, tmp_path, capsys):
    assert tiny(stages()) == 0
    assert said(capsys) == {"first": "training", "second": "training"}
    runs, published = tmp_path / "runs" / "field", tmp_path / "models" / "field"
    second = yaml.safe_load((runs / "second" / "train_config.yaml").read_text())
    assert Path(second["init_from"]).resolve() == (runs / "first").resolve()  # from: previous
    published_config = json.loads((published / "config.json").read_text())
    assert published_config == json.loads((runs / "second" / "config.json").read_text())
    assert (published / "README.md").is_file() and not (published / "recipe.json").exists()
    assert not any(published.glob("*.pt"))

    assert tiny(stages()) == 0  # again: nothing to do
    assert said(capsys) == {"first": "done", "second": "done"}
    assert tiny(stages(second_lr=0.001)) == 0  # a changed stage runs again; the one before it does not
    assert said(capsys) == {"first": "done", "second": "training"}
    assert tiny(stages(second_lr=0.001, first_lr=0.01)) == 0  # new weights to start from: later stages run
    assert said(capsys) == {"first": "training", "second": "training"}


def test_a_head_only_stage_fits_on_frozen_features_and_the_next_tunes_from_it(tiny, tmp_path, capsys):
    """Gender's recipe: a logistic-regression head on the frozen backbone (`head_only: true`), then fine-tuning
    starts from that head instead of a random one."""
    from safetensors.torch import load_file

    probe = {"name": "probe", "use": "tiny", "head_only": True}
    assert tiny([*stages()[:1], probe, {"name": "tune", "use": "tiny", "lr": 1e-5}]) == 0
    assert said(capsys) == {"first": "training", "probe": "fitting", "tune": "training"}
    runs = tmp_path / "runs" / "field"
    config = json.loads((runs / "probe" / "config.json").read_text())
    assert config["head_only"] and config["temperature"] > 0
    tune = yaml.safe_load((runs / "tune" / "train_config.yaml").read_text())
    assert Path(tune["init_from"]).resolve() == (runs / "probe").resolve()
    fitted, tuned = load_file(runs / "probe" / "model.safetensors"), load_file(runs / "tune" / "model.safetensors")
    first = load_file(runs / "first" / "model.safetensors")
    backbone = [k for k in fitted if not k.startswith("head.")]
    assert all((fitted[k].float() == first[k].float()).all() for k in backbone)  # frozen: the backbone unchanged
    # the tuned head starts at the fitted one (lr 1e-5, one epoch): it stays far nearer to it than to a new head
    moved = (tuned["head.weight"].float() - fitted["head.weight"].float()).abs().max()
    assert moved < 0.1 * fitted["head.weight"].float().abs().max()
    assert tiny([*stages()[:1], probe, {"name": "tune", "use": "tiny", "lr": 1e-5}]) == 0  # again: all done
    assert said(capsys) == {"first": "done", "probe": "done", "tune": "done"}


def test_the_recipes_reason_goes_into_the_published_card(tiny, tmp_path, capsys):
    """Issue 12: the model card says which model ships and why (e.g. the teacher, no student within reach)."""
    assert tiny(stages(), why="The teacher:\n  no student came within 0.5 points.") == 0
    card = (tmp_path / "models" / "field" / "README.md").read_text()
    assert card.endswith("## Why this model\n\nThe teacher: no student came within 0.5 points.\n")
    assert "Why this model" not in (tmp_path / "runs" / "field" / "second" / "README.md").read_text()
    capsys.readouterr()
    assert tiny(stages(), whyy="typo") != 0
    assert "recipes.field: unknown key(s) ['whyy']" in "".join(capsys.readouterr())


class Interrupted(Exception):
    pass


def test_an_interrupted_stage_is_resumed(tiny, monkeypatch, capsys):
    from finetune import runstate

    original = runstate.save_state

    def crash_in_second_stage(path, **state):
        original(path, **state)
        if path.name == runstate.STATE_FILE and path.parent.name == "second":
            raise Interrupted

    monkeypatch.setattr(runstate, "save_state", crash_in_second_stage)
    with pytest.raises(Interrupted):
        tiny(stages(second_epochs=2))
    monkeypatch.setattr(runstate, "save_state", original)
    capsys.readouterr()
    assert tiny(stages(second_epochs=2)) == 0
    out = capsys.readouterr().out
    assert "[recipe] field/first: done" in out and "[recipe] field/second: resuming" in out
    assert "[resume] from epoch 1" in out


@pytest.mark.parametrize("bad, says", [
    ([{"name": "a", "use": "tiny"}], "the first stage needs `from:`"),
    ([{"name": "a", "use": "huge", "from": "scratch"}], "no template 'huge'"),
    ([{"name": "a", "use": "tiny", "from": "elsewhere/b"}], "no recipe 'elsewhere'"),
    ([{"name": "a", "use": "tiny", "from": "b"}, {"name": "b", "use": "tiny", "from": "a"}], "starts from itself"),
    ([{"name": "a", "use": "tiny", "from": "scratch", "init_from": "x"}], "set by the recipe"),
    ([{"name": "a", "use": "tiny", "from": "scratch", "epochs": "many"}], "epochs: expected int"),
])
def test_recipe_mistakes_are_named(tiny, capsys, bad, says):
    assert tiny(bad, "--dry-run") == 2
    assert says in capsys.readouterr().err
