"""The upload folder this process owns: made GRADIO_TEMP_DIR at start, deleted at exit (even on SIGTERM),
and folders left by apps that stopped without cleaning up are deleted by the next one."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import suppress
from pathlib import Path

try:
    import fcntl  # the lock that tells a live app's folder from one left by a stopped app
except ImportError:  # Windows: folders left by a crash are not cleared
    fcntl = None

FOLDER_PREFIX = "face-attribute-hub-uploads-"
LOCK_NAME = ".in-use"

_claimed: dict[Path, int] = {}  # this process's folders -> their open, locked lock file


def claim_upload_folder() -> Path:
    """This process's own upload folder, made GRADIO_TEMP_DIR (inside the one set, if any).

    Folders left by apps that are no longer running are deleted first; this one goes at exit."""
    current = os.environ.get("GRADIO_TEMP_DIR")
    if current and Path(current) in _claimed:
        return Path(current)
    user = getattr(os, "getuid", lambda: "")()  # one base per user on a shared machine
    base = Path(current or Path(tempfile.gettempdir()) / f"face-attribute-hub-{user}").resolve()
    base.mkdir(parents=True, exist_ok=True)
    remove_abandoned_folders(base)
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=base)).resolve()
    lock = os.open(folder / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    if fcntl is not None:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if not _claimed:
        atexit.register(release_upload_folders)
    _claimed[folder] = lock
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def remove_abandoned_folders(base: Path) -> None:
    """Delete the upload folders under `base` whose app has stopped (their lock is free)."""
    if fcntl is None:
        return
    for folder in base.glob(FOLDER_PREFIX + "*"):
        if folder in _claimed or not (folder / LOCK_NAME).is_file():
            continue
        try:
            lock = os.open(folder / LOCK_NAME, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a running app holds it
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(lock)


def release_upload_folders() -> None:
    """At exit: this process's upload folders go, with whatever is left in them."""
    for folder, lock in list(_claimed.items()):
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(OSError):
            os.close(lock)
        del _claimed[folder]


def stop_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so that the upload folder goes with the app (atexit)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
