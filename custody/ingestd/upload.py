"""Ingest of a person's own files through the daemon's socket.

A clerk who does not own the vault runs ``custody ingest`` as usual. Their own
process finds and reads the files, with their own rights (the daemon never
opens a path a client names), and streams each one over the socket; the daemon
seals it as the pipeline seals a file it reads itself: hashed and encrypted as
it arrives, read back from disk, catalogued and audited as the clerk, media
work queued. Neither side holds a whole file in memory.

The conversation (an ``api.Upload``): the daemon's go-ahead carries the
vault's skip rules (``skip_names``); then, per file, a message
``{"path_hex", "size", "mtime_ns"}`` followed by the file's bytes (or
``{"path_hex", ..., "error"}`` for a file the client could not read at all, so
the failure is recorded like any other), answered with the file's outcome;
finally ``{"end": true}``, answered with the daemon's count. A file larger
than the daemon receives into memory and of the size of an item is hashed as
it comes, nothing written: a copy of an item is answered as a duplicate,
another with ``{"status": "resend"}``, and the client sends it once more with
``"again": true``, to be sealed. The client's word for a content is never
taken: a client that always sends ``"again"`` only loses the saving.

A disc image to verify (``send_image``) goes the same way: one announcement,
the image's bytes, the daemon's check as the final answer.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from custody.config import IngestSettings
from custody.errors import CustodyError
from custody.ingestd import api
from custody.ingestd.pipeline import (
    ERROR,
    READ_WHOLE_AT_MOST,
    SOURCE_OPEN_FLAGS,
    FileTask,
    IngestObserver,
    IngestSession,
    IngestSource,
    IngestSummary,
    change_while_reading,
    damaged_on_disk,
    discover_files,
    read_error,
    read_up_to,
)
from custody.vault import Vault
from custody.vault.sealing import ObjectDamaged

SOURCE = "upload"  # an item's source when its file came through the socket


class UploadSession(IngestSession):
    """The daemon's side: files arrive over ``channel``; after ``pull`` the stages are the pipeline's."""

    group_files = 1  # each file's outcome is the answer the client waits for before the next
    store_behind = False

    def __init__(
        self,
        vault: Vault,
        source: IngestSource,
        settings: IngestSettings,
        channel: api.Channel,
        max_bytes: int = 1 << 62,
    ) -> None:
        super().__init__(vault, source, settings)
        self.channel = channel
        self.max_bytes = max_bytes  # the most one file may announce ([access] max_upload_mb)
        self._incoming: api.IncomingBytes | None = None

    def receive(self) -> dict:
        """Take each file the client announces through the stages, answering with its outcome,
        until the client's end; return the count. Raise api.UploadBroken when the client goes away
        (a file cut off is recorded as a failed ingest, nothing of it is kept)."""
        summary = IngestSummary()
        while not (message := self.channel.message()).get("end"):
            task = _announced(message)
            self._incoming = None if task.outcome else self.channel.incoming()
            if self._hashes_first(task, message):
                self.channel.answer(self._hash_first(task, summary))
                continue
            self.process(task, summary)
            self.channel.answer(task.as_dict())
        return summary.as_dict()

    def _hashes_first(self, task: FileTask, message: dict) -> bool:
        """Whether a file's bytes are hashed before anything is sealed: a file too large to receive
        into memory, of the size of an item, not sent again at the daemon's asking."""
        return (
            task.outcome is None
            and READ_WHOLE_AT_MOST < task.size <= self.max_bytes
            and not message.get("again")
            and self.vault.intake.size_known(task.size)
        )

    def _hash_first(self, task: FileTask, summary: IngestSummary) -> dict:
        """Hash the file's bytes as they come, writing nothing: a copy of an item is recorded as a
        duplicate; another file is answered ``{"status": "resend"}``, and the client sends it again
        with ``"again": true`` to be sealed (its bytes were not kept). Return the answer."""
        assert self._incoming is not None
        hasher, received = hashlib.sha256(), 0
        try:
            while chunk := self._incoming.read(api.STREAM_CHUNK):
                hasher.update(chunk)
                received += len(chunk)
        except api.StreamAbandoned as exc:
            task.drop(exc.reason)
            self.finish(task, summary)
            return task.as_dict()
        except api.UploadBroken as exc:  # (recorded as the sealing path records it)
            self.vault.record_failure(
                "ingest", {"path": task.display_path, "reason": f"upload cut off: {exc}"}
            )
            raise
        if received != task.size:
            task.drop(
                f"{task.display_path} sent {received} bytes, announced {task.size}; nothing stored: send it again"
            )
            self.finish(task, summary)
            return task.as_dict()
        existing = self.vault.item_by_sha256(hasher.hexdigest())
        if existing is None:
            return {"status": "resend", "name": task.display_path}
        self.duplicate_found(task, existing)
        self.finish(task, summary)
        return task.as_dict()

    def content_hash(self, task: FileTask) -> str | None:
        """None: the path is the client's, named for the record; the daemon, which runs as root, never
        opens it. A duplicate sent this way is recognised from the bytes that come: before any write
        for a file up to READ_WHOLE_AT_MOST (received into memory first), once sealed for a larger one
        (skip_duplicate; the client's word for its content is never taken)."""
        return None

    def pull(self, task: FileTask) -> None:
        """Seal the bytes the client sends into staging; nothing is kept of a file the client abandons."""
        assert self._incoming is not None
        if task.size > self.max_bytes:
            self._incoming.drain()
            task.drop(
                f"{task.display_path} not stored: {task.size} bytes announced, more than the "
                f"{self.max_bytes >> 20} MB one upload may bring ([access] max_upload_mb)"
            )
            return
        try:
            source: BinaryIO = self._incoming
            if task.size <= READ_WHOLE_AT_MOST:
                data = read_up_to(self._incoming, task.size + 1)  # (one more: a longer file is seen)
                if len(data) == task.size and self._held(task, data):
                    return
                if len(data) > task.size:
                    self._incoming.drain()
                source = io.BytesIO(data)
            staged = self.vault.intake.stage(source, task.size, self.progress)
        except Vault.DiskFull as exc:
            self._incoming.drain()
            self.vault_disk_full(task, exc)
            return
        except api.StreamAbandoned as exc:
            task.drop(exc.reason)
            return
        except api.UploadBroken as exc:
            self.vault.record_failure(
                "ingest", {"path": task.display_path, "reason": f"upload cut off: {exc}"}
            )
            raise
        except ObjectDamaged as exc:
            task.drop(damaged_on_disk(task, exc))
            return
        except OSError as exc:  # the client's side is UploadBroken: this is the vault's disk
            self._incoming.drain()
            task.drop(f"{task.display_path} not stored: {exc.strerror or exc} writing the vault")
            return
        if staged.size != task.size:
            self.vault.intake.discard(staged)
            task.drop(
                f"{task.display_path} sent {staged.size} bytes, announced {task.size}; nothing stored: send it again"
            )
            return
        task.staged = staged
        if staged.size == 0:
            task.warning = "empty file"


def _announced(message: dict) -> FileTask:
    """The FileTask a client's message announces (already failed when the client says it could not read it)."""
    try:
        path = os.fsdecode(bytes.fromhex(message["path_hex"]))
        size, mtime_ns = int(message["size"]), int(message["mtime_ns"])
    except (KeyError, TypeError, ValueError) as exc:
        raise api.UploadBroken('a file message needs "path_hex", "size" and "mtime_ns"') from exc
    if size < 0 or not path:
        raise api.UploadBroken("a file message with an empty path or a negative size")
    task = FileTask(path=path, size=size, mtime_ns=mtime_ns)
    if message.get("error"):
        task.drop(str(message["error"]))
    return task


def send_files(socket_path: Path, source: IngestSource, observer: IngestObserver) -> IngestSummary:
    """The client's side: find the files of ``source`` with the daemon's skip rules, send each to
    the daemon serving ``socket_path``; return the summary, each file's outcome as the daemon decided it.

    Raise api.ApiError when the daemon refuses (no ingest role: exit 13),
    api.ApiUnavailable when it cannot be reached or goes away part way.
    """
    summary = IngestSummary()

    def converse(sending: api.Sending) -> None:
        skip_names = [str(name) for name in sending.offer.get("skip_names", [])]
        for task in discover_files(source.paths, skip_names, summary, observer):
            _send_file(sending, task, observer)
            answer = sending.answer()
            if answer.get("status") == "resend":  # hashed, not held: now to be sealed
                _send_file(sending, task, observer, again=True)
                answer = sending.answer()
            task.outcome, task.message = answer["status"], answer.get("message")
            task.warning = answer.get("warning")
            if answer.get("id"):
                task.reported = (answer["id"], answer["sha256"])
            summary.add(task)
            observer.file_done(task)
        sending.message({"end": True})  # the daemon's count comes as the final answer

    api.upload(socket_path, "ingest", {"officer": source.officer, "recorder": source.recorder}, converse)
    return summary


def _send_file(sending: api.Sending, task: FileTask, observer: IngestObserver, again: bool = False) -> None:
    """Announce ``task`` and send its bytes, read by this process (the same checks as the pipeline's
    pull). ``again``: the daemon hashed the file and asked for it again, to seal it."""
    announce = {"path_hex": os.fsencode(task.path).hex(), "size": task.size, "mtime_ns": task.mtime_ns}
    if again:
        announce["again"] = True
    if task.outcome == ERROR:  # discovery could not read it: the daemon records the failure
        sending.message({**announce, "error": task.message})
        return
    try:
        fd = os.open(task.path, SOURCE_OPEN_FLAGS)
    except OSError as exc:
        sending.message({**announce, "error": read_error(task, exc, before=True)})
        return
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            sending.message(
                {**announce, "error": f"{task.display_path} is no longer a regular file; not read"}
            )
            return
        sending.message({**announce, "size": before.st_size, "mtime_ns": before.st_mtime_ns})
        sent, failed = _send_bytes(sending, fd, on_chunk=(lambda size: None) if again else observer.progress)
        if failed is not None:
            sending.abandon(read_error(task, failed, before=False))
            return
        changed = change_while_reading(before, os.fstat(fd), sent)
        if changed:
            sending.abandon(f"{task.display_path} {changed}; nothing stored: ingest it again")
        else:
            sending.end()
    finally:
        os.close(fd)


def _send_bytes(
    sending: api.Sending, fd: int, length: int | None = None, on_chunk=lambda size: None
) -> tuple[int, OSError | None]:
    """Send what ``fd`` reads (at most ``length`` bytes) as chunks of the current stream, without
    ending it; return how many bytes were sent and the read error that stopped it, if one did."""
    sent = 0
    while length is None or sent < length:
        wanted = api.STREAM_CHUNK if length is None else min(length - sent, api.STREAM_CHUNK)
        try:
            chunk = os.read(fd, wanted)
        except OSError as exc:
            return sent, exc
        if not chunk:
            break
        sending.chunk(chunk)
        sent += len(chunk)
        on_chunk(len(chunk))
    return sent, None


class ImageUnreadable(CustodyError):
    """cannot read {target}: {why}"""

    exit_code = 5


def send_image(socket_path: Path, target: str, length: int | None = None) -> dict:
    """Send a disc image whole (an ISO file, a drive, a stdio:PATH drive), read by this process, to the
    daemon serving ``socket_path`` to verify; return its check (DiscCheck.as_dict). ``length``: send
    only the first so many bytes (a burned disc's image, without what the drive reads past it).

    Raise ImageUnreadable when this process cannot open or read it (nothing
    is verified), and as ``send_files`` does when the daemon refuses.
    """
    from custody.vault.disc.export import DiscNotFound  # (the disc modules load slowly; rarely needed)

    path = target.removeprefix("stdio:")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise DiscNotFound(target=target) from exc
    except OSError as exc:
        raise ImageUnreadable(target=target, why=exc.strerror or str(exc)) from exc
    failure: list[str] = []

    def converse(sending: api.Sending) -> None:
        sending.message({"name": target})
        _sent, failed = _send_bytes(sending, fd, length)
        if failed is not None:
            failure.append(failed.strerror or str(failed))
            sending.abandon(f"cannot read it: {failure[0]}")
        else:
            sending.end()

    try:
        return api.upload(socket_path, "verify_image", {"name": target}, converse, timeout=None)
    except api.ApiError as exc:
        if failure:
            raise ImageUnreadable(target=target, why=failure[0]) from exc
        raise
    finally:
        os.close(fd)
