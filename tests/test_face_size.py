"""One face, one age (issue 15, point 6): the same face resized to 80-400 px gets ages within ±3
years of their median, with whatever models models/ holds; under 80 px it reads "low resolution",
with a wider age interval. The table behind this: `python -m benchmarks.face_size`."""
import pytest

from benchmarks.face_size import SIZES, STEADY_FROM, age_spread, measure, public_photos
from hub.config import DEFAULT_MANIFEST, read_manifest
from hub.predict import Predictor


@pytest.fixture(scope="module")
def predictor():
    predictor = Predictor(read_manifest(DEFAULT_MANIFEST))
    if not predictor.store.available("age"):
        pytest.skip("no age model in models/")
    return predictor


@pytest.fixture(scope="module")
def photos():
    return public_photos()


@pytest.mark.parametrize("name", ["astronaut", "cameraman", "grace_hopper"])
def test_age_holds_from_80_to_400_pixels(predictor, photos, name):
    rows = measure(predictor, photos[name], sizes=[size for size in SIZES if size >= STEADY_FROM])
    assert all(row.found for row in rows), [row.size for row in rows if not row.found]
    ages = [round(row.age, 1) for row in rows]
    assert age_spread(rows) <= 3.0, ages


def test_small_faces_read_low_resolution_with_a_wider_interval(predictor, photos):
    small, large = measure(predictor, photos["astronaut"], sizes=(50, 200))
    assert small.low_resolution and not large.low_resolution
    margin = predictor.manifest.task("age").low_resolution_margin
    assert margin > 0
    assert (small.high - small.low) == pytest.approx(large.high - large.low + 2 * margin, abs=0.2)
