"""The Gradio app served on loopback with the tiny models, called through gradio_client."""
import json
import socket

import pytest
from PIL import Image

from hub.faces import Face
from hub.predict import NO_FACE_MESSAGE
from hub.ui import PRIVACY, about_markdown, build_demo, draw_faces, launch

ENDPOINTS = ["all", "gender", "age", "mood", "field"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    assert set(face) - {"index", "box", "score"} == tasks
    if api in ("all", "field"):
        assert "No model for 'field'" in result["errors"]["field"]
        assert "No model for 'field'" in result["message"]
    else:
        assert result["errors"] == {}
    if "age" in tasks:
        assert face["age"]["low"] <= face["age"]["years"] <= face["age"]["high"] and face["age"]["band"]
    if "gender" in tasks:
        assert set(face["gender"]["probs"]) == {"female", "male"}
    assert image["url"]  # the annotated photo


def test_no_face_then_whole_image(client, tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(path)
    _, result = call(client, "gender", path)
    assert result["faces"] == [] and result["message"] == NO_FACE_MESSAGE
    _, result = call(client, "gender", path, whole_image=True)
    assert result["whole_image"] and result["faces"][0]["box"] == [0, 0, 320, 240]
    assert "gender" in result["faces"][0]


def test_bad_inputs_give_clear_errors_and_the_server_lives_on(client, photo_640, tmp_path):
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    with pytest.raises(AppError, match="not an image we can read"):
        call(client, "all", text)
    with pytest.raises(AppError, match="Upload a photo"):
        call(client, "mood")
    with pytest.raises(AppError, match="loopback"):  # hub.fetch refuses the server's own network
        call(client, "age", url="http://127.0.0.1:9/face.jpg")
    _, result = call(client, "age", photo_640)
    assert len(result["faces"]) == 1


def test_uploads_over_the_size_limit_are_refused(client, tiny_manifest, tmp_path):
    """The upload route takes zips up to train_your_own.max_zip_mb (12 MB in the tiny manifest); photos
    over 10 MB are refused by the photo endpoints, and deleted."""
    import httpx
    from gradio_client.exceptions import AppError

    assert tiny_manifest.train_your_own.max_zip_mb == 12
    response = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload",
                          files={"files": ("big.zip", b"\xff" * 13_000_000, "application/zip")})
    assert response.status_code == 413, response.text
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 10_500_000)
    with pytest.raises(AppError, match="larger than 10 MB"):
        call(client, "gender", big)


def test_page_shows_caveats_privacy_and_missing_models(demo, tiny_manifest):
    texts = [block.value for block in demo.blocks.values() if block.get_block_name() == "markdown"]
    page = "\n".join(str(text) for text in texts)
    assert PRIVACY in page and "Uploaded photos are not stored" in PRIVACY
    for task in tiny_manifest.tasks.values():
        assert task.caveat in page
    assert "No model for 'field' yet" in page and "python -m finetune --task field" in page
    assert about_markdown(tiny_manifest) in page


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
