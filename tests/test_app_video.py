"""The Video and Live webcam tabs on a served app, through gradio_client: answers inline (nothing on
disk), clear messages for bad videos with the server still serving, URL fetch, live steps."""
import base64
import io
import json
import tempfile

import gradio as gr
import pytest

import video_clips as clips
from conftest import serve_photo, served_app
from hub.predict import Predictor
from hub.ui_video import live_endpoint
from test_privacy import snapshot
from test_video import audio_only, header_only_video


@pytest.fixture(scope="module")
def app(tiny_manifest, tmp_path_factory):
    from gradio_client import Client

    cache, temp = tmp_path_factory.mktemp("gradio_cache"), tmp_path_factory.mktemp("temp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        with served_app(tiny_manifest, cache) as (_, url):
            yield Client(url, verbose=False, download_files=False), cache, temp


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "three_heads.mp4"
    path.write_bytes(clips.mp4_bytes(clips.frames()[:16]))
    return path


def call(client, video=None, url=""):
    from gradio_client import handle_file

    return client.predict(handle_file(str(video)) if video else None, url, api_name="/video")


def decode_data_url(url: str) -> bytes:
    head, _, body = url.partition(",")
    assert head.endswith(";base64")
    return base64.b64decode(body)


def test_video_answer_is_inline_and_nothing_stays_on_disk(app, short_clip):
    import av

    client, cache, temp = app
    before = snapshot(cache, temp)
    video, result, downloads = call(client, short_clip)
    assert video["url"].startswith("data:video/mp4;base64,") and video["path"] is None
    mp4 = decode_data_url(video["url"])
    with av.open(io.BytesIO(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16
    assert [t["number"] for t in result["tracks"]] == [1, 2, 3] and "frames" not in result
    assert set(result["timelines"]) == {"1", "2", "3"} and result["timelines"]["1"][0]["time"] >= 0
    assert 'download="faces.json"' in downloads and 'download="faces.csv"' in downloads
    json_url = downloads.split('href="')[1].split('"')[0]
    full = json.loads(decode_data_url(json_url))
    assert len(full["frames"]) == 16 and full["tracks"] == result["tracks"]
    assert snapshot(cache, temp) == before  # the upload is gone and nothing else was written


@pytest.mark.parametrize("kind, message", [
    ("corrupt", "not a video we can read"), ("audio", "no video track"),
    ("huge", "3840x2160 pixels"), ("none", "Upload a video")])
def test_bad_videos_get_clear_messages_and_the_server_goes_on(app, short_clip, tmp_path, kind, message):
    from gradio_client.exceptions import AppError

    client, cache, temp = app
    path = {"corrupt": tmp_path / "corrupt.mp4", "audio": tmp_path / "sound.wav",
            "huge": tmp_path / "4k_10min.mp4", "none": None}[kind]
    if kind == "corrupt":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    elif kind == "audio":
        audio_only(path)
    elif kind == "huge":
        header_only_video(path, 3840, 2160, 600)
    before = snapshot(cache, temp)
    with pytest.raises(AppError, match=message):
        call(client, path)
    assert snapshot(cache, temp) == before  # the refused upload is deleted as well
    _, result, _ = call(client, short_clip)
    assert len(result["tracks"]) == 3


def test_video_url_is_fetched_in_memory(app, short_clip, monkeypatch):
    from gradio_client.exceptions import AppError

    client, _, _ = app
    with pytest.raises(AppError, match="loopback"):  # hub.fetch refuses the server's own network
        call(client, url="http://127.0.0.1:9/clip.mp4")
    monkeypatch.setenv("HUB_URL_ALLOW_HOSTS", "127.0.0.1")
    with serve_photo(short_clip.read_bytes(), name="clip.mp4") as url:
        _, result, _ = call(client, url=url)
    assert [t["number"] for t in result["tracks"]] == [1, 2, 3]


def test_live_steps_number_faces_and_fill_the_panel(tiny_manifest):
    step = live_endpoint(Predictor(tiny_manifest))
    session = None
    for image in clips.frames()[:16]:
        shown, panel, session = step(image, session)
    assert shown.size == clips.SIZE and session.tracker.frame == 15
    assert "**Face 1**" in panel and "**Face 3**" in panel and "mood" in panel
    assert step(None, session)[2] is session  # no frame (the stream stopped): nothing happens
    with session.lock:  # the session's previous frame is still being analysed: this one is dropped
        assert all(isinstance(out, type(gr.skip())) for out in step(clips.frames()[16], session))
    assert session.tracker.frame == 15
