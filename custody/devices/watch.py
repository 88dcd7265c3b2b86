"""Watch folders: a dock that copies to a share, or a card reader's drop folder, as a media source.

watchdog follows the folders (inotify; polling for network shares, which send
no inotify events). A file is handed on only when it is complete: it was
closed after writing, or its size and mtime have not changed for the settle
time. Files already there at start are considered too. Files whose name, or the name of a folder
between the watched folder and them, matches [ingest] skip_names are never handed on: they are
a copy in progress under a temporary name (rsync writes ".NAME.XXXXXX", then renames it) or a
hidden folder's, as a walk of the folder would skip them.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from custody.devices.events import FileReady

log = logging.getLogger(__name__)


class _Pending:
    __slots__ = ("closed", "mtime_ns", "since", "size")

    def __init__(self, size: int, mtime_ns: int, now: float) -> None:
        self.size, self.mtime_ns, self.since, self.closed = size, mtime_ns, now, False


class WatchFolders(FileSystemEventHandler):
    """Follows folders and reports files once they are complete (see :meth:`ready`)."""

    def __init__(
        self, folders: list[Path], settle_seconds: float, polling: bool = False, skip_names: list[str] = ()
    ) -> None:
        self.folders = [Path(os.path.realpath(f)) for f in folders]
        self.settle_seconds = settle_seconds
        self.skip_names = list(skip_names)
        self._pending: dict[Path, _Pending] = {}
        self._handed: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._observer = PollingObserver(timeout=1) if polling else Observer()
        for folder in self.folders:
            self._observer.schedule(self, str(folder), recursive=True)

    def start(self) -> None:
        """Start following, and consider the files already there."""
        self._observer.start()
        for folder in self.folders:
            for path in _files_under(folder):
                self._touch(path, closed=False)

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=10)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if event.event_type in ("created", "modified", "closed"):
            self._touch(Path(os.fsdecode(event.src_path)), closed=event.event_type == "closed")
        elif event.event_type == "moved":
            self._forget(Path(os.fsdecode(event.src_path)))
            self._touch(Path(os.fsdecode(event.dest_path)), closed=True)
        elif event.event_type == "deleted":
            self._forget(Path(os.fsdecode(event.src_path)))

    def ready(self, now: float | None = None) -> list[FileReady]:
        """Return the files that became complete since the last call (each version once)."""
        now = time.monotonic() if now is None else now
        done: list[FileReady] = []
        with self._lock:
            for path, pending in list(self._pending.items()):
                try:
                    info = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    del self._pending[path]
                    continue
                if (info.st_size, info.st_mtime_ns) != (pending.size, pending.mtime_ns):
                    pending.size, pending.mtime_ns, pending.since, pending.closed = (
                        info.st_size,
                        info.st_mtime_ns,
                        now,
                        False,
                    )
                    continue
                if pending.closed or now - pending.since >= self.settle_seconds:
                    del self._pending[path]
                    if self._handed.get(path) == (info.st_size, info.st_mtime_ns):
                        continue
                    self._handed[path] = (info.st_size, info.st_mtime_ns)
                    done.append(FileReady(folder=self._folder_of(path), path=path))
        return done

    def _touch(self, path: Path, closed: bool) -> None:
        if self._skipped(path):
            return
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return
        with self._lock:
            pending = self._pending.get(path)
            if pending is None or (info.st_size, info.st_mtime_ns) != (pending.size, pending.mtime_ns):
                self._pending[path] = pending = _Pending(info.st_size, info.st_mtime_ns, time.monotonic())
            pending.closed = pending.closed or closed

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._pending.pop(path, None)

    def _skipped(self, path: Path) -> bool:
        """Whether ``path``'s name, or a folder's between its watched folder and it, is to be skipped."""
        parts = (
            path.relative_to(self._folder_of(path)).parts
            if path.is_relative_to(self._folder_of(path))
            else ()
        )
        return any(fnmatch.fnmatchcase(part, pattern) for part in parts for pattern in self.skip_names)

    def _folder_of(self, path: Path) -> Path:
        for folder in self.folders:
            if path.is_relative_to(folder):
                return folder
        return path.parent


# As the ingest's own walk (custody.ingestd.pipeline.MAX_FOLDER_DEPTH): a deeper folder is a trap.
MAX_FOLDER_DEPTH = 64


def _files_under(folder: Path) -> list[Path]:
    """The files under ``folder``, walked with a stack (os.walk recurses: a 1,200-level trap would
    raise RecursionError), no deeper than MAX_FOLDER_DEPTH, links not followed, unreadable folders left."""
    found: list[Path] = []
    pending = [(os.fspath(folder), 0)]
    while pending:
        path, depth = pending.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if depth + 1 < MAX_FOLDER_DEPTH:
                            pending.append((entry.path, depth + 1))
                    elif entry.is_file(follow_symlinks=False):
                        found.append(Path(entry.path))
        except OSError:
            continue
    return found
