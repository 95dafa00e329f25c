"""Privacy: once a request is answered, no uploaded or fetched photo (nor the photo with boxes)
is left on disk, in Gradio's upload cache or in the temp folder; there is no flagging; the page
says so."""
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
import pytest

from hub.ui import PRIVACY
from hub.uploads import HOLD_SECONDS, UNAVAILABLE
from conftest import raw_call, raw_upload, serve_photo, served_app
from test_app import call


def snapshot(*folders: Path) -> set[str]:
    """Every file and folder below `folders`."""
    return {str(path) for folder in folders for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def app(tiny_manifest, tmp_path_factory):
    """The app with its own GRADIO_TEMP_DIR and temp folder, so nothing else writes there."""
    from gradio_client import Client

    cache, temp = tmp_path_factory.mktemp("gradio_cache"), tmp_path_factory.mktemp("temp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        with served_app(tiny_manifest, cache) as (demo, url):
            yield demo, Client(url, verbose=False, download_files=False), cache, temp


@pytest.fixture(scope="module")
def photos(astronaut, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("private_photos")
    paths = {name: folder / name for name in ("face.jpg", "other.png", "cut.jpg", "notes.jpg")}
    astronaut.save(paths["face.jpg"], quality=90)
    astronaut.rotate(10).save(paths["other.png"])
    paths["cut.jpg"].write_bytes(paths["face.jpg"].read_bytes()[:5000])  # opens, then fails to decode
    paths["notes.jpg"].write_text("not a photo")
    return paths


@pytest.fixture
def photo_url(photos, monkeypatch):
    monkeypatch.setenv("HUB_URL_ALLOW_HOSTS", "127.0.0.1")
    with serve_photo(photos["face.jpg"].read_bytes()) as url:
        yield url


def test_nothing_is_left_on_disk_after_answering(app, photos, photo_url):
    demo, client, cache, temp = app
    before = snapshot(cache, temp)  # the examples, cached at start-up, stay
    assert any(path.endswith("astronaut.jpg") for path in before)

    image, result = call(client, "all", photos["face.jpg"])
    assert len(result["faces"]) == 1
    assert image["url"].startswith("data:image/jpeg;base64,") and not image.get("path")
    assert snapshot(cache, temp) == before

    _, result = call(client, "gender", photos["other.png"])  # another tab, another format
    _, result = call(client, "age", url=photo_url)           # fetched: kept in memory only
    assert len(result["faces"]) == 1
    for name in ("notes.jpg", "cut.jpg"):  # refused when decoded, the reason in the result
        image, result = call(client, "mood", photos[name])
        assert image is None and "not an image" in result["error"]
    assert snapshot(cache, temp) == before

    _, result = call(client, "all", photos["face.jpg"])  # the same photo again: uploaded afresh
    assert len(result["faces"]) == 1
    assert snapshot(cache, temp) == before


def test_examples_stay_and_a_shared_upload_is_decoded_once_then_deleted(app, photos):
    from concurrent.futures import ThreadPoolExecutor

    demo = app[0]
    photo = next(b for b in demo.blocks.values() if isinstance(b, gr.Image) and b.keep_in_cache)
    keeper = demo.photos  # hub.uploads.Photos
    example = keeper.check({"path": next(iter(photo.keep_in_cache))})  # what the page sends for an example
    assert min(keeper.photo(example, "session-1").size) >= 300
    assert os.path.exists(example)  # examples are never deleted

    upload = keeper.folder / "0123abcd" / "face.jpg"  # as Gradio's upload route writes it
    upload.parent.mkdir()
    upload.write_bytes(photos["face.jpg"].read_bytes())
    demo.upload_file_set.add(str(upload))
    path = keeper.check({"path": str(upload)})
    with ThreadPoolExecutor(4) as pool:  # four users sending the same photo share one path
        images = list(pool.map(lambda n: keeper.photo(path, f"user-{n}"), range(4)))
    assert all(image is images[0] for image in images)  # decoded once, held in memory
    assert not upload.parent.exists()  # the file and its folder went at once
    assert keeper.photo(keeper.check({"path": str(upload)}), "user-5") is images[0]  # still analysable
    keeper.expire(now=time.monotonic() + HOLD_SECONDS + 1)
    with pytest.raises(gr.Error, match="not available"):  # idle too long: dropped from memory too
        keeper.check({"path": str(upload)})


def test_the_photo_on_screen_can_be_analysed_again_in_any_tab_with_nothing_on_disk(app, photos):
    """Issue 15.1: what the page does. One upload, then Analyze, Analyze again (e.g. after ticking
    "classify the whole image"), and Analyze in another tab, each naming the same uploaded file."""
    from types import SimpleNamespace

    demo, client, cache, temp = app
    before = snapshot(cache, temp)
    url = client.src
    photo = raw_upload(url, photos["face.jpg"])  # the FileData the page keeps showing
    assert Path(photo["path"]).is_file()
    for api, whole in (("all", False), ("all", True), ("gender", False), ("mood", False)):
        event, outputs = raw_call(url, api, [photo, "", whole], session_hash="page-1")
        assert event == "complete", (api, outputs)
        assert len(outputs[1]["faces"]) == 1
        assert snapshot(cache, temp) == before  # the upload file went with the first answer
    event, _ = raw_call(url, "age", [photo, "", False], session_hash="page-2")  # another browser tab
    assert event == "complete"

    demo.photos.release(SimpleNamespace(session_hash="page-1"))  # page 1 closed: page 2 still uses it
    assert raw_call(url, "age", [photo, "", False], session_hash="page-2")[0] == "complete"
    demo.photos.release(SimpleNamespace(session_hash="page-2"))  # the last one closed: dropped
    assert raw_call(url, "age", [photo, "", False], session_hash="page-2") == ("error", UNAVAILABLE)


def test_no_flagging_and_the_page_says_photos_are_not_stored(app):
    demo = app[0]
    assert getattr(demo, "flagging_mode", "never") == "never"
    buttons = [str(block.value).lower() for block in demo.blocks.values() if isinstance(block, gr.Button)]
    assert buttons and not any("flag" in text for text in buttons)
    page = "\n".join(str(block.value) for block in demo.blocks.values() if isinstance(block, gr.Markdown))
    assert PRIVACY in page and "not stored" in PRIVACY and "no flagging" in PRIVACY
    assert not (Path.cwd() / ".gradio" / "flagged").exists()
