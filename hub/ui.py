"""The Gradio app: an "All attributes" tab, then one tab per task of spaces.yaml.

Each tab is a named API endpoint (`/all`, `/gender`, ...) taking (photo, image URL, whole-image
flag) and returning (the photo with numbered boxes, `Analysis.as_dict()`), so that
`gradio_client` gets plain JSON. Per-face widgets are drawn from that JSON by `gr.render`.
"""
from __future__ import annotations

import base64
import io
import logging
import os
import threading

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from .config import PROJECT_ROOT, Manifest, TaskConfig, load_manifest
from .faces import BadImage, Face, load_image
from .models import ModelUnavailable
from .predict import Predictor
from .ui_video import video_tabs
from .uploads import HOLD_SECONDS, PHOTO_MAX_MB, SWEEP_SECONDS, UPLOAD_MAX_AGE, Photos, stop_on_sigterm

log = logging.getLogger(__name__)

CONCURRENCY = int(os.environ.get("HUB_CONCURRENCY", "2"))  # photos decoded or analysed at once; the rest wait
FETCH_SLOTS = 4  # image URLs downloaded at once, outside those slots: a slow server holds no analysis
DISPLAY_SIDE = 1024         # the annotated copy is downscaled to this; predictions use the full photo
EXAMPLES_DIR = PROJECT_ROOT / "examples"
API_ALL = "all"
PRIVACY = ("Uploaded photos are not stored: the upload file is deleted as soon as the photo has been "
           f"analysed (within {(UPLOAD_MAX_AGE + SWEEP_SECONDS) // 60 + 1} minutes if it never is), the photo "
           f"stays in the server's memory only while you use it ({HOLD_SECONDS // 60} minutes after its last "
           "analysis, or until you close the page), the photo with boxes is sent back without being written to "
           "disk, and nothing about them is logged. There is no flagging.")


def inline_image(**kwargs) -> gr.Image:
    """An output gr.Image whose picture travels inside the answer as a JPEG `data:` URL, so it is
    never written to Gradio's cache on disk. API clients get `{"url": "data:image/jpeg;base64,..."}`."""
    shown = gr.Image(**kwargs)

    def postprocess(value: Image.Image | None):
        if value is None:
            return None
        buffer = io.BytesIO()
        value.convert("RGB").save(buffer, format="JPEG", quality=90)
        url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        # no FileData "meta" key: Gradio then leaves the value alone instead of caching a file
        return {"url": url, "path": None, "orig_name": "faces.jpeg", "mime_type": "image/jpeg",
                "size": buffer.tell(), "is_stream": False}

    shown.postprocess = postprocess
    return shown


# --- drawing -----------------------------------------------------------------------------

def draw_faces(image: Image.Image, faces: list[Face], max_side: int = DISPLAY_SIDE) -> Image.Image:
    """A copy of the photo, at most `max_side`, with each face boxed and numbered."""
    scale = min(1.0, max_side / max(image.size))
    shown = image.copy() if scale == 1.0 else image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(shown)
    width = max(2, round(max(shown.size) / 250))
    font = ImageFont.load_default(size=max(12, round(max(shown.size) / 30)))
    for face in faces:
        x1, y1, x2, y2 = (v * scale for v in face.box)
        draw.rectangle((x1, y1, x2, y2), outline=(255, 214, 0), width=width)
        tag = str(face.index)
        left, top, right, bottom = draw.textbbox((x1, y1), tag, font=font)
        pad = width
        tag_y = max(0.0, y1 - (bottom - top) - 2 * pad)  # above the box, inside the photo if no room
        draw.rectangle((x1, tag_y, x1 + right - left + 2 * pad, tag_y + bottom - top + 2 * pad), fill=(255, 214, 0))
        draw.text((x1 + pad - (left - x1), tag_y + pad - (top - y1)), tag, fill=(0, 0, 0), font=font)
    return shown


# --- the endpoint functions -------------------------------------------------------------------

_fetching = threading.BoundedSemaphore(FETCH_SLOTS)


def read_source(photo: str | None, url: str | None) -> str | bytes:
    """The accepted photo's path, else the bytes behind the URL (checked by hub.fetch)."""
    if photo:
        return photo
    url = (url or "").strip()
    if not url:
        raise gr.Error("Upload a photo, or paste an image URL.", print_exception=False)
    try:
        from .fetch import FetchRefused, fetch_image  # written separately; the app works without it
    except ImportError:
        raise gr.Error("This build cannot fetch image URLs; please upload the photo.", print_exception=False) from None
    if not _fetching.acquire(blocking=False):  # no queue: a waiting fetch would hold a request slot
        raise gr.Error(f"{FETCH_SLOTS} image URLs are being fetched right now, the most at once. Please try "
                       "again in a moment, or upload the photo.", print_exception=False)
    try:
        return fetch_image(url)
    except FetchRefused as err:
        raise gr.Error(str(err), print_exception=False) from None
    finally:
        _fetching.release()


def make_endpoint(predictor: Predictor, tasks: list[str], photos: Photos):
    try:
        from .spaces_runtime import gpu_decorator  # spaces.GPU on a ZeroGPU Space, else a no-op
    except ImportError:
        def gpu_decorator(fn):
            return fn

    @gpu_decorator
    def run(image: Image.Image, whole_image: bool) -> tuple[Image.Image, dict]:
        analysis = predictor.analyze(image, tasks=tasks, whole_image_if_no_face=bool(whole_image))
        if not analysis.faces:
            gr.Warning(analysis.message)
        return draw_faces(analysis.image, analysis.faces), analysis.as_dict()

    def analyze(photo: str | None, url: str, whole_image: bool, request: gr.Request) -> tuple[Image.Image, dict]:
        source = read_source(photo, url)  # a URL is fetched before taking a slot
        with photos.slots:  # decoding and analysing: memory and CPU for CONCURRENCY photos at a time
            try:
                image = load_image(source) if isinstance(source, bytes) else photos.photo(source, request.session_hash)
            except BadImage as err:
                raise gr.Error(str(err), print_exception=False) from None
            return run(image, whole_image)
    return analyze


# --- per-face views, built from the endpoint's JSON --------------------------------------------

def age_text(result: dict) -> str:
    return (f"**{result['years']:.0f} years** (likely {result['low']:.0f}–{result['high']:.0f}), "
            f"band {result['band']}")


def face_widget(task: TaskConfig, face: dict, title: str) -> None:
    result = face.get(task.name)
    if result is None:
        return
    if not task.is_classification:
        gr.Markdown(f"{title}: {age_text(result)}")
        return
    if result["uncertain"]:
        title += f": uncertain (top class below {task.uncertain_below:.0%})"
    gr.Label(value=result["probs"], label=title, num_top_classes=3, show_heading=not result["uncertain"])


def render_faces(result: dict | None, tasks: list[TaskConfig]) -> None:
    if not result:
        return
    gr.Markdown(result["message"])
    for face in result["faces"]:
        if len(tasks) == 1:
            face_widget(tasks[0], face, f"Face {face['index']}")
            continue
        gr.Markdown(f"#### Face {face['index']}")
        with gr.Row():
            for task in tasks:
                face_widget(task, face, task.title)


# --- layout -------------------------------------------------------------------------------------

def about_markdown(manifest: Manifest) -> str:
    lines = ["### What these predictions can and cannot mean",
             "Each model guesses a label that people in its training photos were given, from pixels "
             "alone. It is often wrong, more so for groups that are rare in its data, and it knows "
             "nothing about who a person is. Do not use it to make decisions about anyone. "
             "Answers below a task's confidence threshold read *uncertain*.", ""]
    lines += [f"- **{task.title}**: {task.caveat}" for task in manifest.tasks.values() if task.caveat]
    lines += ["", f"**Privacy.** {PRIVACY}"]
    return "\n".join(lines)


def model_problem(predictor: Predictor, name: str) -> str | None:
    """None when the task's model loads (it is loaded now, so the first request is fast)."""
    try:
        predictor.store.get(name)
        return None
    except ModelUnavailable as err:
        log.warning("%s", err)  # the full story (e.g. a refused pickle) for the Space's owner
        return err.advice


def analysis_tab(predictor: Predictor, api_name: str, tasks: list[TaskConfig], examples: list[str],
                 photos: Photos) -> None:
    with gr.Row():
        with gr.Column():
            photo = photos.input(label="Photo", image_mode=None, sources=["upload", "webcam", "clipboard"])
            url = gr.Textbox(label="…or an image URL", placeholder="https://…", max_lines=1,
                             info="Used when no photo is uploaded.")
            whole = gr.Checkbox(label="Classify the whole image if no face is found")
            button = gr.Button("Analyze", variant="primary")
            if examples:
                gr.Examples(examples, inputs=[photo], api_visibility="private")
        with gr.Column():
            boxes = inline_image(label="Faces, numbered left to right", type="pil", format="jpeg",
                                 interactive=False)
            with gr.Accordion("JSON (what the API returns)", open=False):
                result = gr.JSON(label="Result")

            @gr.render(inputs=result)
            def _faces(value):
                render_faces(value, tasks)

    gr.on([button.click, url.submit], make_endpoint(predictor, [task.name for task in tasks], photos),
          inputs=[photo, url, whole], outputs=[boxes, result], api_name=api_name,
          concurrency_id="analysis", concurrency_limit=CONCURRENCY + FETCH_SLOTS)


def build_demo(manifest: Manifest | None = None, predictor: Predictor | None = None) -> gr.Blocks:
    """The whole app; models are loaded here so that a missing one is reported on its tab."""
    from .ui_train import enable_session_models, training_problem, train_your_own_tab

    manifest = manifest or load_manifest()
    predictor = predictor or Predictor(manifest)
    problems = {name: model_problem(predictor, name) for name in manifest.tasks}
    sessions = enable_session_models(predictor, manifest)  # a model trained in a session answers in its tabs
    trainable = manifest.train_your_own.task if training_problem(manifest) is None else None
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    space = manifest.space
    photos = Photos(CONCURRENCY)  # first: it sets the upload folder the components below use

    with gr.Blocks(title=space.title) as demo:
        gr.Markdown(f"# {space.emoji} {space.title}\n{space.short_description} "
                    "Faces are numbered left to right.")
        with gr.Tabs():
            with gr.Tab("All attributes"):
                missing = [problems[name] for name in manifest.tasks if problems[name]]
                if missing:
                    gr.Markdown("\n".join(f"- ⚠️ {text}" for text in missing))
                analysis_tab(predictor, API_ALL, list(manifest.tasks.values()), examples, photos)
            for name, task in manifest.tasks.items():
                with gr.Tab(task.title):
                    if name == trainable and problems[name]:
                        problems[name] = (f"No model ships for {task.title.lower()}: train your own in the "
                                          "*Train your own* tab, and it answers here for your session.")
                    gr.Markdown(f"⚠️ {problems[name]}" if problems[name] else task.caveat)
                    analysis_tab(predictor, name, [task], examples, photos)
            video_tabs(predictor, inline_image, photos)
            with gr.Tab("Train your own"):
                train_your_own_tab(demo, sessions, manifest)
        gr.Markdown(about_markdown(manifest))
        photos.attach(demo)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the app's limits; host and port come from GRADIO_SERVER_NAME/PORT. Zips for the
    "Train your own" tab may be larger than photos (hub.uploads refuses photos over PHOTO_MAX_MB)."""
    kwargs.setdefault("max_file_size", f"{max(PHOTO_MAX_MB, getattr(demo, 'upload_limit_mb', 0))}mb")
    if not kwargs.get("prevent_thread_lock"):
        stop_on_sigterm()  # so that the upload folder is deleted when a Space or systemd stops the app
    return demo.launch(**kwargs)
