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
from contextlib import contextmanager, suppress

import gradio as gr
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from .config import PROJECT_ROOT, Manifest, TaskConfig, load_manifest
from .faces import BadImage, Face
from .models import ModelUnavailable
from .predict import Predictor
from .ui_video import video_tabs

log = logging.getLogger(__name__)

MAX_FILE_SIZE = "10mb"
CACHE_CLEANUP = (300, 300)  # every 5 min, delete cached files older than 5 min (a safety net: see below)
CONCURRENCY = int(os.environ.get("HUB_CONCURRENCY", "2"))  # requests run at once; the rest queue
DISPLAY_SIDE = 1024         # the annotated copy is downscaled to this; predictions use the full photo
EXAMPLES_DIR = PROJECT_ROOT / "examples"
API_ALL = "all"
PRIVACY = ("Uploaded photos are not stored: each one is deleted as soon as it has been analysed, "
           "the photo with boxes is sent back without being written to disk, and nothing about "
           "them is logged. There is no flagging.")


# --- uploads live only as long as their request -------------------------------------------
# Gradio keeps uploads in its cache folder (GRADIO_TEMP_DIR) until `delete_cache` runs. The app
# deletes each uploaded photo, and the folder named after its hash, when the last request using it
# ends (failed ones included); examples (the component's keep_in_cache) are left alone.

_uses: dict[str, int] = {}
_uses_lock = threading.Lock()


def _upload_path(path: str | None, photo: gr.Image) -> str | None:
    """The absolute path when it is an upload in this component's cache, else None."""
    if not path:
        return None
    path, cache = os.path.abspath(path), os.path.abspath(photo.GRADIO_CACHE)
    keep = {os.path.abspath(p) for p in photo.keep_in_cache}
    if path in keep or not path.startswith(cache + os.sep):
        return None
    return path


def _delete_upload(path: str, photo: gr.Image) -> None:
    with suppress(FileNotFoundError):
        os.remove(path)
    with suppress(OSError):  # the folder is named after the photo's hash: it goes too, once empty
        os.rmdir(os.path.dirname(path))
    photo.temp_files.discard(path)


@contextmanager
def upload_in_use(path: str | None, photo: gr.Image):
    """Count the requests using an uploaded photo; the last one out deletes it."""
    path = _upload_path(path, photo)
    if path is None:
        yield
        return
    with _uses_lock:
        _uses[path] = _uses.get(path, 0) + 1
    try:
        yield
    finally:
        with _uses_lock:
            _uses[path] -= 1
            if not _uses[path]:
                del _uses[path]
                _delete_upload(path, photo)


def photo_input(**kwargs) -> gr.Image:
    """gr.Image whose upload errors (not an image, too many pixels) reach the user as a clear
    message instead of Gradio's generic "Error"; an upload it refuses is deleted at once. Wrapped
    per instance: a gr.Image subclass would make Gradio write a .pyi file next to this module."""
    photo = gr.Image(**kwargs)
    preprocess = photo.preprocess

    def checked_preprocess(payload):
        try:
            return preprocess(payload)
        except Exception as err:
            with upload_in_use(getattr(payload, "path", None), photo):
                pass  # deleted unless another request is using it
            if isinstance(err, Image.DecompressionBombError):
                raise gr.Error("The image is too large.", print_exception=False) from None
            if isinstance(err, FileNotFoundError):
                raise gr.Error("This photo is gone: uploads are deleted once analysed. "
                               "Please upload it again.", print_exception=False) from None
            if isinstance(err, (UnidentifiedImageError, OSError, ValueError)):
                raise gr.Error(f"This file is not an image we can read ({err.__class__.__name__}).",
                               print_exception=False) from None
            raise

    photo.preprocess = checked_preprocess
    return photo


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

def read_source(photo: str | None, url: str | None):
    """The uploaded photo's path, else the bytes behind the URL (checked by hub.fetch)."""
    if photo:
        return photo
    url = (url or "").strip()
    if not url:
        raise gr.Error("Upload a photo, or paste an image URL.", print_exception=False)
    try:
        from .fetch import FetchRefused, fetch_image  # written separately; the app works without it
    except ImportError:
        raise gr.Error("This build cannot fetch image URLs; please upload the photo.", print_exception=False) from None
    try:
        return fetch_image(url)
    except FetchRefused as err:
        raise gr.Error(str(err), print_exception=False) from None


def make_endpoint(predictor: Predictor, tasks: list[str], photo_component: gr.Image | None = None):
    try:
        from .spaces_runtime import gpu_decorator  # spaces.GPU on a ZeroGPU Space, else a no-op
    except ImportError:
        def gpu_decorator(fn):
            return fn

    @gpu_decorator
    def analyze(photo: str | None, url: str, whole_image: bool) -> tuple[Image.Image, dict]:
        source = read_source(photo, url)
        try:
            analysis = predictor.analyze(source, tasks=tasks, whole_image_if_no_face=bool(whole_image))
        except BadImage as err:
            raise gr.Error(str(err), print_exception=False) from None
        if not analysis.faces:
            gr.Warning(analysis.message)
        return draw_faces(analysis.image, analysis.faces), analysis.as_dict()

    if photo_component is None:
        return analyze

    def analyze_then_forget(photo: str | None, url: str, whole_image: bool) -> tuple[Image.Image, dict]:
        with upload_in_use(photo, photo_component):  # outside the GPU worker: it counts per process
            return analyze(photo, url, whole_image)
    return analyze_then_forget


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


def analysis_tab(predictor: Predictor, api_name: str, tasks: list[TaskConfig], examples: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            photo = photo_input(label="Photo", type="filepath", image_mode=None,
                               sources=["upload", "webcam", "clipboard"])
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

    gr.on([button.click, url.submit], make_endpoint(predictor, [task.name for task in tasks], photo),
          inputs=[photo, url, whole], outputs=[boxes, result], api_name=api_name)


def build_demo(manifest: Manifest | None = None, predictor: Predictor | None = None) -> gr.Blocks:
    """The whole app; models are loaded here so that a missing one is reported on its tab."""
    manifest = manifest or load_manifest()
    predictor = predictor or Predictor(manifest)
    problems = {name: model_problem(predictor, name) for name in manifest.tasks}
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    space = manifest.space

    with gr.Blocks(title=space.title, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(f"# {space.emoji} {space.title}\n{space.short_description} "
                    "Faces are numbered left to right.")
        with gr.Tabs():
            with gr.Tab("All attributes"):
                missing = [problems[name] for name in manifest.tasks if problems[name]]
                if missing:
                    gr.Markdown("\n".join(f"- ⚠️ {text}" for text in missing))
                analysis_tab(predictor, API_ALL, list(manifest.tasks.values()), examples)
            for name, task in manifest.tasks.items():
                with gr.Tab(task.title):
                    gr.Markdown(f"⚠️ {problems[name]}" if problems[name] else task.caveat)
                    analysis_tab(predictor, name, [task], examples)
            video_tabs(predictor, inline_image, upload_in_use)
        gr.Markdown(about_markdown(manifest))
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the app's limits; host and port come from GRADIO_SERVER_NAME/PORT."""
    kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    return demo.launch(**kwargs)
