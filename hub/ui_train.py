"""The "Train your own" tab: a zip of labelled photos (or a Hub dataset) in, the seed study's report out,
and a model that answers at once in this session's tabs and endpoints (`hub.session_models`).

The work is finetune's head-only path (`finetune.head_train`): the app's crop, the frozen face backbone,
a logistic-regression head. Limits come from spaces.yaml `train_your_own`: zip size, photos, seconds;
one training at a time per server; the upload and its photos are deleted as soon as the faces are cropped,
the crops once the report is drawn; the session keeps only the head, the report and the model folder.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

import gradio as gr
from .config import Manifest
from .models import AttributeModel, fetch_location, read_model_config
from .session_models import SessionModel, SessionModels
from .train_data import UploadRefused, unpack
from .train_outputs import MODEL_NAME, download_zip, report_html, summary

log = logging.getLogger(__name__)
TRAIN_MODULES = ("finetune", "datasets", "sklearn", "scipy", "matplotlib")  # the `train` extra, and finetune/
GONE = "This zip is not available any more: zips wait 15 minutes for Train. Please upload it again."

_training = threading.Lock()  # one training at a time per server


def training_problem(manifest: Manifest, environ=os.environ) -> str | None:
    """Why this server cannot train, in plain words; None when it can."""
    own = manifest.train_your_own
    if not own.enabled(environ):
        return ("Training is turned off on this Space. Its owner can turn it on in spaces.yaml "
                "(`train_your_own: enabled_on_spaces: true`), or run the app on your own computer, "
                "where it is on.")
    if own.task not in manifest.tasks:
        return f"spaces.yaml train_your_own.task names '{own.task}', which is not a task of this app."
    if not all(importlib.util.find_spec(name) for name in TRAIN_MODULES):
        return "This installation cannot train: install the training packages (`pip install -e '.[train]'`)."
    try:
        read_model_config(fetch_location(manifest.resolve(own.backbone)))
    except Exception:  # noqa: BLE001 - missing folder, offline Hub...: one message for the owner
        return f"The face backbone is missing at {own.backbone} (spaces.yaml train_your_own.backbone)."
    return None


def enable_session_models(predictor, manifest: Manifest) -> SessionModels:
    """Put the session store in front of the predictor's, so models trained here answer in every tab."""
    sessions = SessionModels(predictor.store, manifest.train_your_own.task)
    predictor.store = sessions
    return sessions


# --- the pieces of one training --------------------------------------------------------------------

def _uploaded_zip(path, demo: gr.Blocks) -> str | None:
    """The path of a zip this server received into its own upload folder (as hub.uploads checks photos);
    any other path, however it is spelt, gets one message that says nothing about the server's files."""
    if not path:
        return None
    path = path.get("path") if isinstance(path, dict) else path
    real = os.path.realpath(path) if isinstance(path, str) and "\0" not in path else ""
    folder = str(getattr(getattr(demo, "photos", None), "folder", ""))
    if not (folder and real.startswith(folder + os.sep) and real in getattr(demo, "upload_file_set", ())):
        raise gr.Error(GONE, print_exception=False)
    return real


def _forget(path: str | None, demo: gr.Blocks | None = None) -> None:
    if path:
        with suppress(FileNotFoundError):
            os.remove(path)
        with suppress(OSError):
            os.rmdir(os.path.dirname(path))
        getattr(demo, "upload_file_set", set()).discard(path)


def _served_model(manifest: Manifest, result, settings, folder: Path) -> AttributeModel:
    from finetune.head_only import SharedBackboneNet

    task = manifest.task(manifest.train_your_own.task)
    task = dataclasses.replace(task, labels=tuple(result.labels))
    net = SharedBackboneNet(settings, result.head, result.labels)
    return AttributeModel(task, net, read_model_config(folder), source="trained in this session")


def _no_face_names(entries: list[str], photos: Path) -> list[str]:
    """finetune's `split:path` log lines as the names the user's zip has."""
    names = []
    for entry in entries:
        path = entry.partition(":")[2]
        with suppress(ValueError):
            path = str(Path(path).relative_to(photos))
        names.append(path)
    return names


def _plain(err: Exception) -> str:
    """finetune's data messages without their command-line advice."""
    return re.sub(r";? ?(add images or )?drop them with --drop-classes.*$", "; add photos that show the face clearly.",
                  str(err))


def train(sessions: SessionModels, manifest: Manifest, session: str, zip_path: str | None, dataset_id: str,
          already_cropped: bool, work: Path, progress, uploads=None) -> tuple[str, dict, str]:
    """One training for one session: (report HTML, summary, path of the download zip). The session's folder
    (model and download) is made in the app's upload folder (`uploads`: hub.uploads.Photos), kept from its sweep,
    so that Gradio serves the download as it is for as long as the session lasts."""
    from finetune.config import ConfigError, TrainConfig
    from finetune.data import load_task_data
    from finetune.errors import DataError
    from finetune.head_only import Deadline, TrainingStopped, torch_threads
    from finetune.head_train import head_settings, resolve_head_only, train_head
    from finetune.user_data import as_dataset, hub_dataset

    own = manifest.train_your_own
    started, deadline = time.perf_counter(), Deadline(own.max_seconds)
    photos, notes, source = work / "photos", [], (dataset_id or "").strip()
    folder = Path(tempfile.mkdtemp(prefix="trained-", dir=getattr(uploads, "folder", None)))
    if uploads is not None:
        uploads.keep(folder)
    try:
        progress(0.0, desc="checking the photos")
        if zip_path:
            upload = unpack(zip_path, photos, max_bytes=own.max_zip_mb * 2**20, max_images=own.max_images)
            _forget(zip_path)  # unpacked: the upload itself goes now
            raw, notes, source = as_dataset(upload), upload.notes, "uploaded zip"
        else:
            raw = hub_dataset(source, own.max_images)
        cfg = TrainConfig(task=own.task, data=source, output=str(folder / MODEL_NAME), seed=0,
                          detect_faces=not already_cropped, test_flip=own.test_time_flip, threads=own.threads,
                          cache_dir=str(work / "crops"))
        settings = resolve_head_only(cfg, manifest)
        shown = dataclasses.replace(settings, output=Path(MODEL_NAME), state_dir=Path(".train") / MODEL_NAME,
                                    config=dataclasses.replace(settings.config, cache_dir=".cache/finetune",
                                                               init_from=own.backbone))
        with torch_threads(own.threads):
            progress(0.05, desc="finding and cropping the faces")
            data = load_task_data(settings.data, raw=raw, before_row=deadline.check)
            shutil.rmtree(photos, ignore_errors=True)  # cropped: the photos go now, the crops after the report
            result = train_head(settings, data, head_settings(settings), deadline=deadline, started=started,
                                shown=shown, progress=lambda f, what: progress(0.5 + 0.45 * f, desc=what))
        progress(0.97, desc="writing the report")
        no_face = _no_face_names(data.no_face, photos)
        report = report_html(result.metrics, settings.output, no_face, notes, manifest.task(own.task).title)
        download = download_zip(manifest, settings.output, result.labels, folder / f"{MODEL_NAME}.zip")
        model = _served_model(manifest, result, head_settings(settings), settings.output)
    except BaseException as err:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, (DataError, TrainingStopped, ConfigError)):
            raise UploadRefused(_plain(err)) from None
        raise
    finally:  # whatever happened: no photo and no crop stays on disk
        shutil.rmtree(photos, ignore_errors=True)
        shutil.rmtree(work / "crops", ignore_errors=True)
    sessions.put(session, SessionModel(model=model, folder=folder, report=summary(result.metrics, no_face)))
    return report, summary(result.metrics, no_face), str(download)


def make_train_endpoint(sessions: SessionModels, manifest: Manifest, demo: gr.Blocks):
    def train_your_own(zip_file: str | None, dataset_id: str, already_cropped: bool,
                       request: gr.Request, progress=gr.Progress()):
        zip_path = _uploaded_zip(zip_file, demo)
        try:
            if not zip_path and not (dataset_id or "").strip():
                raise UploadRefused("Upload a zip of labelled photos, or name a Hub dataset.")
            if not _training.acquire(blocking=False):
                raise UploadRefused("Another training is running on this server; try again in a minute.")
            try:
                work = Path(tempfile.mkdtemp(prefix="hub-train-"))
                try:
                    report, result, download = train(sessions, manifest, request.session_hash, zip_path,
                                                     dataset_id, bool(already_cropped), work, progress,
                                                     uploads=getattr(demo, "photos", None))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            finally:
                _training.release()
        except UploadRefused as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception:
            log.exception("training failed")
            raise gr.Error("Training failed on this server. Try again, or with other photos.",
                           print_exception=False) from None
        finally:
            _forget(zip_path, demo)
        return report, result, gr.DownloadButton(value=download, visible=True)
    return train_your_own


def make_push(sessions: SessionModels):
    def push_to_hub(repo_id: str, token: str, request: gr.Request) -> str:
        entry = sessions.entry(request.session_hash)
        if entry is None:
            raise gr.Error("Train a model first: there is none in this session.", print_exception=False)
        repo_id, token = (repo_id or "").strip(), (token or "").strip()
        if not re.match(r"^[\w.-]+/[\w.-]+$", repo_id):
            raise gr.Error("Name the model repo as your-user/model-name.", print_exception=False)
        if not token:
            raise gr.Error("Paste a Hugging Face token with write access (it is used once, never stored).",
                           print_exception=False)
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=str(entry.folder / "model"), repo_type="model",
                              commit_message="Upload a model trained in the Face Attribute Hub")
        except Exception as err:  # noqa: BLE001 - offline, bad token, no rights: one plain message
            offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in str(err).lower()
            raise gr.Error("Could not upload: " + ("this server cannot reach the Hugging Face Hub." if offline else
                           "check the token (it needs write access) and the repo name."),
                           print_exception=False) from None
        return f"Uploaded: https://huggingface.co/{repo_id} (use it with `hf-hub:{repo_id}` in spaces.yaml)."
    return push_to_hub


INTRO = """### Train your own face attribute
Teach the app a label of your own from a few hundred photos, in about a minute.

1. Make a **zip** with one folder per label, each with at least 10 photos
   (`cs/anna.jpg`, `econ/ben.jpg`...; or `train/<label>/...` with optional `validation/` and `test/` folders;
   or the study's `index.csv` with the columns `id,category` beside `<id>.jpg`).
2. Upload it, or name a Hub dataset, and press **Train**. The app finds the faces, lists the photos
   where it found none, embeds each face with a frozen face network, splits the rest 70/20/10
   (unless your zip has its own splits) and fits a small classifier.
3. Read the report, then try your model in the **{title}** and **All attributes** tabs.

Limits here: a zip up to {zip_mb} MB, {images:,} photos, {seconds} s of training, one training at a time.
Your photos are deleted as soon as the faces are cropped; the model and its report stay only for
this session (download them to keep them)."""


def train_your_own_tab(demo: gr.Blocks, sessions: SessionModels, manifest: Manifest) -> None:
    """The tab's content (inside `with gr.Tab(...)`), or why training is off."""
    own = manifest.train_your_own
    problem = training_problem(manifest)
    if problem:
        gr.Markdown(f"⚠️ {problem}")
        return
    title = manifest.task(own.task).title
    demo.upload_limit_mb = own.max_zip_mb  # hub.ui.launch lets zips this large through the upload route
    gr.Markdown(INTRO.format(title=title, zip_mb=own.max_zip_mb, images=own.max_images, seconds=own.max_seconds))
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Zip of labelled photos", file_types=[".zip"], type="filepath")
            dataset_id = gr.Textbox(label="…or a Hub dataset (owner/name, columns image and label)", max_lines=1)
            cropped = gr.Checkbox(label="The photos are already cropped faces (skip face detection)")
            button = gr.Button("Train", variant="primary")
        with gr.Column():
            download = gr.DownloadButton("Download the model (zip)", visible=False)
            with gr.Accordion("Push to the Hugging Face Hub", open=False):
                repo = gr.Textbox(label="Model repo", placeholder="your-user/my-face-model", max_lines=1)
                token = gr.Textbox(label="Token with write access (used once, not stored)", type="password",
                                   max_lines=1)
                push = gr.Button("Push")
                pushed = gr.Markdown()
    report = gr.HTML()
    with gr.Accordion("JSON (what the API returns)", open=False):
        result = gr.JSON(label="Summary")
    button.click(make_train_endpoint(sessions, manifest, demo), inputs=[upload, dataset_id, cropped],
                 outputs=[report, result, download], api_name="train", concurrency_limit=1)
    push.click(make_push(sessions), inputs=[repo, token], outputs=[pushed], api_visibility="private")
    def forget_session(request: gr.Request) -> None:
        sessions.drop(request.session_hash)

    demo.unload(forget_session)
