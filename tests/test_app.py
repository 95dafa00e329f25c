"""The Gradio app served on loopback with the tiny models, called through gradio_client."""
import json

import pytest
from PIL import Image

from hub.draw import draw_faces
from hub.faces import Face
from hub.predict import NOT_A_FACE_MESSAGE, no_face_message
from conftest import free_port
from hub.ui import PRIVACY, TRAIN_HERE, TRAIN_ONE, WHOLE_IMAGE_OPTION, about_markdown, build_demo, launch

ENDPOINTS = ["all", "gender", "age", "mood", "field"]


@pytest.fixture(scope="module")
def demo(tiny_manifest):
    return build_demo(tiny_manifest)


@pytest.fixture(scope="module")
def client(demo):
    from gradio_client import Client

    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                       quiet=True)
    try:
        yield Client(url, verbose=False, download_files=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def photo_640(astronaut, tmp_path_factory):
    """640x480 JPEG with one face."""
    canvas = Image.new("RGB", (640, 480), (40, 40, 60))
    canvas.paste(astronaut.resize((480, 480)), (80, 0))
    path = tmp_path_factory.mktemp("photos") / "one_face.jpg"
    canvas.save(path, quality=90)
    return path


def call(client, api: str, photo=None, url: str = "", whole_image: bool = False):
    from gradio_client import handle_file

    image, result = client.predict(handle_file(str(photo)) if photo else None, url, whole_image,
                                   api_name=f"/{api}")
    json.dumps(result)  # JSON-able as is
    return image, result


def test_every_tab_is_a_named_endpoint(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == sorted(f"/{name}" for name in [*ENDPOINTS, "video", "live", "train"])


@pytest.mark.parametrize("api", ENDPOINTS)
def test_endpoint_answers_for_one_face(client, photo_640, api):
    image, result = call(client, api, photo_640)
    assert (result["width"], result["height"]) == (640, 480)
    [face] = result["faces"]
    assert face["index"] == 1 and 200 < (face["box"][0] + face["box"][2]) / 2 < 450
    tasks = {"gender", "age", "mood"} if api == "all" else {api} - {"field"}
    assert set(face) - {"index", "box", "score", "low_resolution"} == tasks
    if api == "field":  # asked for by name: one plain sentence, no command
        assert result["errors"] == {"field": "There is no field of study model yet, so there is no "
                                             "field of study answer."}
        assert result["errors"]["field"] in result["message"]
    else:  # the other tabs do not mention the missing model at all
        assert result["errors"] == {} and "field" not in result["message"].lower()
    if "age" in tasks:
        assert face["age"]["low"] <= face["age"]["years"] <= face["age"]["high"] and face["age"]["band"]
    if "gender" in tasks:
        assert set(face["gender"]["probs"]) == {"female", "male"}
    assert image["url"]  # the annotated photo


def test_no_face_then_whole_image(client, astronaut, tmp_path):
    blank, close_up = tmp_path / "blank.png", tmp_path / "close_up.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank)
    astronaut.crop((170, 55, 278, 180)).resize((26, 30)).save(close_up)  # too small for the detector
    _, result = call(client, "gender", blank)
    assert result["faces"] == [] and result["message"] == no_face_message(WHOLE_IMAGE_OPTION)
    assert "tick “Classify the whole image if no face is found”" in result["message"]
    _, result = call(client, "gender", blank, whole_image=True)  # gray is not a face: no answer
    assert result["faces"] == [] and result["message"] == NOT_A_FACE_MESSAGE and not result["whole_image"]
    _, result = call(client, "gender", close_up, whole_image=True)
    assert result["whole_image"] and result["faces"][0]["box"] == [0, 0, 26, 30]
    assert "gender" in result["faces"][0] and result["faces"][0]["low_resolution"]


def test_bad_inputs_give_clear_errors_and_the_server_lives_on(client, photo_640, tmp_path):
    """Each reason in plain words, in the result (the page shows it where the answer would be)."""
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    image, result = call(client, "all", text)
    assert image is None and result["error"] == "This file is not an image we can read."
    image, result = call(client, "mood")
    assert image is None and result["faces"] == [] and result["error"].startswith("Upload a photo")
    _, result = call(client, "age", url="http://127.0.0.1:9/face.jpg")  # hub.fetch refuses loopback
    assert result["error"].startswith("Could not get an image from this URL: ") and "loopback" in result["error"]
    assert result["message"] == result["error"]
    _, result = call(client, "age", photo_640)
    assert len(result["faces"]) == 1 and "error" not in result


def test_uploads_over_the_size_limit_are_refused(client, tiny_manifest, tmp_path):
    """The upload route takes zips up to train_your_own.max_zip_mb (12 MB in the tiny manifest); photos
    over 10 MB are refused by the photo endpoints, in the result's error."""
    import httpx

    assert tiny_manifest.train_your_own.max_zip_mb == 12
    response = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload",
                          files={"files": ("big.zip", b"\xff" * 13_000_000, "application/zip")})
    assert response.status_code == 413, response.text
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 10_500_000)
    image, result = call(client, "gender", big)
    assert image is None and "larger than 10 MB" in result["error"]


def test_page_shows_caveats_privacy_and_missing_models(demo, tiny_manifest):
    texts = [block.value for block in demo.blocks.values() if block.get_block_name() == "markdown"]
    page = "\n".join(str(text) for text in texts)
    assert PRIVACY in page and "Uploaded photos are not stored" in PRIVACY
    for task in tiny_manifest.tasks.values():
        assert task.caveat in page
    assert about_markdown(tiny_manifest) in page


def test_missing_field_model_is_explained_once_in_plain_words(demo):
    """Issue 15, point 2: the header promises what the app can answer; the field tab alone says
    what is missing, without commands, and sends the user to the "Train your own" tab (issue 17),
    whose model then answers in the field tab's controls: they stay."""
    texts = [str(block.value) for block in demo.blocks.values() if block.get_block_name() == "markdown"]
    page = "\n".join(texts)
    header = texts[0]
    assert "guesses, for each one, its age, gender and mood." in header and "field" not in header.lower()
    notes = [text for text in texts if "No field of study model comes with this app" in text]
    assert len(notes) == 1 and "one subfolder per answer (cs, econ, german, mechanical)" in notes[0]
    assert TRAIN_HERE in notes[0] and TRAIN_ONE not in page
    for command_word in ("python", "finetune", "--", "spaces.yaml", "hf-hub"):  # (file names may be in code font)
        assert command_word not in page, command_word
    assert "`" not in notes[0] and "`" not in header
    hidden = [block for block in demo.blocks.values() if block.get_block_name() == "column"
              and block.visible is False]
    assert hidden == []


def test_without_training_the_field_tab_hides_controls_that_lead_nowhere(tiny_manifest, monkeypatch):
    """On a Space that keeps training off, the field tab names whoever runs the app instead, and hides
    its photo controls while there is no model."""
    monkeypatch.setenv("SPACE_ID", "someone/face-hub")
    demo = build_demo(tiny_manifest)
    texts = [str(block.value) for block in demo.blocks.values() if block.get_block_name() == "markdown"]
    notes = [text for text in texts if "no field of study model yet" in text]
    assert len(notes) == 1 and TRAIN_ONE in notes[0] and TRAIN_HERE not in notes[0]
    hidden = [block for block in demo.blocks.values() if block.get_block_name() == "column"
              and block.visible is False]
    assert len(hidden) == 1  # the field tab's controls


def test_boxes_are_drawn_and_big_photos_shrunk():
    photo = Image.new("RGB", (4000, 2000), (0, 0, 0))
    shown = draw_faces(photo, [Face(index=1, box=(1000.0, 500.0, 2000.0, 1500.0), score=1.0)])
    assert shown.size == (1024, 512)
    assert shown.getpixel((256, 200)) == (255, 214, 0)  # the left edge of the box, scaled
    assert shown.getpixel((380, 200)) == (0, 0, 0)      # inside the box: untouched
    assert photo.getpixel((1000, 800)) == (0, 0, 0)    # the original is not drawn on


def test_faces_render_as_labels_with_uncertain_titles(tiny_manifest):
    import gradio as gr

    from hub.ui import render_faces

    gender, age = tiny_manifest.task("gender"), tiny_manifest.task("age")
    result = {"message": "Found 2 faces.", "faces": [
        {"index": 1, "gender": {"uncertain": False, "probs": {"female": 0.9, "male": 0.1}},
         "age": {"years": 34.2, "low": 30.0, "high": 40.4, "band": "30-39"}},
        {"index": 2, "gender": {"uncertain": True, "probs": {"female": 0.55, "male": 0.45}}}]}
    with gr.Blocks() as page:
        render_faces(result, [gender, age])
    labels = [b for b in page.blocks.values() if isinstance(b, gr.Label)]
    texts = " ".join(str(b.value) for b in page.blocks.values() if isinstance(b, gr.Markdown))
    assert [label.label for label in labels] == ["Gender", "Gender: uncertain (top class below 65%)"]
    assert labels[0].show_heading and not labels[1].show_heading
    assert "**34 years** (likely 30–40), band 30-39" in texts and "#### Face 2" in texts


def test_an_error_result_renders_as_a_lasting_message(tiny_manifest):
    import gradio as gr

    from hub.views import error_result, render_faces

    with gr.Blocks() as page:
        render_faces(error_result("This file is not an image we can read."), [tiny_manifest.task("age")])
    [alert] = [b for b in page.blocks.values() if isinstance(b, gr.HTML)]
    assert 'role="alert"' in alert.value and "This file is not an image we can read." in alert.value
