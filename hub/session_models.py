"""Models trained in a browser session: for that session only, they answer for one task of the
manifest (spaces.yaml `train_your_own.task`) in every tab and endpoint; other sessions see the
manifest's model. Each entry holds the small head, the report and a folder with the download; it is
dropped when the session ends, after an idle hour, or when too many sessions hold one.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from .models import AttributeModel, ModelStore

IDLE_SECONDS = 3600
MAX_SESSIONS = 32


def current_session() -> str | None:
    """The session of the Gradio event running in this thread (Gradio keeps its request in a
    context variable for the event's function), or None outside an event."""
    try:
        from gradio.context import LocalContext
    except ImportError:
        return None
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) if request is not None else None


@dataclass
class SessionModel:
    model: AttributeModel
    folder: Path                 # temporary: the model folder and its zip, deleted with the entry
    report: dict = field(default_factory=dict)
    used: float = field(default_factory=time.monotonic)


class SessionModels:
    """A ModelStore in front of another: the session's own model first, for one task."""

    def __init__(self, store: ModelStore, task: str, idle_seconds: float = IDLE_SECONDS,
                 max_sessions: int = MAX_SESSIONS):
        self.store = store
        self.manifest = store.manifest
        self.task = task
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self._entries: OrderedDict[str, SessionModel] = OrderedDict()
        self._lock = threading.Lock()

    def entry(self, session: str | None) -> SessionModel | None:
        with self._lock:
            self._expire()
            found = self._entries.get(session) if session else None
            if found is not None:
                found.used = time.monotonic()
                self._entries.move_to_end(session)
            return found

    def get(self, name: str) -> AttributeModel:
        if name == self.task:
            found = self.entry(current_session())
            if found is not None:
                return found.model
        return self.store.get(name)

    def available(self, name: str) -> bool:
        return (name == self.task and self.entry(current_session()) is not None) or self.store.available(name)

    def put(self, session: str, entry: SessionModel) -> None:
        with self._lock:
            old = self._entries.pop(session, None)
            self._entries[session] = entry
            while len(self._entries) > self.max_sessions:
                _, evicted = self._entries.popitem(last=False)
                _delete(evicted)
        if old is not None and old.folder != entry.folder:
            _delete(old)

    def drop(self, session: str | None) -> None:
        with self._lock:
            found = self._entries.pop(session, None) if session else None
        if found is not None:
            _delete(found)

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
        for found in entries:
            _delete(found)

    def _expire(self) -> None:
        now = time.monotonic()
        for session in [s for s, e in self._entries.items() if now - e.used > self.idle_seconds]:
            _delete(self._entries.pop(session))


def _delete(entry: SessionModel) -> None:
    shutil.rmtree(entry.folder, ignore_errors=True)
