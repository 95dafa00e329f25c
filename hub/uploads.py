"""Photos sent to the app: which ones it accepts, the decoded copies it keeps in memory while they
are in use, and sweeping the upload folder (hub.upload_folder) of files past their time.

Gradio saves an upload as <upload folder>/<salted hash>/<name> and the page names that path in each
request. Gradio 6 checks such a path only when the request marks it as a file (`"meta":
{"_type": "gradio.FileData"}`): a plain dict reaches the component unchecked, and a marked one is
refused with the path in a traceback. So `Photos.check` sees every photo of every event first and
accepts only an upload this server received (resolved into this process's own folder), a photo
held in memory, or a shipped example; anything else gets UNAVAILABLE and nothing is opened.

The first request naming an upload decodes it once (`hub.decode.load_image`, which reduces or
refuses huge photos) and keeps the decoded photo; an analysis then deletes the file at once. Later
requests naming the same path, from any tab, reuse the photo until it has been idle for
HOLD_SECONDS or every session that used it has closed. Identical uploads share a path, so two users
sending the same photo share one copy instead of one deleting the other's file.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

from .decode import BadImage, load_image
from .upload_folder import LOCK_NAME, claim_upload_folder

UNAVAILABLE = ("This photo is not available any more: photos are kept only while they are in use. "
               "Please upload it again, pick an example, or paste an image URL.")
HOLD_SECONDS = 600          # a decoded photo is dropped after this long unused
HOLD_BYTES = int(os.environ.get("HUB_HOLD_MB", "512")) << 20  # or sooner, oldest first, past this
UPLOAD_MAX_AGE = 60         # an upload file is deleted this long after it arrived, used or not
ZIP_MAX_AGE = 900           # a zip for "Train your own" waits this long for its Train button (hub.ui_train)
PHOTO_MAX_MB = 10           # larger photo files are refused (the upload route may take larger zips: hub.ui_train)
SWEEP_SECONDS = 15

# Pillow's notes about a user's photo (its pixel count, corrupt EXIF) do not belong in the log.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


# --- photos held in memory --------------------------------------------------------------------

@dataclass
class _Held:
    photo: Image.Image | None
    problem: str | None  # why the upload is not a usable image (told again on each request)
    used: float = field(default_factory=time.monotonic)
    sessions: set[str] = field(default_factory=set)

    @property
    def bytes(self) -> int:
        return 0 if self.photo is None else self.photo.width * self.photo.height * 4


class Photos:
    """The photo inputs of one app: their check, the photos held and the upload folder's sweep."""

    def __init__(self, concurrency: int):
        self.folder = claim_upload_folder()
        self.slots = threading.BoundedSemaphore(concurrency)  # photos decoded or analysed at once
        self.demo: gr.Blocks | None = None
        self._inputs: list[gr.Image] = []
        self._guarded: list[gr.components.Component] = []  # other file inputs (videos): same check
        self._held: OrderedDict[str, _Held] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._decoding: dict[str, threading.Lock] = {}
        self._kept: set[str] = set()  # folders the sweep leaves alone (keep)
        _live.add(self)
        if not _sweeper.is_alive():
            _sweeper.start()

    def input(self, **kwargs) -> gr.Image:
        """A photo input (type "filepath"): its value reaches the endpoint as an accepted path."""
        photo = gr.Image(type="filepath", **kwargs)
        photo.preprocess = self.check  # instead of Gradio's, which opens whatever path it is given
        # decoded as soon as it is chosen, so it can wait in memory for Analyze (the file stays
        # a little while: the page shows it from there)
        photo.change(self._intake, inputs=photo, outputs=None, api_visibility="private",
                     show_progress="hidden", concurrency_id="photos", concurrency_limit=2)
        self._inputs.append(photo)
        return photo

    def guard(self, component):
        """Another file input (a video): its value must pass `check` too, before Gradio opens it."""
        self._guarded.append(component)
        return component

    def forget_upload(self, path: str | None) -> None:
        """Delete a guarded input's upload once its request is done (examples and other files stay)."""
        if path and self._is_upload(os.path.realpath(path)):
            self._delete_upload(os.path.realpath(path))

    def attach(self, demo: gr.Blocks) -> None:
        """Check the photo inputs of `demo`'s events before Gradio looks at them (call inside it)."""
        self.demo = demo
        demo.photos = self  # reachable from the app (tests, other tabs)
        demo.unload(self.release)
        preprocess = demo.preprocess_data
        ids = {photo._id for photo in self._inputs} | {block._id for block in self._guarded}

        async def checked(block_fn, inputs, *args, **kwargs):
            for i, block in enumerate(block_fn.inputs):
                if block._id in ids and i < len(inputs):
                    self.check(inputs[i])
            return await preprocess(block_fn, inputs, *args, **kwargs)

        demo.preprocess_data = checked

    # --- which photos are accepted

    def check(self, value) -> str | None:
        """The resolved path of an accepted photo, None for no photo; else gr.Error(UNAVAILABLE)."""
        if value is None:
            return None
        path = value.get("path") if isinstance(value, dict) else getattr(value, "path", None)
        if isinstance(path, str) and 0 < len(path) < 4096 and "\0" not in path:
            real = os.path.realpath(path)
            with self._lock:
                held = real in self._held
            if held or self._is_upload(real) or real in self._examples():
                return real
        raise gr.Error(UNAVAILABLE, print_exception=False)

    def _is_upload(self, real: str) -> bool:
        uploads = getattr(self.demo, "upload_file_set", ())
        return real in uploads and real.startswith(str(self.folder) + os.sep)

    def _examples(self) -> set[str]:
        return {os.path.realpath(path) for photo in self._inputs for path in photo.keep_in_cache}

    # --- the photo behind an accepted path

    def photo(self, path: str, session: str | None, delete: bool = True) -> Image.Image:
        """The decoded photo for a path `check` accepted; its upload file is deleted unless not
        `delete`. Call while holding one of `slots`."""
        if path in self._examples():
            return load_image(path)  # never deleted; small enough to decode each time
        with self._lock:
            decoding = self._decoding.setdefault(path, threading.Lock())
        with decoding:  # one decode per upload, however many requests name it at once
            held = self._get(path, session)
            if held is None:
                if not os.path.isfile(path):
                    with self._lock:
                        self._decoding.pop(path, None)
                    raise gr.Error(UNAVAILABLE, print_exception=False)
                try:
                    if os.path.getsize(path) > PHOTO_MAX_MB << 20:
                        raise BadImage(f"The photo is larger than {PHOTO_MAX_MB} MB.")
                    held = _Held(load_image(path), None)
                except BadImage as err:
                    held = _Held(None, str(err))
                self._put(path, held, session)
            if delete:
                self._delete_upload(path)
        if held.problem:
            raise gr.Error(held.problem, print_exception=False)
        return held.photo

    def _intake(self, path: str | None, request: gr.Request) -> None:
        if path and path not in self._examples():
            with self.slots:
                with suppress(gr.Error):  # a bad file is reported when it is analysed
                    self.photo(path, request.session_hash, delete=False)

    def _get(self, path: str, session: str | None) -> _Held | None:
        with self._lock:
            held = self._held.get(path)
            if held is not None:
                held.used = time.monotonic()
                held.sessions.add(session or "")
                self._held.move_to_end(path)
            return held

    def _put(self, path: str, held: _Held, session: str | None) -> None:
        with self._lock:
            held.sessions.add(session or "")
            self._held[path] = held
            total = sum(item.bytes for item in self._held.values())
            while total > HOLD_BYTES and len(self._held) > 1:  # the oldest go first, never this one
                oldest = next(iter(self._held))
                total -= self._held.pop(oldest).bytes
                self._decoding.pop(oldest, None)

    def _delete_upload(self, path: str) -> None:
        """Delete an upload file this server received, and its hash-named folder once empty."""
        with suppress(FileNotFoundError):
            os.remove(path)
        with suppress(OSError):
            os.rmdir(os.path.dirname(path))
        getattr(self.demo, "upload_file_set", set()).discard(path)
        for photo in self._inputs:
            photo.temp_files.discard(path)

    # --- letting go

    def release(self, request: gr.Request) -> None:
        """A page was closed: drop the photos only its session was using."""
        self._drop(lambda held: held.sessions.discard(request.session_hash) or not held.sessions)

    def expire(self, now: float | None = None) -> None:
        cutoff = (time.monotonic() if now is None else now) - HOLD_SECONDS
        self._drop(lambda held: held.used < cutoff)

    def _drop(self, should_drop) -> None:
        with self._lock:
            for path in [path for path, held in self._held.items() if should_drop(held)]:
                del self._held[path]
                self._decoding.pop(path, None)

    def held_paths(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def keep(self, folder: str | Path) -> None:
        """Leave a folder inside the upload folder to its owner until it deletes it: a model trained in a
        session keeps its download there, served as is (hub.ui_train)."""
        with self._lock:
            self._kept.add(str(folder))

    def sweep(self) -> None:
        """Delete what is older than UPLOAD_MAX_AGE in the upload folder: files (examples, kept folders and
        the lock stay) and empty folders (a new one may be about to receive an upload)."""
        keep, now = self._examples(), time.time()
        with self._lock:
            self._kept = {folder for folder in self._kept if os.path.isdir(folder)}
            kept = tuple(self._kept)
        for path in sorted(self.folder.rglob("*"), reverse=True):  # files before their folders
            with suppress(OSError):
                age = ZIP_MAX_AGE if path.suffix.lower() == ".zip" else UPLOAD_MAX_AGE
                if path.lstat().st_mtime >= now - age or path.name == LOCK_NAME or str(path) in keep or \
                        str(path).startswith(tuple(k + os.sep for k in kept)) or str(path) in kept:
                    continue
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()  # only when empty
                else:
                    self._delete_upload(str(path))


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_SECONDS)
        for photos in list(_live):
            with suppress(Exception):  # a sweep must never stop the sweeper
                photos.expire()
                photos.sweep()


_live: weakref.WeakSet[Photos] = weakref.WeakSet()
_sweeper = threading.Thread(target=_sweep_forever, name="hub-uploads-sweep", daemon=True)
