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
from PIL import Image

from .config import PROJECT_ROOT, Manifest, TaskConfig, load_manifest
from .draw import draw_faces
from .decode import NOT_AN_IMAGE, BadImage, load_image
from .models import ModelUnavailable
from .predict import Predictor
from .ui_video import video_tabs
from .upload_folder import stop_on_sigterm
from .uploads import HOLD_SECONDS, PHOTO_MAX_MB, SWEEP_SECONDS, UPLOAD_MAX_AGE, Photos
from .views import error_result, render_faces

log = logging.getLogger(__name__)

CONCURRENCY = int(os.environ.get("HUB_CONCURRENCY", "2"))  # photos decoded or analysed at once; the rest wait
FETCH_SLOTS = 4  # image URLs downloaded at once, outside those slots: a slow server holds no analysis
EXAMPLES_DIR = PROJECT_ROOT / "examples"
API_ALL = "all"
WHOLE_IMAGE_LABEL = "Classify the whole image if no face is found"
WHOLE_IMAGE_OPTION = f"tick “{WHOLE_IMAGE_LABEL}”"  # how the no-face message names the checkbox
# Where a task without a model can get one: the "Train your own" tab when this server can train, else its owner
TRAIN_HERE = ("Train one yourself in the *Train your own* tab, from a zip of such photos: it takes a minute, "
              "and the new model then answers in this tab for the rest of your visit.")
TRAIN_ONE = ("Whoever runs this app can train one from such a folder: the *Train your own models* section of the "
             "project's README shows how, in one command.")
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


# --- the endpoint functions -------------------------------------------------------------------

_fetching = threading.BoundedSemaphore(FETCH_SLOTS)


class CannotAnalyse(ValueError):
    """A request the app cannot answer; the message, in plain words, is shown where the result goes."""


def read_source(photo: str | None, url: str | None) -> str | bytes:
    """The accepted photo's path, else the bytes behind the URL (checked by hub.fetch)."""
    if photo:
        return photo
    url = (url or "").strip()
    if not url:
        raise CannotAnalyse("Upload a photo, or paste an image URL, then press Analyze.")
    try:
        from .fetch import FetchRefused, fetch_image  # written separately; the app works without it
    except ImportError:
        raise CannotAnalyse("This build cannot fetch image URLs; please upload the photo.") from None
    if not _fetching.acquire(blocking=False):  # no queue: a waiting fetch would hold a request slot
        raise CannotAnalyse(f"{FETCH_SLOTS} image URLs are being fetched right now, the most at once. Please "
                            "try again in a moment, or upload the photo.")
    try:
        return fetch_image(url)
    except FetchRefused as err:
        raise CannotAnalyse(f"Could not get an image from this URL: {err}.") from None
    finally:
        _fetching.release()


def load_fetched(body: bytes) -> Image.Image:
    try:
        return load_image(body)
    except BadImage as err:
        if str(err) == NOT_AN_IMAGE:  # e.g. the address of a web page rather than of its picture
            raise CannotAnalyse("This URL does not lead to an image we can read. Paste the address of "
                                "the image itself (right-click the picture, then copy its address).") from None
        raise


def make_endpoint(predictor: Predictor, tasks: list[str] | None, photos: Photos):
    """The tab's function: (photo, url, whole_image) -> (photo with boxes, result JSON). `tasks`
    None means every task with a model. A request that cannot be answered returns no photo and a
    result with `error`, so that the reason stays on the page where the answer would be."""
    try:
        from .spaces_runtime import gpu_decorator  # spaces.GPU on a ZeroGPU Space, else a no-op
    except ImportError:
        def gpu_decorator(fn):
            return fn

    @gpu_decorator
    def run(image: Image.Image, whole_image: bool) -> tuple[Image.Image, dict]:
        analysis = predictor.analyze(image, tasks=tasks, whole_image_if_no_face=bool(whole_image))
        return draw_faces(analysis.image, analysis.faces), analysis.as_dict(WHOLE_IMAGE_OPTION)

    def analyze(photo: str | None, url: str, whole_image: bool,
                request: gr.Request) -> tuple[Image.Image | None, dict]:
        try:
            source = read_source(photo, url)  # a URL is fetched before taking a slot
            with photos.slots:  # decoding and analysing: memory and CPU for CONCURRENCY photos at a time
                image = load_fetched(source) if isinstance(source, bytes) else \
                    photos.photo(source, request.session_hash)
                return run(image, whole_image)
        except (CannotAnalyse, BadImage) as err:
            return None, error_result(str(err))
        except gr.Error as err:  # hub.uploads: a photo that is not held any more, or not an image
            return None, error_result(err.message)
        except Exception:  # noqa: BLE001 - the user gets a sentence, the owner the traceback
            log.exception("analysis failed")
            return None, error_result("Something went wrong while analysing this photo. Please try again, "
                                      "or try another photo.")
    return analyze


def check_upload(photos: Photos):
    """On upload, before Analyze: the photo is decoded (and kept for Analyze, as hub.uploads does)
    and a file that is not an image (say, text renamed .jpg) is refused at once, in the result
    panel, and deleted.

    Values go in and out unprocessed (the event has preprocess and postprocess off) and unchanged
    ones are sent back as they came: an update such as gr.skip() would make Gradio rebuild the
    component for the session from its constructor, without the wrappers of Photos.input and
    inline_image (the annotated photo would then be written to the cache)."""
    def check(payload: dict | None, boxes: dict | None, shown: dict | None, request: gr.Request):
        path = photos.check(payload)  # an upload this server received, else gr.Error
        if path is None:
            return payload, boxes, shown
        try:
            with photos.slots:
                photos.photo(path, request.session_hash, delete=False)
        except gr.Error as err:
            photos.forget_upload(path)
            return None, None, error_result(err.message)
        return payload, boxes, None if (shown or {}).get("error") else shown  # a refusal is over
    return check


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
        log.warning("%s", err)  # the full story (how to train one, a refused pickle...) for the owner
        return err.advice


def header_markdown(manifest: Manifest, ready: list[str]) -> str:
    """The title, and what the app can answer now (tasks without a model are not promised)."""
    space = manifest.space
    names = [manifest.task(name).title.lower() for name in ready]
    listed = " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)
    what = (f"Finds every face in a photo and guesses, for each one, its {listed}." if names else
            "Finds every face in a photo. (No attribute model is installed yet.)")
    return f"# {space.emoji} {space.title}\n{what} Faces are numbered left to right."


def no_model_markdown(task: TaskConfig, trainable: bool = False) -> str:
    """A task's tab while it has no model: what is missing, in plain words, said once."""
    labels = ", ".join(task.labels)
    if task.dataset.id:
        source = f"It learns from labelled photos (the public collection {task.dataset.id})."
    else:
        source = ("No public collection of labelled photos exists for it, so it learns from photos you "
                  f"supply: a folder with one subfolder per answer ({labels}), each holding photos of "
                  "people with that label.")
    # with training here the heading stays true after a session trains one (this text does not change)
    heading = (f"### No {task.title.lower()} model comes with this app" if trainable else
               f"### This tab has no {task.title.lower()} model yet")
    return "\n\n".join([heading, source,
                        TRAIN_HERE if trainable else TRAIN_ONE, task.caveat])


def analysis_tab(predictor: Predictor, api_name: str, tasks: list[TaskConfig], examples: list[str],
                 photos: Photos, task_names: list[str] | None) -> None:
    with gr.Row():
        with gr.Column():
            photo = photos.input(label="Photo", image_mode=None, sources=["upload", "webcam", "clipboard"])
            url = gr.Textbox(label="…or an image URL", placeholder="https://…", max_lines=1,
                             info="Used when no photo is uploaded.")
            whole = gr.Checkbox(label=WHOLE_IMAGE_LABEL, info="For a photo that is already a close-up of one face.")
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

    photo.upload(check_upload(photos), inputs=[photo, boxes, result], outputs=[photo, boxes, result],
                 preprocess=False, postprocess=False, queue=False, api_visibility="private")
    gr.on([button.click, url.submit], make_endpoint(predictor, task_names, photos),
          inputs=[photo, url, whole], outputs=[boxes, result], api_name=api_name,
          concurrency_id="analysis", concurrency_limit=CONCURRENCY + FETCH_SLOTS)


def build_demo(manifest: Manifest | None = None, predictor: Predictor | None = None) -> gr.Blocks:
    """The whole app; models are loaded here so that a missing one is reported on its tab."""
    from .ui_train import enable_session_models, training_problem, train_your_own_tab

    manifest = manifest or load_manifest()
    predictor = predictor or Predictor(manifest)
    problems = {name: model_problem(predictor, name) for name in manifest.tasks}
    ready = [name for name in manifest.tasks if not problems[name]]
    sessions = enable_session_models(predictor, manifest)  # a model trained in a session answers in its tabs
    trainable = manifest.train_your_own.task if training_problem(manifest) is None else None
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    photos = Photos(CONCURRENCY)  # first: it sets the upload folder the components below use

    with gr.Blocks(title=manifest.space.title) as demo:
        gr.Markdown(header_markdown(manifest, ready))
        with gr.Tabs():
            with gr.Tab("All attributes"):  # every task that has a model
                analysis_tab(predictor, API_ALL, list(manifest.tasks.values()), examples, photos, None)
            for name, task in manifest.tasks.items():
                with gr.Tab(task.title):
                    gr.Markdown(no_model_markdown(task, name == trainable) if problems[name] else task.caveat)
                    # without a model, and no way to train one here, the tab shows only the note above (its API
                    # endpoint stays); a model trained in the "Train your own" tab answers in these controls
                    with gr.Column(visible=not problems[name] or name == trainable):
                        analysis_tab(predictor, name, [task], examples, photos, [name])
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
