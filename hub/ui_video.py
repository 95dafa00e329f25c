"""The app's "Video" and "Live webcam" tabs (built into hub/ui.py's page).

Nothing of a video is kept on disk: the upload is deleted once analysed, a URL's bytes stay in
memory, and the annotated MP4, the JSON and the CSV travel inside the answer as `data:` URLs.
Live frames arrive as data URLs too, and go back the same way.
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import gradio as gr
from PIL import Image

from .predict import Predictor
from .tracking import FaceTracker
from .video import BadVideo, VideoLimits, analyze_video, clock
from .video_draw import draw_tracked

LIMITS = VideoLimits()
LIVE_EVERY = 0.1        # seconds between webcam frames sent to the server
LIVE_SECONDS = 300      # one live session streams this long, then the user presses record again
LIVE_DETECT_EVERY = 2   # the webcam's frames are further apart than a file's: detect more often
VIDEO_TASK = "mood"     # the per-face timeline plots this task's probabilities
VIDEO_PRIVACY = ("Videos are not stored: the upload is deleted as soon as it has been analysed, the annotated "
                 "video and the downloads are sent back inside the answer without being written to disk, "
                 "and webcam frames are analysed in memory only.")


def data_url(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(payload).decode("ascii")


def inline_video(**kwargs) -> gr.Video:
    """An output gr.Video whose MP4 (bytes) travels inside the answer as a `data:` URL, never as a file."""
    shown = gr.Video(**kwargs)

    def postprocess(value: bytes | None):
        if not value:
            return None
        # no FileData "meta" key: Gradio then leaves the value alone instead of caching a file
        return {"url": data_url(value, "video/mp4"), "path": None, "orig_name": "faces.mp4",
                "mime_type": "video/mp4", "size": len(value), "is_stream": False}

    shown.postprocess = postprocess
    return shown


def downloads_html(result: dict, csv_text: str) -> str:
    """Download links whose files are inside the page (no file on the server)."""
    links = [(data_url(json.dumps(result, ensure_ascii=False).encode(), "application/json"), "faces.json", "JSON"),
             (data_url(csv_text.encode(), "text/csv"), "faces.csv", "CSV")]
    return " · ".join(f'<a href="{url}" download="{name}">Download {label}</a>' for url, name, label in links)


def timelines(frames: list[dict], task: str) -> dict[int, list[dict]]:
    """Per face: one row per frame and class (time, class, probability) of the smoothed answer."""
    rows: dict[int, list[dict]] = {}
    for record in frames:
        for face in record["faces"]:
            answer = face.get(task)
            if answer and "probs" in answer:
                rows.setdefault(face["number"], []).extend(
                    {"time": record["time"], task: label, "probability": p} for label, p in answer["probs"].items())
    return rows


def track_text(track: dict) -> str:
    parts = [f"#### Face {track['number']}",
             f"In view from {clock(track['first_seen'])} to {clock(track['last_seen'])} ({track['frames']} frames)."]
    for task, value in track.items():
        if not isinstance(value, dict):
            continue
        if "years" in value:
            parts.append(f"- **{task}**: {value['years']:.0f} years (likely {value['low']:.0f}–{value['high']:.0f}), "
                         f"band {value['band']}")
        else:
            parts.append(f"- **{task}**: {value['label']} ({value['confidence']:.0%} over {value['answers']} looks)")
    return "\n".join(parts)


def render_tracks(result: dict | None) -> None:
    if not result:
        return
    gr.Markdown(result["message"])
    for track in result["tracks"]:
        gr.Markdown(track_text(track))
        rows = result.get("timelines", {}).get(str(track["number"])) or []
        if rows:
            import pandas as pd

            gr.LinePlot(pd.DataFrame(rows), x="time", y="probability", color=VIDEO_TASK, y_lim=[0, 1],
                        x_lim=[0, max(result["seconds"], 0.1)], x_title="seconds", title=f"Face {track['number']}: {VIDEO_TASK} over time", height=220)


def video_endpoint(predictor: Predictor, photos):
    def analyze(video: str | None, url: str, progress=gr.Progress()):
        with closing_upload(photos, video):  # the upload is deleted when this ends
            source = video or fetch(url)
            try:
                analysis = analyze_video(source, predictor, limits=LIMITS,
                                         progress=lambda done, total: progress((done, total or None), unit="frames"))
            except BadVideo as err:
                raise gr.Error(str(err), print_exception=False) from None
        if not analysis.tracks:
            gr.Warning(analysis.message)
        full = analysis.as_dict(frames=True)
        result = analysis.as_dict(frames=False)
        result["timelines"] = {str(n): rows for n, rows in timelines(analysis.frames, VIDEO_TASK).items()}
        return analysis.video, result, downloads_html(full, analysis.to_csv())
    return analyze


def fetch(url: str | None) -> bytes:
    url = (url or "").strip()
    if not url:
        raise gr.Error("Upload a video, or paste a video URL.", print_exception=False)
    from .fetch import FetchRefused, fetch_image

    try:
        return fetch_image(url, max_bytes=LIMITS.bytes, timeout=30.0)
    except FetchRefused as err:
        raise gr.Error(str(err), print_exception=False) from None


def panel_text(faces) -> str:
    if not faces:
        return "No face in view."
    lines = []
    for face in faces:
        answers = ", ".join(f"{task} **{answer.label}**" + ("" if not hasattr(answer, "confidence") or
                                                             answer.uncertain else f" ({answer.confidence:.0%})")
                            for task, answer in face.answers.items())
        lines.append(f"- **Face {face.number}**: {answers or 'looking…'}")
    return "\n".join(lines)


@dataclass
class LiveSession:
    """One browser's webcam stream: its tracker, and a lock, since Gradio may hand the same
    session's next frame to another worker before this one is done."""
    tracker: FaceTracker
    lock: threading.Lock = field(default_factory=threading.Lock)


def live_endpoint(predictor: Predictor):
    """One webcam frame in, the frame with numbered boxes and the side panel out; the session lives
    in a gr.State. A frame that comes while the session's previous one is still being analysed is
    dropped, so the overlay stays live instead of falling behind. The tracker counts analysed frames,
    not seconds: on a busy machine frames are further apart, and faces should not expire between them."""
    def step(frame: Image.Image | None, session: LiveSession | None):
        if frame is None:
            return None, "", session
        if session is None:
            session = LiveSession(FaceTracker(predictor, detect_every=LIVE_DETECT_EVERY, frame_rate=1 / LIVE_EVERY))
        if not session.lock.acquire(blocking=False):
            return gr.skip(), gr.skip(), gr.skip()
        try:
            image = frame.convert("RGB")
            faces = session.tracker.step(image, (session.tracker.frame + 1) * LIVE_EVERY)
            return draw_tracked(image, faces), panel_text(faces), session
        finally:
            session.lock.release()
    return step


@contextmanager
def closing_upload(photos, path: str | None):
    try:
        yield
    finally:
        photos.forget_upload(path)


def video_tabs(predictor: Predictor, inline_image: Callable[..., gr.Image], photos) -> None:
    """The two tabs, inside the page's gr.Tabs; the photo tabs' inline image, and the app's upload checks
    (hub.uploads.Photos: a video must be this server's own upload, and is deleted once analysed)."""
    with gr.Tab("Video"):
        gr.Markdown("Each face is followed through the video and keeps its number while it is in view; its answers "
                    "are smoothed over time. Limits: " + f"{clock(LIMITS.seconds)}, {LIMITS.side} pixels on the "
                    f"longer side, {LIMITS.bytes / 1e6:.0f} MB.")
        with gr.Row():
            with gr.Column():
                video = photos.guard(gr.Video(label="Video", sources=["upload"]))
                url = gr.Textbox(label="…or a video URL", placeholder="https://…", max_lines=1,
                                 info="Used when no video is uploaded.")
                button = gr.Button("Analyze video", variant="primary")
            with gr.Column():
                annotated = inline_video(label="Faces, followed", interactive=False)
                downloads = gr.HTML()
                with gr.Accordion("JSON (what the API returns)", open=False):
                    result = gr.JSON(label="Result")

        @gr.render(inputs=result)
        def _tracks(value):
            render_tracks(value)

        gr.on([button.click, url.submit], video_endpoint(predictor, photos), inputs=[video, url],
              outputs=[annotated, result, downloads], api_name="video")
        gr.Markdown(f"**Privacy.** {VIDEO_PRIVACY}")

    with gr.Tab("Live webcam"):
        gr.Markdown("Start the webcam: every face gets a number that stays while it is in view, and its answers "
                    f"settle over a few frames. A session streams for up to {LIVE_SECONDS // 60} minutes.")
        with gr.Row():
            webcam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="pil")
            overlay = inline_image(label="Faces, followed live", type="pil", format="jpeg", interactive=False)
        panel = gr.Markdown()
        session = gr.State(None, time_to_live=LIVE_SECONDS + 60)
        webcam.stream(live_endpoint(predictor), inputs=[webcam, session], outputs=[overlay, panel, session],
                      stream_every=LIVE_EVERY, time_limit=LIVE_SECONDS, api_name="live")
        gr.Markdown(f"**Privacy.** {VIDEO_PRIVACY}")
