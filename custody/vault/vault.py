"""The vault service: the one API every command and the daemon go through.

It owns the object store, the catalog and the audit chain of one vault home,
and makes every change to them atomic and audited. Role checks will live here
too (the access issue); for now the actor is the caller's login name.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from custody.config import Settings, default_config_text
from custody.errors import CustodyError
from custody.vault import (
    access,
    accounts,
    alerts,
    case_access,
    casefiles,
    derivatives,
    disposal_records,
    disposals,
    findings,
    holdings,
    intake,
    integrity,
    keys,
    media_queue,
    reading,
    registry,
    retention_records,
    supervision,
    tagging,
)
from custody.vault.audit import AuditChain, AuditEvent
from custody.vault.catalog import Catalog, Item, ItemFilter
from custody.vault.items import (
    format_item_id,
    parse_item_id,
    sha256_prefix,
)
from custody.vault.objects import ObjectStore
from custody.vault.sealing import ObjectDamaged
from custody.vault.timestamps import utc_now

CATALOG_NAME = "catalog.db"
LOCK_NAME = "lock"
PUBLIC_KEY_NAME = keys.PUBLIC_KEY_NAME


def _serialized(method: Callable) -> Callable:
    """Run ``method`` holding the vault's lock: the daemon's workers share one catalog connection."""

    @functools.wraps(method)
    def locked(self: Vault, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Change:
    """A change to the vault in progress (see Vault.change): the lock held, the transaction open."""

    def __init__(self, vault: Vault) -> None:
        self.catalog = vault.catalog
        self.at = utc_now()  # one time for every row and event of the change
        self._vault = vault

    def record(self, action: str, item: int | None = None, details: dict | None = None) -> int:
        """Append the audit event of this change (in its transaction); return its seq."""
        return self._vault.audit.append(self._vault.actor, action, item, details)


class Vault:
    """One vault home, opened for one actor. Use as a context manager."""

    class NotFound(CustodyError):
        """no vault at {home}: create one with 'custody --home {home} init', or name another with --home before the command"""

        exit_code = 4

    class NotOwner(CustodyError):
        """the vault at {home} belongs to another user: use it through the custody daemon's socket ({socket}) as a member of its group, or set CUSTODY_SOCKET"""

        exit_code = 13

    class AlreadyExists(CustodyError):
        """{home} already holds a vault ({what} exists); custody init never overwrites one"""

        exit_code = 5

    class ItemNotFound(CustodyError):
        """no item {ref} in this vault: use an id from 'custody ls', a sha256 or 8+ of its first hex digits"""

        exit_code = 5

    class AmbiguousItem(CustodyError):
        """{ref} matches several items ({candidates}): type more digits of the sha256"""

        exit_code = 5

    ItemDamaged = reading.ItemDamaged

    OutputExists = reading.OutputExists

    OfficerExists = registry.OfficerExists

    OfficerNotFound = registry.OfficerNotFound

    RecorderExists = registry.RecorderExists

    RecorderNotFound = registry.RecorderNotFound

    RecorderRetired = registry.RecorderRetired

    UnknownProfile = registry.UnknownProfile

    NoDerivative = reading.NoDerivative

    FindingNotFound = findings.FindingNotFound

    FindingClosed = findings.FindingClosed

    UnknownCategory = tagging.UnknownCategory

    HoldNotFound = holdings.HoldNotFound

    HoldReleased = holdings.HoldReleased

    RequestNotFound = disposals.RequestNotFound

    ApprovalRefused = disposals.ApprovalRefused

    ExecutionRefused = disposals.ExecutionRefused

    NotEligible = disposals.NotEligible

    class ItemDisposed(CustodyError):
        """{item} was disposed of on {when} (request {request}, approved by {approver}); its tombstone remains"""

        exit_code = 5

    class Busy(CustodyError):
        """another custody command is writing to the vault at {home}; try again when it has finished"""

        exit_code = 7

    def __init__(
        self, settings: Settings, actor: str, writer: bool = False, caller: access.Caller | None = None
    ) -> None:
        """Open the vault described by ``settings`` for ``actor``.

        ``caller`` is who asks (the API socket's peer); without one, this
        process's own user, which must own the vault home to do anything but
        ask who it is (in-process use is for the vault's own user).

        Stale staging files are swept and interrupted ingests completed when no
        other command is writing. With ``writer`` the vault's write lock is
        held until close (raise Vault.Busy when another writer holds it). Raise
        Vault.NotFound when there is no vault, key errors when a key is missing.
        """
        self.settings = settings
        self.home = settings.home
        self.actor = actor
        self.caller = caller or access.process_caller(settings)
        self._lock = threading.RLock()
        self._reads_recorded: set[tuple[str, str]] = set()
        if caller is None and not self.caller.owner:
            raise Vault.NotOwner(home=self.home, socket=settings.api_socket)
        if not (self.home / CATALOG_NAME).is_file():
            raise Vault.NotFound(home=self.home)
        self.master = keys.load_master_key(
            settings.home_path(settings.keys.master_key_file), settings.keys.master_key_credential
        )
        signing_key = keys.load_signing_key(settings.home_path(settings.keys.signing_key_file))
        self.catalog = Catalog(self.home / CATALOG_NAME, settings.catalog.busy_timeout_seconds)
        self.objects = ObjectStore(
            self.home / "objects",
            self.master,
            settings.vault.direct_io,
            reserve_bytes=settings.vault.min_free_mb << 20,
        )
        vault_id = self.catalog.get_meta("vault_id") or ""
        self.audit = AuditChain(self.catalog, vault_id, signing_key, signing_key.public_key())
        self.media = media_queue.MediaQueue(self)
        self.registry = registry.Registry(self)
        self.continuity = findings.Continuity(self)
        self.holds = holdings.Holds(self)
        self.cases = case_access.CaseAccess(self)
        self.integrity = integrity.Integrity(self)
        self.originals = reading.Originals(self)
        self.tags = tagging.Tags(self)
        self.retention = retention_records.RetentionRecords(self)
        self.disposals = disposals.Disposals(self)
        self.intake = intake.Intake(self)
        self.casefiles = casefiles.CaseFiles(self)
        self.accounts = accounts.Accounts(self)
        self.supervision = supervision.Supervision(self)
        self.alerts = alerts.Alerts(self)
        self._lock_fd: int | None = None
        try:
            got_lock = self._try_lock()
            if writer and not got_lock:
                raise Vault.Busy(home=self.home)
            if got_lock:
                self._recover()
                if not writer:
                    self._unlock()
        except BaseException:
            self.close()
            raise

    # -- lifecycle --------------------------------------------------------

    @classmethod
    def init(cls, settings: Settings, actor: str, organisation: str = "") -> Vault:
        """Create a new vault at ``settings.home`` and return it opened.

        A new custody.toml names ``organisation`` as [station] organisation when given.

        Raise Vault.AlreadyExists when a catalog or key file is already there.
        Nothing is left behind when creation fails.
        """
        home = settings.home
        master_path = settings.home_path(settings.keys.master_key_file)
        signing_path = settings.home_path(settings.keys.signing_key_file)
        for existing in (home / CATALOG_NAME, master_path, signing_path):
            if existing.exists():
                raise Vault.AlreadyExists(home=home, what=existing.name)
        created: list[Path] = []
        try:
            if not home.exists():
                home.mkdir(mode=0o700, parents=True)
                created.append(home)
            config_path = settings.config_path
            if not config_path.exists():
                config_path.write_text(default_config_text(organisation), encoding="utf-8")
                created.append(config_path)
            credential = _systemd_credential(settings)
            if credential is None:
                keys.create_master_key(master_path)
                created.append(master_path)
            public_path = home / PUBLIC_KEY_NAME
            keys.create_signing_key(signing_path, public_path)
            created += [signing_path, public_path]
            ObjectStore.create_layout(home / "objects")
            created.append(home / "objects")
            catalog = Catalog(home / CATALOG_NAME, settings.catalog.busy_timeout_seconds)
            created.append(home / CATALOG_NAME)
            vault_id = str(uuid.uuid4())
            catalog.set_meta("vault_id", vault_id)
            catalog.set_meta("created_at", utc_now())
            catalog.close()
            make_home_private(home)
            vault = cls(settings, actor)
            vault.audit.append(
                actor,
                "init",
                details={
                    "vault_id": vault_id,
                    "station": settings.station.name,
                    "master_key_id": vault.master.key_id,
                    "master_key_source": "systemd credential" if credential else "key file",
                    "signing_key": keys.public_key_fingerprint(vault.audit.public_key),
                },
            )
            return vault
        except BaseException:
            for path in reversed(created):
                _remove_quietly(path)
            raise

    def disk_space(self) -> dict:
        """The vault disk's free bytes, the reserve kept ([vault] min_free_mb), and whether it is full."""
        free = self.objects.free_bytes()
        reserve = self.objects.reserve_bytes
        return {"free_bytes": free, "reserve_bytes": reserve, "full": free <= reserve}

    def serialized(self) -> threading.RLock:
        """The lock every catalog change holds (``with vault.serialized():``), for vault components."""
        return self._lock

    @contextlib.contextmanager
    def change(self) -> Iterator[Change]:
        """The one way to change the vault: its lock, one catalog transaction, and the audit events.

        ``with vault.change() as change:`` the table modules write through
        ``change.catalog`` and ``change.record(action, item, details)``
        appends the event, all committed together or not at all. Services
        (``vault.media``, ...) make every change this way.
        """
        with self._lock, self.catalog.transaction():
            yield Change(self)

    def checkpoint(self) -> int | None:
        """Sign the audit chain's head unless it is signed already; return the seq signed, if any."""
        with self._lock:  # the daemon's workers share the catalog connection
            return self.audit.checkpoint()

    def close(self) -> None:
        """Sign a checkpoint over any events this command wrote, release the lock, close."""
        catalog = getattr(self, "catalog", None)
        if catalog is None:
            return
        try:
            self.checkpoint()
        finally:
            self._unlock()
            catalog.close()
            self.catalog = None  # type: ignore[assignment]

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _try_lock(self) -> bool:
        fd = os.open(self.home / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _recover(self) -> None:
        """Finish or undo what a killed command left: staging files, decrypted copies, pending ingests,
        a signing key rotation."""
        self.objects.sweep_staging()
        self._finish_key_rotation()
        # Decrypted copies a killed media job left: plaintext footage must not linger.
        for leftover in (self.home / "run" / "media").glob("*"):
            leftover.unlink(missing_ok=True)
        for sha256, record in self.catalog.intents():
            if self.catalog.item_by_sha256(sha256) is not None:
                with self.catalog.transaction():
                    self.catalog.remove_intent(sha256)
                continue
            if self.objects.exists(sha256):
                try:
                    self.objects.check(sha256)
                except ObjectDamaged as exc:
                    self._abandon_intent(sha256, record, f"stored copy damaged: {exc.fields['problem']}")
                    self.objects.path_for(sha256).unlink(missing_ok=True)
                    continue
                self.intake.commit_item(record, recovered=True)
            else:
                self._abandon_intent(sha256, record, "interrupted before the object was stored")
        for unfinished in disposal_records.tombstones(self.catalog, state="deleting"):
            # A disposition killed part way: the tombstone was committed, so the item goes.
            self.disposals.finish_disposal(unfinished["item_number"])
        for intent in derivatives.intents(self.catalog):
            # A media job killed between storing a derivative and committing it: the
            # job is queued again, so the object it left is removed, not kept.
            with self.catalog.transaction():
                if not derivatives.is_referenced(self.catalog, intent["sha256"]):
                    self.objects.path_for(intent["sha256"]).unlink(missing_ok=True)
                    self.audit.append(
                        self.actor,
                        "derivative-abandoned",
                        intent["item"],
                        {"role": intent["role"], "sha256": intent["sha256"]},
                    )
                derivatives.remove_intent(self.catalog, intent["id"])

    def _finish_key_rotation(self) -> None:
        """A rotation killed between its event and the key's rename: install the staged key when the
        chain pins it, else drop it (the event never committed)."""
        signing_path = self.settings.home_path(self.settings.keys.signing_key_file)
        pending = keys.pending_signing_key_path(signing_path)
        if not pending.exists():
            return
        staged = keys.load_signing_key(pending)
        pinned, _problems = self.audit.pinned_keys()
        if pinned and pinned[-1].fingerprint == keys.public_key_fingerprint(staged.public_key()):
            installed = keys.install_signing_key(pending, signing_path, self.home / PUBLIC_KEY_NAME)
            self.audit.signing_key, self.audit.public_key = installed, installed.public_key()
        else:
            pending.unlink()

    def _abandon_intent(self, sha256: str, record: dict, reason: str) -> None:
        with self.catalog.transaction():
            self.audit.append(
                self.actor,
                "ingest-abandoned",
                details={"sha256": sha256, "path": record["source_path"], "reason": reason},
            )
            self.catalog.remove_intent(sha256)

    # -- finding items ----------------------------------------------------

    @_serialized
    def resolve(self, ref: str, purpose: str | None = None) -> Item:
        """Return the item named by an id (EV-000123), a sha256, or 8+ leading hex digits of one.

        ``purpose``: the action the item is wanted for. A caller whose roles
        never allow it is refused as such (AccessDenied, audited) before the
        item is looked for, rather than told there is no such item.
        Raise Vault.ItemNotFound or Vault.AmbiguousItem (listing candidates).
        """
        if purpose is not None and not self.caller.may(purpose):
            self.authorize(purpose, target=ref)
        number = parse_item_id(ref)
        if number is not None:
            item = self.catalog.item(number)
            if item is None:
                gone = disposal_records.tombstone(self.catalog, number)
                if gone is not None:
                    raise Vault.ItemDisposed(
                        item=format_item_id(number),
                        when=gone["executed_at"],
                        request=gone["request"],
                        approver=gone["approved_by"],
                    )
                raise Vault.ItemNotFound(ref=ref)
            return self._visible(item, ref)
        prefix = sha256_prefix(ref)
        if prefix is None:
            raise Vault.ItemNotFound(ref=ref)
        matches = self.catalog.items_by_sha256_prefix(prefix, limit=6)
        if not matches:
            raise Vault.ItemNotFound(ref=ref)
        if len(matches) > 1:
            names = ", ".join(f"{m.item_id} {m.sha256[:16]}" for m in matches[:5])
            if len(matches) > 5:
                names += ", ..."
            raise Vault.AmbiguousItem(ref=ref, candidates=names)
        return self._visible(matches[0], ref)

    def resolve_all(self, refs: Iterable[str], purpose: str | None = None) -> list[Item]:
        """Resolve every ref (raising on the first bad one); duplicates collapse, order kept."""
        seen: dict[int, Item] = {}
        for ref in refs:
            item = self.resolve(ref, purpose)
            seen.setdefault(item.number, item)
        return list(seen.values())

    @_serialized
    def list_items(self, where: ItemFilter) -> list[Item]:
        """The items matching ``where`` that the caller may see (others are not even counted); with
        a limit, that page of what the caller may see, read from the catalog in chunks."""
        self.authorize("ls")
        return self.catalog.list_items(where) if self.caller.owner else self.cases.visible_items(where)

    # -- access -----------------------------------------------------------

    AccessDenied = access.AccessDenied
    DiskFull = ObjectStore.DiskFull

    def authorize(self, action: str, target: str = "", item: Item | None = None) -> None:
        """Return when the caller's roles allow ``action``; else record a ``denied`` event and raise AccessDenied.

        A person's allowed read (``access.READS``: it makes no event of its
        own) is recorded as an ``access`` event, once per action and target
        for this opening of the vault (one request). The event names an item
        as its target but is not filed under it: an item's own history (what
        `show` prints, what a disc carries) stays the footage's, and does not
        grow with every look at it. The vault's own user's reads are not
        recorded: they are the daemon's own work.
        """
        target = target or (item.item_id if item else "")
        if self.caller.may(action):
            if not self.caller.owner and action in access.READS:
                self._record_read(action, target)
            return
        needed = sorted(access.ALLOWED.get(action, ()))
        why = f"needs the role {' or '.join(needed)}" if needed else "no role may"
        if not self.caller.roles:
            why = "you have no role in this vault (ask the custodian); you may only run 'custody whoami'"
        self.refuse(action, target, why, item)

    def _record_read(self, action: str, target: str) -> None:
        with self._lock:
            if (action, target) in self._reads_recorded:
                return
            self._reads_recorded.add((action, target))
            self.audit.append(
                self.caller.actor,
                "access",
                None,
                {"uid": self.caller.uid, "pid": self.caller.pid, "action": action, "target": target},
            )

    def refuse(self, action: str, target: str, why: str, item: Item | None = None) -> None:
        """Record a ``denied`` event for this attempt, and raise AccessDenied."""
        details = {
            "uid": self.caller.uid,
            "pid": self.caller.pid,
            "action": action,
            "target": target,
            "why": why,
        }
        with self._lock:
            self.audit.append(self.caller.actor, "denied", item.number if item else None, details)
        raise Vault.AccessDenied(
            user=self.caller.name, action=action, target=f" {target}" if target else "", why=why
        )

    def _visible(self, item: Item, ref: str) -> Item:
        """``item`` when the caller may see it; otherwise a refusal that says no more than 'not found'."""
        if self.caller.owner or self.cases.sight().item(item):
            return item
        with contextlib.suppress(Vault.AccessDenied):
            self.refuse("see", ref, "not visible to this caller", item)
        raise Vault.ItemNotFound(ref=ref)

    @_serialized
    def item_by_sha256(self, sha256: str) -> Item | None:
        return self.catalog.item_by_sha256(sha256)

    # -- ingest -----------------------------------------------------------

    @_serialized
    def record_failure(self, action: str, details: dict, item: Item | None = None) -> None:
        """Audit an action that failed or was refused."""
        self.audit.append(self.actor, f"{action}-failed", item.number if item else None, details)

    # -- items by number ---------------------------------------------------

    @_serialized
    def item_number(self, number: int) -> Item | None:
        return self.catalog.item(number)

    @_serialized
    def record(self, action: str, details: dict, item: Item | None = None) -> None:
        """Audit something that happened outside an item's life (a mount cleaned up, a daemon start)."""
        self.audit.append(self.actor, action, item.number if item else None, details)

    @_serialized
    def targets_without_verified_copy(self, item: Item, targets: list[str]) -> list[str]:
        """The targets among ``targets`` that hold no verified replica of the item's original."""
        verified = {
            row[0]
            for row in self.catalog.db.execute(
                "SELECT target FROM replicas WHERE sha256 = ? AND state = 'verified'", [item.sha256]
            )
        }
        return [name for name in targets if name not in verified]

    # -- audit ------------------------------------------------------------

    @_serialized
    def events(self, item: Item | None = None) -> list[AuditEvent]:
        """The audit chain (the caller needs 'log'), or one visible item's events ('show')."""
        self.authorize("show" if item else "log", item=item)
        return list(self.audit.events(item.number if item else None))


def _systemd_credential(settings: Settings) -> Path | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / settings.keys.master_key_credential
    return path if path.exists() else None


def make_home_private(home: Path) -> None:
    """Make ``home`` 0700 and everything in it the owner's alone (folders 0700, files 0600).

    Whatever was there before ``init`` or ``restore`` (a 0755 folder made by
    hand, a umask of 022), another local user must not read party names and
    paths from the catalog, nor anything else. Symbolic links are left alone
    (never followed).
    """
    os.chmod(home, 0o700, follow_symlinks=False)
    for folder, subfolders, files in os.walk(home):
        for name in subfolders:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
