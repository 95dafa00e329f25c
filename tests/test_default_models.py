"""The default models shipped in models/ load with the real manifest and answer sensibly on a
public-domain photo that ships with scikit-image (NASA's portrait of astronaut Eileen Collins,
a woman in her late thirties). No test here reads ../shared."""
from __future__ import annotations

import json

import pytest

from hub.config import DEFAULT_MANIFEST, PROJECT_ROOT, read_manifest
from hub.models import WEIGHTS_FILE
from hub.predict import Predictor

TASKS = ("gender", "age", "mood")


@pytest.fixture(scope="module")
def predictor():
    return Predictor(read_manifest(DEFAULT_MANIFEST))


@pytest.mark.parametrize("task", TASKS)
def test_default_model_is_shipped_with_its_reports(task):
    folder = PROJECT_ROOT / "models" / task
    for name in (WEIGHTS_FILE, "config.json", "metrics.json", "README.md", "train_config.yaml"):
        assert (folder / name).is_file(), f"models/{task}/{name} missing"
    assert (folder / ("age_scatter.png" if task == "age" else "confusion_matrix.png")).is_file()
    assert json.loads((folder / "metrics.json").read_text())["test"]["n"] > 1000


def test_default_weights_fit_the_size_budget():
    total = sum((PROJECT_ROOT / "models" / t / WEIGHTS_FILE).stat().st_size for t in TASKS)
    assert total < 60e6


def test_astronaut_reads_as_a_woman_in_her_thirties_or_forties(predictor, astronaut):
    """Eileen Collins was in her late thirties in this NASA portrait; the mirrored photo must agree."""
    from PIL import Image

    for photo in (astronaut, astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)):
        analysis = predictor.analyze(photo, tasks=list(TASKS))
        assert len(analysis.faces) == 1
        gender = analysis.predictions["gender"][0]
        assert gender.label == "female" and gender.confidence > 0.8
        age = analysis.predictions["age"][0]
        assert 28 <= age.years <= 55 and age.low <= age.years <= age.high
        assert age.band == predictor.manifest.task("age").band_for(age.years)
        mood = analysis.predictions["mood"][0]  # a broad smile
        assert mood.label == "happy" and mood.confidence > 0.6
        assert abs(sum(mood.probs.values()) - 1.0) < 1e-4


def test_cameraman_reads_as_a_man(predictor):
    """scikit-image's `camera` (a man with a camera, gray, public domain)."""
    from PIL import Image
    from skimage import data

    analysis = predictor.analyze(Image.fromarray(data.camera()), tasks=["gender"])
    assert len(analysis.faces) == 1
    gender = analysis.predictions["gender"][0]
    assert gender.label == "male" and gender.confidence > 0.8


def test_grace_hopper_reads_as_seventy_or_older_and_not_angry(predictor):
    """matplotlib's sample portrait of Grace Hopper, in her late seventies, a plain official portrait."""
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = Image.open(file).convert("RGB")
    analysis = predictor.analyze(photo, tasks=["age", "mood"])
    assert len(analysis.faces) == 1
    age = analysis.predictions["age"][0]
    assert age.band == "70+" and age.years < 100
    assert analysis.predictions["mood"][0].label != "angry"
