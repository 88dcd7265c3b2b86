"""The docking daemon: device events in, dock sessions run, footage sealed, mounts cleaned.

One main thread follows udev and the watch folders, decides what to do with
each device (:class:`DockPolicy`), mounts, discovers and closes sessions,
and writes the live status file. A bounded pool of workers pulls files,
oldest deadline first across every docked recorder.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from custody.config import Settings, load_settings
from custody.devices.events import (
    DeviceIdentity,
    FileReady,
    MediaReady,
    MediaSource,
    RecorderDocked,
    RecorderUndocked,
)
from custody.devices.mounts import Mount, Mounter, MountFailed, helper_pids
from custody.devices.profiles import choose_profile
from custody.errors import CustodyError
from custody.ingestd import delegation
from custody.ingestd.alerting import AlertWorker
from custody.ingestd.api import ApiServer
from custody.ingestd.api_handlers import api_handlers
from custody.ingestd.dock import DockSession
from custody.ingestd.jobs import MediaJobs
from custody.ingestd.notify import notify, watchdog_interval
from custody.ingestd.pipeline import FileTask, Skipped
from custody.vault import Vault
from custody.vault.access import RoleMap
from custody.vault.objects import release_freed_memory
from custody.vault.offsite.replicator import Replicator
from custody.vault.private_files import write_private_file
from custody.vault.registry import Recorder
from custody.vault.timestamps import to_text, utc_now

log = logging.getLogger(__name__)

STATUS_NAME = "run/status.json"
STATUS_INTERVAL_SECONDS = 0.5
TRIM_INTERVAL_SECONDS = 10.0  # freed memory goes back to the system this often
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class DockDecision:
    """Whether to pull a docked device, with which profile, and why."""

    ingest: bool
    profile: str | None
    reason: str


class DockPolicy:
    """Decides what happens to a docked device: registered recorders are pulled, others are not.

    Unknown devices are ingested unassigned only when
    ``[dock] ingest_unknown_devices`` is true.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def decide(self, identity: DeviceIdentity, recorder: Recorder | None) -> DockDecision:
        profiles = self.settings.profiles
        if recorder is not None and recorder.retired_at:
            return DockDecision(
                False, None, f"recorder {recorder.serial} was retired on {recorder.retired_at}"
            )
        if recorder is None and not self.settings.dock.ingest_unknown_devices:
            return DockDecision(False, None, "device is not a registered recorder")
        profile = choose_profile(profiles, identity, recorder.profile if recorder else "")
        if profile is None:
            return DockDecision(False, None, "no recorder profile matches the device")
        if identity.fs_type not in profiles[profile].filesystems:
            return DockDecision(
                False, profile, f"filesystem {identity.fs_type!r} is not one profile {profile} reads"
            )
        if recorder is None:
            return DockDecision(True, profile, "unknown device, ingested unassigned as configured")
        return DockDecision(True, profile, "registered recorder")


class _Docked:
    """A device the daemon knows is plugged in, and its session if one runs."""

    def __init__(self, identity: DeviceIdentity, docked_at: datetime) -> None:
        self.identity = identity
        self.docked_at = docked_at
        self.mount: Mount | None = None
        self.session: DockSession | None = None
        self.closed = False
        self.refused_because: str | None = None  # why it is not ingested, once decided


class Daemon:
    """``custody daemon``: runs until SIGTERM/SIGINT; SIGHUP reloads the config."""

    def __init__(
        self,
        settings: Settings,
        actor: str,
        policy: DockPolicy | None = None,
        replica_locks: Callable | None = None,
        operations: Callable[[Settings], dict] | None = None,
    ) -> None:
        """``replica_locks(vault, settings)`` gives replication its Object Lock rule (retention's);
        ``operations(settings)`` the socket's named operations (``custody.operations.served``,
        given by the composition root: the operations sit above the daemon)."""
        self.settings = settings
        self.actor = actor
        self.policy = policy or DockPolicy(settings)
        self.replica_locks = replica_locks
        self.operations = operations or (lambda settings: {})
        self._stop = threading.Event()
        self._reload = False
        self._pending: dict[DockSession, collections.deque[FileTask]] = {}
        self._busy: set[DockSession] = set()
        self._queue_ready = threading.Condition()
        self._docked: dict[str, _Docked] = {}
        self._watch_sessions: list[DockSession] = []
        self._errors: list[dict] = []
        self._unknown_seen: list[dict] = []
        self._started_at = utc_now()
        self.vault: Vault | None = None

    # -- lifecycle --------------------------------------------------------

    def request_stop(self, *_args) -> None:
        self._stop.set()
        with self._queue_ready:
            self._queue_ready.notify_all()

    def request_reload(self, *_args) -> None:
        self._reload = True

    def run(self) -> None:
        """Serve until asked to stop; unmount everything on the way out. Raise Vault errors at start."""
        from custody.devices.udev import UdevWatcher  # pyudev only where devices are followed
        from custody.devices.watch import WatchFolders

        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        _require_private_home(self.settings.home)
        self.vault = Vault(self.settings, self.actor, writer=True)
        try:
            self._api = ApiServer(
                self.settings.api_socket,
                {**api_handlers(self.settings), **self.operations(self.settings)},
                RoleMap(self.settings.access.roles),
                owner_uid=os.geteuid(),
                group=self.settings.access.socket_group,
                request_timeout=self.settings.access.request_timeout_seconds,
                max_requests_per_second=self.settings.access.max_requests_per_second,
                max_connections_per_user=self.settings.access.max_connections_per_user,
                max_connections=self.settings.access.max_connections,
                delegate=lambda caller, login: delegation.delegate(self.settings, caller, login),
            )
            self._api.start()
            # Serving from now on: say so at once, so that `status` through this daemon never
            # reports it not running (the rest of the start-up follows).
            self._write_status()
            self.mounter = Mounter(self._mount_root())
            stale = self.mounter.clean_stale()
            if stale:
                self.vault.record("stale-mounts-removed", {"mounts": [str(p) for p in stale]})
            interrupted = self.vault.registry.interrupt_open_dock_sessions()
            if interrupted:
                log.warning(
                    "dock sessions %s were cut off by an earlier stop; their recorders resume at the next dock",
                    interrupted,
                )
            watcher = UdevWatcher()
            watch = None
            if self.settings.dock.watch_folders:
                watch = WatchFolders(
                    [Path(f) for f in self.settings.dock.watch_folders],
                    self.settings.dock.watch_settle_seconds,
                    self.settings.dock.watch_polling,
                    self.settings.ingest.skip_names,
                )
                watch.start()
            workers = [
                threading.Thread(target=self._work, name=f"pull-{n}", daemon=True)
                for n in range(max(1, self.settings.dock.max_concurrent_pulls))
            ]
            for worker in workers:
                worker.start()
            # Media work on what is sealed runs beside the pulls, from the catalog's queue.
            self._media = threading.Thread(
                target=self._media_jobs,
                name="media-jobs",
                daemon=True,
            )
            self._media.start()
            self._replication = self._start_replication()
            self._alerts = AlertWorker(self.vault, self._stop)
            self._alerts.start()
            for event in watcher.present():
                self._handle(event)
            notify("READY=1")
            log.info("custody daemon ready (vault %s, pid %d)", self.settings.home, os.getpid())
            self._loop(watcher, watch)
        finally:
            notify("STOPPING=1")
            self._shutdown()

    def _start_replication(self) -> threading.Thread | None:
        """Follow the replication queue beside everything else, when targets are configured."""
        if not self.settings.targets:
            return None
        locks = self.replica_locks(self.vault, self.settings) if self.replica_locks else None
        replicator = Replicator(self.vault, self.settings, lock_rule=locks)

        def replicate() -> None:
            # Said loudly once per start, from this thread: the bucket may take a while to answer.
            for row in replicator.status():
                if row["object_lock"] != "enabled":
                    log.warning(
                        "replica %s (bucket %s): Object Lock %s",
                        row["target"],
                        row["bucket"],
                        row["object_lock"],
                    )
            replicator.follow(self._stop, pause=self._pulling)

        thread = threading.Thread(target=replicate, name="replication", daemon=True)
        thread.start()
        return thread

    def _loop(self, watcher, watch) -> None:
        watchdog_every = watchdog_interval()
        last_status = last_watchdog = last_trim = 0.0
        while not self._stop.is_set():
            for event in watcher.poll(POLL_SECONDS):
                self._handle(event)
            if watch is not None:
                ready = watch.ready()
                if ready:
                    self._watch_files(ready)
            if self._reload:
                self._reload = False
                self._reload_settings()
            self._close_finished()
            now = time.monotonic()
            if now - last_status >= STATUS_INTERVAL_SECONDS:
                last_status = now
                self._write_status()
            if now - last_trim >= TRIM_INTERVAL_SECONDS:
                last_trim = now
                release_freed_memory()
            if watchdog_every and now - last_watchdog >= watchdog_every:
                last_watchdog = now
                notify("WATCHDOG=1")
        if watch is not None:
            watch.stop()
        watcher.close()

    def _shutdown(self) -> None:
        api = getattr(self, "_api", None)
        if api is not None:
            api.stop()  # no new requests while the rest winds down
        reason = "daemon stopping"
        for docked in self._docked.values():
            if docked.session is not None:
                docked.session.cancel(reason)
        for session in self._watch_sessions:
            session.cancel(reason)
        self.request_stop()
        # Workers abandon the file they read at their next chunk; wait for that.
        deadline = time.monotonic() + 60
        while (
            any(d.session and not d.session.finished for d in self._docked.values())
            and time.monotonic() < deadline
        ):
            self._drain_cancelled()
            time.sleep(0.05)
        self._close_finished(force=True)
        media = getattr(self, "_media", None)
        if media is not None:
            media.join(timeout=120)  # the job in hand finishes or is requeued at the next start
        alerts = getattr(self, "_alerts", None)
        if alerts is not None:
            alerts.join(timeout=30)  # a message being sent ends within its channel's timeout
        replication = getattr(self, "_replication", None)
        if replication is not None:
            replication.join(timeout=120)  # an upload cut off is aborted and sent again at the next start
        mounter = getattr(self, "mounter", None)
        if mounter is not None:
            for docked in self._docked.values():
                if docked.mount is not None:
                    mounter.unmount(docked.mount.mountpoint)
                    docked.mount = None
            mounter.clean_stale()
        if self.vault is not None:
            self._write_status(stopped=True)
            self.vault.close()
            self.vault = None
        log.info("custody daemon stopped")

    def _reload_settings(self) -> None:
        try:
            settings = load_settings(self.settings.home)
        except CustodyError as exc:
            log.error("config not reloaded, keeping the running one: %s", exc.message)
            self._error(f"config not reloaded: {exc.message}")
            return
        self.settings = settings
        self.policy.settings = settings
        if getattr(self, "_api", None) is not None:
            # Roles, limits and what the handlers read take effect for the next request.
            self._api.reconfigure(
                {**api_handlers(settings), **self.operations(settings)},
                RoleMap(settings.access.roles),
                request_timeout=settings.access.request_timeout_seconds,
                max_requests_per_second=settings.access.max_requests_per_second,
                max_connections_per_user=settings.access.max_connections_per_user,
                max_connections=settings.access.max_connections,
            )
        log.info("config reloaded from %s", settings.config_path)

    # -- device events ----------------------------------------------------

    def _handle(self, event) -> None:
        identity = event.identity
        if isinstance(event, RecorderDocked):
            self._docked.setdefault(identity.syspath, _Docked(identity, datetime.now(UTC)))
        elif isinstance(event, MediaReady):
            self._media_ready(identity)
        elif isinstance(event, RecorderUndocked):
            self._undocked(identity)

    def _media_ready(self, identity: DeviceIdentity) -> None:
        assert self.vault is not None
        docked = self._docked.get(identity.syspath)
        if docked is None:
            disk = self._docked.get(str(Path(identity.syspath).parent))
            docked = _Docked(identity, disk.docked_at if disk else datetime.now(UTC))
            self._docked[identity.syspath] = docked
        if docked.session is not None and not docked.closed:
            return  # already pulling this medium
        refused_before = docked.closed and docked.session is None and docked.identity == identity
        docked.identity = identity
        recorder = self.vault.registry.recorder(identity.serial) if identity.serial else None
        decision = self.policy.decide(identity, recorder)
        if not decision.ingest and refused_before and docked.refused_because == decision.reason:
            # The same medium announced again and refused for the same reason (a device plugged
            # while the daemon starts comes as coldplug and as its hotplug event): noted once.
            return
        if not decision.ingest:
            docked.refused_because = decision.reason
            log.warning("not ingesting %s: %s", identity.describe(), decision.reason)
            self.vault.registry.record_unknown_device(identity.key, identity.as_dict(), decision.reason)
            self._unknown_seen.append(
                {"device": identity.as_dict(), "reason": decision.reason, "at": utc_now()}
            )
            self._unknown_seen = self._unknown_seen[-20:]
            docked.closed = True
            return
        assert decision.profile is not None
        try:
            docked.mount = self.mounter.mount(identity)
            background_priority(helper_pids(docked.mount.mountpoint))  # (a FUSE helper works for the pull)
        except MountFailed as exc:
            log.error("%s", exc.message)
            self.vault.record_failure("mount", {"device": identity.as_dict(), "reason": exc.message})
            self._error(exc.message)
            docked.closed = True
            return
        serial = identity.serial or identity.key
        session_id = self.vault.registry.open_dock_session(
            serial, identity.devnode, decision.profile, to_text(docked.docked_at), identity.as_dict()
        )
        source = MediaSource(
            root=docked.mount.mountpoint,
            serial=serial,
            profile_name=decision.profile,
            kind="usb",
            identity=identity,
        )
        session = DockSession(
            self.vault, source, self.settings, session_id, docked.docked_at, _LogObserver(serial)
        )
        docked.session, docked.closed = session, False
        tasks = session.discover(session.summary)
        log.info(
            "recorder %s docked: %d files, %d bytes to consider", serial, len(tasks), session.bytes_total
        )
        self._enqueue(session, tasks)

    def _undocked(self, identity: DeviceIdentity) -> None:
        assert self.vault is not None
        gone = [
            (syspath, docked)
            for syspath, docked in self._docked.items()
            if syspath == identity.syspath or syspath.startswith(identity.syspath + "/")
        ]
        for syspath, docked in gone:
            session = docked.session
            if session is not None and not session.finished:
                log.warning("recorder %s undocked while it was being pulled", session.media.serial)
                session.cancel("the recorder was undocked while it was being pulled")
            if docked.mount is not None:
                self.mounter.unmount(docked.mount.mountpoint)
                docked.mount = None
            if session is not None:
                self._wait_and_close(docked)
                self.vault.registry.record_undock(session.session_id, session.media.serial, identity.devnode)
            del self._docked[syspath]

    def _watch_files(self, ready: list[FileReady]) -> None:
        assert self.vault is not None
        by_folder: dict[Path, list[Path]] = {}
        for item in ready:
            by_folder.setdefault(item.folder, []).append(item.path)
        for folder, paths in by_folder.items():
            profile = self.settings.dock.watch_profile
            source = MediaSource(
                root=folder, serial=f"watch:{folder}", profile_name=profile, kind="watch", paths=sorted(paths)
            )
            session = DockSession(
                self.vault,
                source,
                _watch_settings(self.settings, profile),
                None,
                datetime.now(UTC),
                _LogObserver(str(folder)),
            )
            tasks = session.discover(session.summary)
            self._watch_sessions.append(session)
            self._enqueue(session, tasks)

    # -- the pull queue ---------------------------------------------------
    #
    # Each session keeps its files in deadline order and is read one file at a
    # time (a recorder's USB link and flash are fastest read sequentially);
    # workers take the idle session whose next file has the oldest deadline,
    # so several recorders are pulled at once, up to the pool's size.

    def _enqueue(self, session: DockSession, tasks: list[FileTask]) -> None:
        with self._queue_ready:
            self._pending[session] = collections.deque(tasks)  # discover() returns them oldest deadline first
            self._queue_ready.notify_all()

    def _next_file(self) -> tuple[DockSession, FileTask] | None:
        """Return the next file to pull (holding the condition), or None when the daemon stops."""
        while True:
            idle = [
                s for s, queue in self._pending.items() if queue and s not in self._busy and not s.cancelled
            ]
            if idle:
                session = min(idle, key=lambda s: s.estimated_deadline(self._pending[s][0]))
                self._busy.add(session)
                return session, self._pending[session].popleft()
            if self._stop.is_set():
                return None
            self._queue_ready.wait(timeout=1.0)

    def _media_jobs(self) -> None:
        background_priority()  # (its pool's threads, and the ffmpeg they start, inherit it)
        MediaJobs(self.vault, self.settings).run(stop=self._stop, until_empty=False, pause=self._pulling)

    def _work(self) -> None:
        background_priority()
        while True:
            with self._queue_ready:
                picked = self._next_file()
            if picked is None:
                return
            session, task = picked
            try:
                session.process(task, session.summary)
            except Exception as exc:  # keep the daemon alive whatever one file does
                log.exception("pulling %s failed", task.display_path)
                task.drop(f"{task.display_path}: internal error {exc!r}")
                session.skip_unpulled(task)
            finally:
                with self._queue_ready:
                    self._busy.discard(session)
                    self._queue_ready.notify_all()

    def _pulling(self) -> bool:
        """True while any recorder or watch folder has files queued or being read."""
        with self._queue_ready:
            return bool(self._busy) or any(self._pending.values())

    def _drain_cancelled(self) -> None:
        """Account for the queued files of cancelled sessions (left for the next dock)."""
        with self._queue_ready:
            for session, queue in self._pending.items():
                if session.cancelled:
                    while queue:
                        session.skip_unpulled(queue.popleft())
            for session in [s for s, q in self._pending.items() if not q and s not in self._busy]:
                del self._pending[session]

    # -- closing sessions -------------------------------------------------

    def _close_finished(self, force: bool = False) -> None:
        self._drain_cancelled()
        for docked in self._docked.values():
            if docked.session is not None and not docked.closed and (docked.session.finished or force):
                self._close(docked)
        for session in list(self._watch_sessions):
            if session.finished or force:
                self._watch_sessions.remove(session)

    def _wait_and_close(self, docked: _Docked) -> None:
        deadline = time.monotonic() + 30
        while docked.session is not None and not docked.session.finished and time.monotonic() < deadline:
            self._drain_cancelled()
            time.sleep(0.02)
        if not docked.closed:
            self._close(docked)

    def _close(self, docked: _Docked) -> None:
        assert self.vault is not None and docked.session is not None
        session = docked.session
        docked.closed = True
        if session.cancelled:
            state = "interrupted"
            unpulled = (
                session.files_total - session.summary.new - session.summary.duplicate - session.summary.known
            )
            session.errors.append(f"{unpulled} files not pulled: {session.cancel_reason}")
        else:
            state = "done" if session.summary.failed == 0 else "done-with-errors"
        counts = session.counts()
        if state != "interrupted" and session.profile.wipe != "never" and docked.mount is not None:
            counts["files_wiped"] = self._wipe(docked, session)
        self.vault.registry.close_dock_session(session.session_id, state, counts, session.errors)
        self.vault.checkpoint()
        log.info(
            "dock session %s of %s %s: %s",
            session.session_id,
            session.media.serial,
            state,
            json.dumps(session.counts()),
        )
        if docked.mount is not None:
            self.mounter.unmount(docked.mount.mountpoint)
            docked.mount = None

    def _wipe(self, docked: _Docked, session: DockSession) -> int:
        """Remount the recorder read-write just to delete what is safe in the vault; return how many."""
        assert docked.mount is not None
        self.mounter.unmount(docked.mount.mountpoint)
        docked.mount = None
        try:
            writable = self.mounter.mount(docked.identity, writable=True)
        except MountFailed as exc:
            session.errors.append(f"recorder not wiped: {exc.message}")
            return 0
        try:
            wiped = session.wipe(writable.mountpoint)
        finally:
            self.mounter.unmount(writable.mountpoint)
        log.info("wiped %d files from recorder %s", wiped, session.media.serial)
        return wiped

    # -- status -----------------------------------------------------------

    def _error(self, message: str) -> None:
        self._errors.append({"at": utc_now(), "message": message})
        self._errors = self._errors[-20:]

    def _write_status(self, stopped: bool = False) -> None:
        docked = []
        for entry in self._docked.values():
            if entry.session is not None:
                docked.append(entry.session.status())
            elif not entry.closed or entry.identity.fs_type:
                docked.append(
                    {
                        "serial": entry.identity.serial,
                        "device": entry.identity.devnode,
                        "state": "not ingested" if entry.closed else "waiting for media",
                        "docked_at": to_text(entry.docked_at),
                    }
                )
        status = {
            "pid": os.getpid(),
            "running": not stopped,
            "started_at": self._started_at,
            "updated_at": utc_now(),
            "docked": docked,
            "watch": [s.status() for s in self._watch_sessions],
            "unknown_devices": self._unknown_seen,
            "errors": self._errors,
            "mounts": [str(p) for p in self.mounter.mounts()] if hasattr(self, "mounter") else [],
        }
        write_status(self.settings.home / STATUS_NAME, status)

    def _mount_root(self) -> Path:
        configured = self.settings.dock.mount_root
        return Path(configured) if configured else self.settings.home / "mounts"


class HomeNotPrivate(CustodyError):
    """vault home {home} is mode {mode:o}: others could read the catalog; run 'chmod 0700 {home}' (the daemon refuses to start)"""

    exit_code = 4


def _require_private_home(home: Path) -> None:
    """Refuse a vault home that its group or others may enter (the key files are checked as they load)."""
    mode = home.stat().st_mode & 0o777
    if mode & 0o077:
        raise HomeNotPrivate(home=home, mode=mode)


class _LogObserver:
    """One log line per file for operators (the audit chain is the record)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def discovered(self, files: int, total_bytes: int) -> None:
        pass

    def skipped(self, skipped: Skipped) -> None:
        log.debug("%s: skipped %s (%s)", self.name, skipped.path, skipped.reason)

    def progress(self, nbytes: int) -> None:
        pass

    def file_done(self, task: FileTask) -> None:
        if task.message and task.outcome == "error":
            log.warning("%s: %s", self.name, task.message)
        else:
            log.info("%s: %s %s", self.name, task.outcome, task.relative or task.display_path)


def _watch_settings(settings: Settings, profile: str) -> Settings:
    """Settings for a watch folder: the profile's extensions, but files anywhere in the folder."""
    watched = dataclasses.replace(settings.profiles[profile], media_folders=[])
    return dataclasses.replace(settings, profiles={**settings.profiles, profile: watched})


# Bulk work (pulls, the FUSE helpers that serve them, media jobs) runs at this nice value, so a
# clerk's request (answered by the API's threads at the normal priority) is served first when
# many recorders saturate the CPU.
BACKGROUND_NICE = 10


def background_priority(pids: list[int] | None = None) -> None:
    """Lower the calling thread (or every thread of the processes ``pids``) to BACKGROUND_NICE.
    Linux keeps nice per thread, and threads and child processes started from a thread inherit it.
    Best effort: a thread or process gone, or a refusal, leaves it as it was."""
    if pids is None:
        targets = [threading.get_native_id()]
    else:
        targets = []
        for pid in pids:
            with contextlib.suppress(OSError):
                targets.extend(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    for target in targets:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, target, BACKGROUND_NICE)


def write_status(path: Path, status: dict) -> None:
    """Replace the status file atomically (readers never see half of it), never through a link."""
    write_private_file(path.parent, path.name, json.dumps(status, indent=1).encode())


def read_status(home: Path) -> dict | None:
    """Return the daemon's last status when a daemon is running for ``home``, else None."""
    path = home / STATUS_NAME
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not status.get("running"):
        return None
    with contextlib.suppress(OSError):
        os.kill(int(status["pid"]), 0)
        return status
    return None
