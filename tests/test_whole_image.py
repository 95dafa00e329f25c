"""Whole-image mode answers only for an image that looks like a face (issue 15, point 3): a
coffee cup used to get "male 80%, 69 years, angry 44%"."""
import numpy as np
import pytest
from PIL import Image
from skimage import data

from hub.config import DetectorConfig
from hub.faces import get_detector
from hub.predict import NOT_A_FACE_MESSAGE, Predictor

THRESHOLD = DetectorConfig().whole_image_min_score


def rgb(array) -> Image.Image:
    array = np.asarray(array, dtype=np.float32) if array.dtype == bool else array
    if array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(1e-9, array.max() - array.min())).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


SCENES = ["coffee", "rocket", "chelsea", "coins", "horse", "page", "text", "hubble_deep_field", "brick",
          "grass", "moon", "colorwheel", "logo", "retina", "cell", "clock", "immunohistochemistry"]


@pytest.fixture(scope="module")
def detector():
    return get_detector(DetectorConfig())


@pytest.fixture(scope="module")
def lfw():
    """scikit-image's LFW sample: 100 faces, then 100 non-faces, 25x25 gray (too small for the detector)."""
    images = data.lfw_subset()
    return [rgb(image) for image in images[:100]], [rgb(image) for image in images[100:]]


def test_labelled_faces_and_non_faces_are_told_apart(detector, lfw):
    faces, others = lfw
    face_scores = [detector.whole_image_score(image) for image in faces]
    other_scores = [detector.whole_image_score(image) for image in others]
    assert min(face_scores) >= THRESHOLD, min(face_scores)
    assert max(other_scores) < THRESHOLD, max(other_scores)


@pytest.mark.parametrize("name", SCENES)
def test_photos_without_a_face_are_not_faces(detector, name):
    assert detector.whole_image_score(rgb(getattr(data, name)())) < THRESHOLD


def test_close_ups_of_real_faces_are_faces(detector, astronaut):
    cameraman = rgb(data.camera())
    for close_up in (astronaut.crop((175, 55, 275, 180)), astronaut.crop((170, 50, 280, 185)).resize((40, 48)),
                     cameraman.crop((192, 110, 260, 200)), cameraman.crop((192, 110, 260, 200)).resize((26, 34))):
        assert detector.whole_image_score(close_up) >= THRESHOLD, close_up.size


def test_coffee_gets_no_answer_and_says_why(tiny_manifest):
    predictor = Predictor(tiny_manifest)
    analysis = predictor.analyze(rgb(data.coffee()), whole_image_if_no_face=True)
    assert analysis.faces == [] and analysis.predictions == {} and analysis.not_a_face
    result = analysis.as_dict()
    assert result["faces"] == [] and result["message"] == NOT_A_FACE_MESSAGE


def test_a_tiny_face_photo_is_answered_as_one_face(tiny_manifest, lfw):
    predictor = Predictor(tiny_manifest)
    analysis = predictor.analyze(lfw[0][0], whole_image_if_no_face=True)
    assert analysis.whole_image and [face.box for face in analysis.faces] == [(0.0, 0.0, 25.0, 25.0)]
    assert analysis.faces[0].score >= THRESHOLD and set(analysis.predictions) == {"gender", "age", "mood"}
