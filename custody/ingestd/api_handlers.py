"""What the daemon's API socket serves: each operation, run as its caller.

``whoami``; ``stream`` (an item's original or derivative, to the caller's own
process); ``ingest`` (the caller's own files, streamed from the caller's
process: see ``ingestd.upload``); ``verify_image`` (a disc image streamed the
same way, checked and thrown away); ``export`` and ``fetch`` (an evidence
disc made as the caller into a private outbox, then fetched by the caller's
process); ``burn_failed`` (the caller's own burn of such a disc failed). Every operation opens
the vault as its caller, so the vault's role and visibility checks apply.
The named operations (``custody.operations``: ls, show, tag, ...) are served
beside these; the composition root (``custody daemon``) hands them to the daemon.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from custody.config import Settings
from custody.errors import said_as_data
from custody.ingestd import delegation, upload
from custody.ingestd.api import (
    STREAM_CHUNK,
    ApiError,
    Channel,
    Stream,
    StreamAbandoned,
    Upload,
    progress_sender,
)
from custody.ingestd.pipeline import IngestSource
from custody.vault import Vault
from custody.vault.access import Caller
from custody.vault.wording import station_documents

NAMES = (
    "whoami", "stream", "ingest", "export", "verify_image", "burn_failed", "fetch", "web_sign_in", "web_config",
)  # fmt: skip


def api_handlers(settings: Settings) -> dict:
    """What the API socket serves besides the named operations: op -> function of (caller, args).
    Each opens the vault as its caller."""
    streams = _Streams(settings)
    return {name: getattr(streams, name) for name in NAMES}


class _Streams:
    """The socket's operations that move bytes, or tell who is asking (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox = _Outbox(settings.home / "run" / "outbox")

    def whoami(self, caller: Caller, args: dict) -> dict:
        return {
            **caller.as_dict(),
            "via": "daemon",
            "vault": str(self.settings.home),
            "station": station_documents(self.settings),
        }

    def web_sign_in(self, caller: Caller, args: dict) -> dict:
        """Check a person's password for the web platform (only its service user may ask); answer
        who they are and their roles. Audited either way (custody.vault.accounts)."""
        login, password = args.get("login"), args.get("password")
        with Vault(self.settings, caller.actor, caller=caller) as vault:
            if not delegation.is_web_service(self.settings, caller):
                vault.refuse("web-sign-in", "", "only the web platform's service user may check passwords")
            if not isinstance(login, str) or not isinstance(password, str) or len(password) > 1024:
                raise ApiError(message='web_sign_in needs "login" and "password" (text)')
            vault.accounts.sign_in(login, password, via=caller.name)
        person = delegation.delegate(self.settings, caller, login)
        return {"login": person.name, "roles": list(person.roles)}

    def web_config(self, caller: Caller, args: dict) -> dict:
        """The [web] settings, for the web service (it cannot read the vault's config)."""
        if not delegation.is_web_service(self.settings, caller):
            with Vault(self.settings, caller.actor, caller=caller) as vault:
                vault.refuse("web-config", "", "only the web platform's service user may ask")
        web = self.settings.web
        return {"session_minutes": web.session_minutes, "bind": web.bind, "port": web.port,
                "tls": bool(web.tls_certificate)}  # fmt: skip

    def stream(self, caller: Caller, args: dict) -> Stream:
        ref, role, to = args.get("ref"), args.get("role"), args.get("to")
        if not isinstance(ref, str) or role not in (None, "playable", "thumbnail"):
            raise ApiError(
                message='stream needs "ref" (an item) and an optional "role" (playable or thumbnail)'
            )
        first, last = args.get("first"), args.get("last")
        byte_range = None
        if first is not None or last is not None:
            if type(first) is not int or type(last) is not int or not 0 <= first <= last:
                raise ApiError(message='stream "first" and "last" are byte positions, first <= last')
            byte_range = (first, last)

        def produce(write) -> dict:
            with Vault(self.settings, caller.actor, caller=caller) as vault:
                item = vault.originals.stream(
                    ref, _Sink(write), destination=str(to or "stdout"), role=role, to_file=bool(to),
                    byte_range=byte_range,
                )  # fmt: skip
                written = vault.originals.derivative_of(item, role) if role else item
            sha256, size = written.sha256, written.size
            return {"item": item.item_id, "sha256": sha256, "size": size, "role": role}

        return Stream(produce)

    def ingest(self, caller: Caller, args: dict) -> Upload:
        """Seal files the caller's process sends; refused before any byte moves without the ingest role."""
        officer, recorder = args.get("officer"), args.get("recorder")
        if not all(value is None or isinstance(value, str) for value in (officer, recorder)):
            raise ApiError(message='ingest "officer" and "recorder" must be strings')
        with Vault(self.settings, caller.actor, caller=caller) as vault:
            vault.authorize("ingest")
        source = IngestSource(paths=[], source=upload.SOURCE, officer=officer, recorder=recorder)

        def receive(channel: Channel) -> dict:
            with Vault(self.settings, caller.actor, caller=caller) as vault:
                return upload.UploadSession(
                    vault,
                    source,
                    self.settings.ingest,
                    channel,
                    max_bytes=self.settings.access.max_upload_mb << 20,
                ).receive()

        return Upload(receive, offer={"skip_names": self.settings.ingest.skip_names})

    def export(self, caller: Caller, args: dict) -> dict:
        """Make an evidence disc export as the caller into the daemon's outbox; the client fetches it."""
        from custody.vault.disc.export import DiscExporter, ExportRequest

        fields = {
            k: args.get(k)
            for k in (
                "case",
                "maker",
                "extractor",
                "media",
                "capacity",
                "playable",
                "items",
                "with_documents",
            )
        }
        if not isinstance(fields["case"], str) or not isinstance(args.get("out"), str):
            raise ApiError(message='export needs "case" and "out" (where the client writes the image)')
        if not isinstance(fields["items"] or [], list):
            raise ApiError(message='export "items" must be a list of item ids')
        folder = self.outbox.new(caller.uid)
        send = progress_sender()
        try:
            with Vault(self.settings, caller.actor, caller=caller) as vault:
                # The client hears each step as an in-process export says it; an image is named
                # as in the outbox, the client says where it writes it.
                on_step = (lambda text: send(_step(text, f"{folder}/"))) if send else None
                record = DiscExporter(vault, on_step=on_step).export(
                    ExportRequest(
                        case=fields["case"],
                        maker=str(fields["maker"] or ""),
                        extractor=str(fields["extractor"] or ""),
                        items=[str(i) for i in fields["items"] or []],
                        playable=fields["playable"] is not False,
                        with_documents=fields["with_documents"] is True,
                        media=str(fields["media"]) if fields["media"] else None,
                        capacity=int(fields["capacity"]) if fields["capacity"] else None,
                        iso=folder / "export.iso",
                        delivered_to=f"client uid {caller.uid}: {args['out']}",
                    )
                )
        except BaseException:
            self.outbox.remove(folder.name)
            raise
        return {
            "record": record.as_dict(),
            "token": folder.name,
            "files": sorted(p.name for p in folder.iterdir()),
        }

    def verify_image(self, caller: Caller, args: dict) -> Upload:
        """Re-verify a disc image the caller's process sends (their ISO, or their drive read whole):
        received into a private outbox folder, checked as the caller, removed."""
        from custody.vault.disc.export import DiscExporter

        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(message='verify_image needs "name" (the image or drive, as the client knows it)')
        described = f"{name} (sent by uid {caller.uid})"
        with Vault(self.settings, caller.actor, caller=caller) as vault:
            vault.authorize("export", described)

        def receive(channel: Channel) -> dict:
            channel.message()  # the client's announcement; the bytes follow
            folder = self.outbox.new(caller.uid)
            try:
                image = folder / "image.iso"
                incoming = channel.incoming()
                try:
                    with open(image, "xb") as sink:
                        shutil.copyfileobj(incoming, sink, STREAM_CHUNK)
                except OSError as exc:
                    incoming.drain()
                    raise ApiError(
                        message=f"cannot keep the image to verify it: {exc.strerror or exc} (the daemon's disk)"
                    ) from exc
                except StreamAbandoned as exc:
                    raise ApiError(message=f"{name} not verified: {exc.reason}", exit_code=1) from exc
                with Vault(self.settings, caller.actor, caller=caller) as vault:
                    return DiscExporter(vault).verify(str(image), described_as=described).as_dict()
            finally:
                self.outbox.remove(folder.name)

        return Upload(receive)

    def burn_failed(self, caller: Caller, args: dict) -> dict:
        """The caller's process could not burn a disc of an export: recorded (audited) as the caller."""
        from custody.vault.disc.export import DiscExporter

        export, disc, target, error = (args.get(k) for k in ("export", "disc", "target", "error"))
        if not (isinstance(export, str) and isinstance(disc, int) and isinstance(target, str)):
            raise ApiError(message='burn_failed needs "export", "disc" (a number), "target" and "error"')
        with Vault(self.settings, caller.actor, caller=caller) as vault:
            DiscExporter(vault).record_burn_failure(export, disc, f"{target} (uid {caller.uid})", str(error))
        return {"recorded": True}

    def fetch(self, caller: Caller, args: dict) -> Stream | dict:
        """One file of an export in the outbox, to the caller who made it; ``done`` empties that self.outbox."""
        folder = self.outbox.folder(str(args.get("token", "")), caller.uid)
        if args.get("done"):
            self.outbox.remove(folder.name)
            return {"removed": True}
        path = folder / str(args.get("name", ""))
        if path.parent != folder or not path.is_file():
            raise ApiError(message="no such file in this export")

        def produce(write) -> dict:
            with open(path, "rb") as source:
                while chunk := source.read(1 << 20):
                    write(chunk)
            return {"name": path.name, "size": path.stat().st_size}

        return Stream(produce)


class _Outbox:
    """Exports made for API clients wait here (0700, inside the vault home) until fetched.

    Each is a folder owned, in the daemon's memory, by the uid that made it;
    a daemon start clears what an earlier one left.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._owners: dict[str, int] = {}
        self._lock = threading.Lock()
        shutil.rmtree(root, ignore_errors=True)

    def new(self, uid: int) -> Path:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(dir=self.root))
        with self._lock:
            self._owners[folder.name] = uid
        return folder

    def folder(self, token: str, uid: int) -> Path:
        with self._lock:
            owner = self._owners.get(token)
        if owner != uid:
            raise ApiError(message="no such export waiting for you")
        return self.root / token

    def remove(self, token: str) -> None:
        with self._lock:
            self._owners.pop(token, None)
        shutil.rmtree(self.root / token, ignore_errors=True)


class _Sink:
    """A binary file's write/flush over a stream's write function."""

    def __init__(self, write) -> None:
        self.write = write

    def flush(self) -> None:
        pass


def _step(text: str, hidden: str) -> dict:
    """An export's step as the client hears it: the English text, and the words as data (to say
    in the client's language), with the outbox folder ``hidden`` left out of both."""
    said = said_as_data(text)
    if isinstance(said, dict):
        said["fields"] = {
            name: value.replace(hidden, "") if isinstance(value, str) else value
            for name, value in said["fields"].items()
        }
    return {"step": text.replace(hidden, ""), "said": said}
