"""The station's work: recorders docked and undocked on a schedule (each card refilled with new
footage between docks), files dropped in the watch folder, and people at work through the socket.
Each records what it did in the run's events and the ledger."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from soak.ground import SHANGHAI, Footage, Ledger, make_clip, recorder_batch, sha256_of
from soak.station import AUDITOR, CLERK, CUSTODIAN, CUSTODIAN2, DROP_SERIAL, OFFICERS, Recorder, Station
from tests.docking import HOST_ENV, FakeRecorder, corrupt_fat_cluster, exfat_image, fat_image, host

DCIM = Path("DCIM") / "100BWC"


@dataclass
class Journal:
    """What happened when (for the report's plots and the invariants): events, faults, samples."""

    started: float = field(default_factory=time.monotonic)
    events: list[dict] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)
    violations: list[dict] = field(default_factory=list)
    denied_expected: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def event(self, kind: str, **details) -> None:
        with self._lock:
            self.events.append({"t": self.now(), "kind": kind, **details})

    def fault(self, kind: str, **details) -> None:
        with self._lock:
            self.faults.append({"t": self.now(), "kind": kind, **details})

    def violation(self, invariant: str, detail: str) -> None:
        with self._lock:
            self.violations.append({"t": self.now(), "invariant": invariant, "detail": detail[:500]})


class Dock:
    """The recorders' docking cycle, in one thread (umockdev's testbed is not shared between
    threads): refill a card, plug it, let it be pulled (or pull it out part way when a fault asks),
    unplug, and check what a wiping profile took off the card is already in the vault."""

    def __init__(self, station: Station, recorders: tuple[Recorder, ...], ledger: Ledger, journal: Journal,
                 rng: random.Random) -> None:  # fmt: skip
        self.station, self.ledger, self.journal, self.rng = station, ledger, journal, rng
        self.recorders = recorders
        self.trees = {r.serial: station.work / "cards" / r.serial for r in recorders}
        self.images = {r.serial: station.work / "cards" / f"{r.serial}.img" for r in recorders}
        self.on_card: dict[str, dict[str, Footage]] = {r.serial: {} for r in recorders}
        self.unplug_mid: set[str] = set()  # faults ask for these
        self.corrupt_next: set[str] = set()
        self.docks = 0

    def cycle(self, stop: threading.Event, final: bool = False) -> None:
        """Dock every recorder in turn until ``stop``; ``final``: once each, to the end of its pull."""
        while not stop.is_set():
            for recorder in self.recorders:
                if stop.is_set() and not final:
                    return
                self.dock_once(recorder, new_files=0 if final else self.rng.randrange(2, 6), final=final)
            if final:
                return
            stop.wait(self.rng.uniform(1, 5))

    def dock_once(self, recorder: Recorder, new_files: int, final: bool) -> None:
        serial = recorder.serial
        tree = self.trees[serial] / DCIM
        tree.mkdir(parents=True, exist_ok=True)
        if new_files:
            with tempfile.TemporaryDirectory(dir=self.station.work) as scratch:
                for footage in recorder_batch(Path(scratch), serial, recorder.officer, self.rng, new_files,
                                              recorder.clock_off):  # fmt: skip
                    if footage.name in self.on_card[serial]:
                        continue  # (the same second again: keep the card's)
                    shutil.move(str(Path(scratch) / footage.name), tree / footage.name)
                    self.on_card[serial][footage.name] = footage
                    self.ledger.add(footage)
        for footage in self.on_card[serial].values():
            footage.readable = True  # a rebuilt card reads whole again
        image = self.images[serial]
        image.unlink(missing_ok=True)
        build = fat_image if recorder.filesystem == "vfat" else exfat_image
        build(image, self.trees[serial], zone="Asia/Shanghai")
        corrupted = None
        if (
            serial in self.corrupt_next
            and recorder.filesystem == "vfat"
            and self.on_card[serial]
            and not final
        ):
            self.corrupt_next.discard(serial)
            corrupted = self.rng.choice(sorted(self.on_card[serial]))
            corrupt_fat_cluster(image, f"/{DCIM}/{corrupted}", 1)
            self.on_card[serial][corrupted].readable = False
            self.journal.fault("corrupt-card", recorder=serial, file=corrupted)
        writable = recorder.wipes
        device = host("losetup", "--find", "--show", *([] if writable else ["--read-only"]), image).strip()
        try:
            self._plugged(recorder, device, final)
        finally:
            for _attempt in range(100):
                if (
                    subprocess.run(["losetup", "-d", device], env=HOST_ENV, capture_output=True).returncode
                    == 0
                ):
                    break
                time.sleep(0.1)
        self.docks += 1
        if writable:
            self._check_wiped(recorder)
        self._clear_pulled(recorder)

    def _plugged(self, recorder: Recorder, device: str, final: bool) -> None:
        fake = FakeRecorder(recorder.serial, device, recorder.filesystem)
        fake.plug(self.station.testbed)
        plugged_at = time.monotonic()
        cut = recorder.serial in self.unplug_mid and not final
        self.journal.event("docked", recorder=recorder.serial, files=len(self.on_card[recorder.serial]))
        try:
            while time.monotonic() - plugged_at < (600 if final else 180):
                entry = self._entry(recorder.serial)
                if cut and entry and entry.get("bytes_done", 0) > 0:
                    self.unplug_mid.discard(recorder.serial)
                    self.journal.fault("unplug-mid-pull", recorder=recorder.serial)
                    return
                if entry and entry.get("state") == "done" and time.monotonic() - plugged_at > 1.0:
                    time.sleep(1.0 if recorder.wipes else 0.2)  # (the wipe follows)
                    return
                time.sleep(0.1)
            self.journal.event("dock-timeout", recorder=recorder.serial)
        finally:
            fake.unplug(self.station.testbed)
            self.journal.event("undocked", recorder=recorder.serial)
            time.sleep(0.5)  # (the daemon unmounts)

    def _entry(self, serial: str) -> dict | None:
        status = self.station.status_file() or {}
        return next((d for d in status.get("docked", []) if d.get("serial") == serial), None)

    def _card_names(self, recorder: Recorder) -> set[str]:
        listing = host("mdir", "-b", "-i", self.images[recorder.serial], f"::/{DCIM}")
        return {line.rsplit("/", 1)[-1] for line in listing.splitlines() if line.strip()}

    def _check_wiped(self, recorder: Recorder) -> None:
        """Invariant: what custody wiped off a card was already in the vault, whole (and in the
        off-site bucket, for a profile that wipes only after the replica)."""
        left = self._card_names(recorder)
        gone = [f for name, f in self.on_card[recorder.serial].items() if name not in left]
        if not gone:
            return
        held = self.station.vault_hashes()
        replicated = self.station.bucket_hashes() if recorder.profile == "soak-wipe-replica" else set()
        for footage in gone:
            footage.on_card = False
            if footage.sha256 not in held:
                self.journal.violation(
                    "wiped-before-durable",
                    f"{footage.name} left {recorder.serial}'s card but is not in the vault",
                )
            elif recorder.profile == "soak-wipe-replica" and footage.sha256 not in replicated:
                self.journal.violation(
                    "wiped-before-durable",
                    f"{footage.name} left {recorder.serial}'s card (wipe after_replica) but is not off-site",
                )
            del self.on_card[recorder.serial][footage.name]
            (self.trees[recorder.serial] / DCIM / footage.name).unlink(missing_ok=True)
        self.journal.event("wiped", recorder=recorder.serial, files=len(gone))

    def _clear_pulled(self, recorder: Recorder) -> None:
        """The officer clears what the station shows as stored (a card that never wipes fills up)."""
        if recorder.wipes or len(self.on_card[recorder.serial]) < 12:
            return
        held = self.station.vault_hashes()
        for name, footage in list(self.on_card[recorder.serial].items()):
            if footage.sha256 in held:
                footage.on_card = False
                del self.on_card[recorder.serial][name]
                (self.trees[recorder.serial] / DCIM / name).unlink(missing_ok=True)


class Drops:
    """Files dropped in the watch folder by a card reader, now and then one dropped twice."""

    def __init__(self, station: Station, ledger: Ledger, journal: Journal, rng: random.Random) -> None:
        self.station, self.ledger, self.journal, self.rng = station, ledger, journal, rng
        self.dropped: list[Path] = []

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.rng.uniform(5, 15)):
            self.drop_once()

    def drop_once(self) -> None:
        folder = self.station.drops
        if self.dropped and self.rng.random() < 0.2:  # the same file again, under another name
            again = self.rng.choice(self.dropped)
            copy = folder / f"again-{self.rng.getrandbits(32):08x}-{again.name}"
            shutil.copy(again, folder / f".{copy.name}")
            (folder / f".{copy.name}").rename(copy)
            self.journal.event("dropped-again", file=copy.name)
            return
        officer = self.rng.choice(OFFICERS)
        from datetime import UTC, datetime, timedelta

        # Now and then an old card's footage (first of all: one kept, then one due for disposal).
        age = ("kept", "due")[len(self.dropped)] if len(self.dropped) < 2 else "new"
        if age == "new" and self.rng.random() < 0.1:
            age = self.rng.choice(("kept", "due"))
        ago = {"new": timedelta(minutes=self.rng.randrange(5, 300)),
               "kept": timedelta(days=self.rng.randrange(400, 670)),
               "due": timedelta(days=self.rng.randrange(760, 960))}[age]  # fmt: skip
        at = datetime.now(UTC).replace(microsecond=0) - ago
        name = f"{DROP_SERIAL}_{officer}_{at.astimezone(SHANGHAI):%Y%m%d%H%M%S}.MP4"
        hidden = folder / f".{name}"  # (ingest skips hidden names: the drop appears whole)
        make_clip(hidden, self.rng.choice((1, 2)), self.rng)
        footage = Footage(name=name, sha256=sha256_of(hidden), size=hidden.stat().st_size, officer=officer,
                          recorded_start=at, source="drop", age=age)  # fmt: skip
        if (folder / name).exists():
            hidden.unlink()
            return
        self.ledger.add(footage)
        if not self.dropped or self.rng.random() < 0.1:
            self.apple_double(name)
        hidden.rename(folder / name)
        self.dropped.append(folder / name)
        self.journal.event("dropped", file=name)

    def apple_double(self, name: str) -> None:
        """The resource fork a Mac writes beside a file it copies (``._NAME``, AppleDouble):
        never footage, although its name ends in .MP4 ([ingest] skip_names keeps it out)."""
        (self.station.drops / f"._{name}").write_bytes(b"\x00\x05\x16\x07" + self.rng.randbytes(4096))
        self.journal.event("apple-double", file=f"._{name}")


class People:
    """Clerks, custodians and auditors at work through the socket as real local users: reading,
    tagging, extracting (each extract checked against the ground truth), retention, holds, and
    now and then something their role may not do (each such refusal must be audited)."""

    def __init__(self, station: Station, ledger: Ledger, journal: Journal, rng: random.Random) -> None:
        self.station, self.ledger, self.journal, self.rng = station, ledger, journal, rng
        self.outbox = Path(tempfile.mkdtemp(prefix="custody-soak-out-", dir="/tmp"))
        self.outbox.chmod(0o1777)
        self.kill_next_write = False  # a fault asks: the next extract is killed as it writes
        self.denials_tried = 0
        self.whole_extracts = 0
        self.done = 0

    def run(self, stop: threading.Event) -> None:
        """One of each kind of work first (each as soon as there is something to do it on), so a
        short run does them all; then at random."""
        actions = [self.look, self.look, self.tag, self.tag, self.extract, self.retention, self.denied, self.hold,
                   self.explain, self.export]  # fmt: skip
        first = [self.tag, self.extract, self.denied, self.export, self.denied, self.denied, self.hold, self.retention,
                 self.look, self.dispose]  # fmt: skip
        actions.append(self.dispose)
        later = False  # the first-round action had nothing to work on yet: something else now
        while not stop.wait(self.rng.uniform(0.5, 2.5)):
            action = first[0] if first and not later else self.rng.choice(actions)
            if self.kill_next_write and self.whole_extracts:  # (a fault waits for an extract to kill)
                action = self.extract
            did = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                did = action()
            later = False
            if first and action == first[0]:
                if did is False:
                    later = True
                else:
                    first.pop(0)
            self.done += 1

    def _items(self) -> list[dict]:
        import json

        listed = self.station.as_user(CLERK, "ls", "--json")
        return json.loads(listed.stdout) if listed.returncode == 0 else []

    def look(self) -> None:
        """Someone lists the footage, or a clerk looks at one item (show)."""
        user = self.rng.choice((CLERK, CUSTODIAN, AUDITOR))
        result = self.station.as_user(user, "ls", "--json")
        self.journal.event("ls", user=user, ok=result.returncode == 0)
        if user == CLERK and result.returncode == 0:
            import json

            listed = json.loads(result.stdout)
            if listed:
                shown = self.station.as_user(CLERK, "show", self.rng.choice(listed)["id"], "--json")
                self.journal.event("show", ok=shown.returncode == 0)

    def tag(self) -> bool:
        """A clerk tags a recording to a case (footage the generator made: a broken build may also
        hold files that are no recording, which no disc could carry a playable copy of)."""
        items = [i for i in self._items() if i["sha256"] in self.ledger.files]
        if not items:
            return False
        item = self.rng.choice(items)["id"]
        case = f"SOAK-{self.rng.randrange(1, 20):04d}"
        result = self.station.as_user(CLERK, "tag", item, "--case", case, "--party", "测试当事人")
        self.journal.event("tag", item=item, ok=result.returncode == 0)
        return result.returncode == 0

    def extract(self) -> bool:
        """Extract an item and compare it with the ground truth; one a fault kills as it writes
        must leave nothing, or the whole file."""
        items = [i for i in self._items() if i["sha256"] in self.ledger.files]
        if not items:
            return False
        item = self.rng.choice(items)
        out = self.outbox / f"{item['id']}-{self.rng.getrandbits(32):08x}"

        env = {**HOST_ENV, "PYTHONPATH": self.station.others_path(), "HOME": "/",
               "CUSTODY_SOCKET": str(self.station.run / "api.sock")}  # fmt: skip
        process = subprocess.Popen(
            ["setpriv", f"--reuid={CLERK}", f"--regid={CLERK}", "--init-groups", "/usr/bin/python3", "-m",
             "custody", "--home", str(self.station.home), "extract", item["id"], "--out", str(out)],
            env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            # (never the first: a whole extract is judged first, whatever the faults)
            if self.kill_next_write and self.whole_extracts and _kill_when_writing(process, self.outbox):
                self.kill_next_write = False
                self.journal.fault("kill-client", command="extract", item=item["id"])
            process.communicate(timeout=300)
        finally:
            code = process.returncode
        if code == 0:
            self.whole_extracts += 1
            if sha256_of(out) != item["sha256"]:
                self.journal.violation(
                    "extract-identical", f"{item['id']} extracted differs from what was docked"
                )
            out.unlink()
        elif code in (-9, 137):
            leftovers = [p.name for p in self.outbox.iterdir() if p.name.startswith(f".{out.name}")]
            half = out.exists() and sha256_of(out) != item["sha256"]
            if half or leftovers:
                self.journal.violation(
                    "no-half-written-files",
                    f"a killed extract left {[out.name] if half else []} {leftovers}",
                )
            out.unlink(missing_ok=True)
        self.journal.event("extract", item=item["id"], code=code)
        return code == 0  # (in the first round, until one whole extract is judged)

    def explain(self) -> bool:
        """A clerk explains an interruption the station found."""
        import json

        listed = self.station.as_user(CLERK, "report", "gaps", "--open", "--json")
        found = json.loads(listed.stdout) if listed.returncode == 0 else []
        if not found:
            return False
        finding = self.rng.choice(found)["id"]
        result = self.station.as_user(CLERK, "explain", finding, "--reason", "电池更换 battery changed")
        self.journal.event("explain", finding=finding, ok=result.returncode == 0)
        return True

    def export(self) -> bool:
        """A clerk exports a case that has footage tagged to it now, to an evidence disc image; an
        image that fails its own read-back check (exit 1) is a violation."""
        cases = sorted(
            {i["tags"].get("case") for i in self._items() if i["tags"].get("case", "").startswith("SOAK-")}
        )
        if not cases:  # (none yet, or their footage was retagged or disposed of)
            return False
        case = self.rng.choice(cases)
        image = self.outbox / f"{case}-{self.rng.getrandbits(32):08x}.iso"
        result = self.station.as_user(CLERK, "export", "disc", "--case", case, "--maker", "李警官", "--extractor",
                                      CLERK, "--iso", str(image))  # fmt: skip
        if result.returncode == 1:
            self.journal.violation(
                "exports-verify", f"the disc of {case} failed its check: {result.stdout[-300:]}"
            )
        for made in self.outbox.glob(f"{image.stem}*"):
            made.unlink()
        self.journal.event("export", case=case, code=result.returncode, said=result.stderr.strip()[-200:])
        return result.returncode in (0, 1)  # (in the first round, until one disc is judged)

    def retention(self) -> None:
        result = self.station.as_user(CUSTODIAN, "retention", "plan", "--json")
        self.journal.event("retention-plan", ok=result.returncode == 0)

    def dispose(self) -> bool:
        """A custodian requests the disposition of what the plan says is due, a second custodian
        approves, the first executes. What went must have been due by the ground truth (recorded
        over two years ago); from then on the vault (and the bucket) must not hold it."""
        import json

        requested = self.station.as_user(CUSTODIAN, "retention", "request", "--plan", "--reason",
                                         "超过保存期限 past its period (soak)", "--json")  # fmt: skip
        if requested.returncode != 0:
            self.journal.event("dispose-request", code=requested.returncode)
            return False
        request = json.loads(requested.stdout)["id"]
        approved = self.station.as_user(CUSTODIAN2, "retention", "approve", request, "--json")
        if approved.returncode != 0:
            self.journal.event("dispose-approve", code=approved.returncode)
            return True
        shas = {i["id"]: i["sha256"] for i in self.station.items()}
        done = self.station.as_user(CUSTODIAN, "retention", "execute", request, "--json")
        deleted = json.loads(done.stdout)["result"]["deleted"] if done.returncode == 0 else []
        for item in deleted:
            footage = self.ledger.files.get(shas.get(item, ""))
            if footage is None or footage.age != "due":
                self.journal.violation(
                    "disposed-only-when-due",
                    f"{item} ({footage.name if footage else 'unknown'}, {footage.age if footage else '?'}) was disposed of",
                )
            if footage is not None:
                footage.disposed = True
        self.journal.event("dispose", code=done.returncode, files=len(deleted))
        return True

    def hold(self) -> None:
        case = f"SOAK-{self.rng.randrange(1, 20):04d}"
        result = self.station.as_user(CUSTODIAN, "hold", "add", "--case", case, "--reason", "复议期间 soak")
        self.journal.event("hold", case=case, ok=result.returncode == 0)

    def denied(self) -> None:
        """Something the role may not do: refused (exit 13) and audited."""
        attempts = ((AUDITOR, ("tag", "EV-000001", "--case", "X-1")), (CUSTODIAN, ("log",)),
                    (AUDITOR, ("hold", "add", "--case", "X-1", "--reason", "no")))  # fmt: skip
        self.denials_tried += 1  # (each once first, in turn; then at random)
        user, args = (
            attempts[self.denials_tried - 1]
            if self.denials_tried <= len(attempts)
            else self.rng.choice(attempts)
        )
        result = self.station.as_user(user, *args)
        if result.returncode == 13:
            self.journal.denied_expected.append({"user": user, "action": args[0]})
        elif result.returncode == 0:
            self.journal.violation("roles-enforced", f"{user} was let {' '.join(args)}")
        else:  # (the daemon restarting: exit 7, not served; nothing to audit)
            self.journal.event("denied-unserved", user=user, code=result.returncode)


class Browser:
    """A clerk in the browser (custody web, over HTTP): Today, the footage list, an item's page,
    the original downloaded (checked against the ground truth), a range of the playable copy, a
    tag set from the footage page. A daemon that is down answers with an error page: counted,
    not judged; a download cut short is not judged either (only a whole one that differs is)."""

    def __init__(self, station: Station, ledger: Ledger, journal: Journal, rng: random.Random) -> None:
        self.station, self.ledger, self.journal, self.rng = station, ledger, journal, rng

    def run(self, stop: threading.Event) -> None:
        import httpx

        client = None
        first = [self.download, self.tag, self.item, self.today, self.footage]  # (one of each first)
        while not stop.wait(self.rng.uniform(1, 4)):
            try:
                client = client or self._sign_in()
                if client is not None:
                    action = (
                        first[0]
                        if first
                        else self.rng.choice(
                            (self.today, self.footage, self.item, self.download, self.download, self.tag)
                        )
                    )
                    if action(client) is not False and first and action == first[0]:
                        first.pop(0)
            except httpx.HTTPError as exc:
                self.journal.event("web-unserved", error=type(exc).__name__)
                client = None

    def _sign_in(self):
        import httpx

        from soak.station import WEB_PASSWORD

        client = httpx.Client(base_url=self.station.web_base, follow_redirects=True, timeout=60)
        page = client.post("/sign-in", data={"login": CLERK, "password": WEB_PASSWORD})
        self.journal.event("web-sign-in", ok=page.status_code == 200 and 'id="sign-out"' in page.text)
        return client if page.status_code == 200 and 'id="sign-out"' in page.text else None

    def _pick(self) -> dict | None:
        items = [i for i in self.station.items() if i["sha256"] in self.ledger.files]
        return self.rng.choice(items) if items else None

    def today(self, client) -> None:
        self.journal.event("web-today", code=_ok(client.get("/").status_code))

    def footage(self, client) -> None:
        self.journal.event("web-footage", code=_ok(client.get("/footage").status_code))

    def item(self, client) -> bool:
        found = self._pick()
        if not found:
            return False
        self.journal.event("web-item", code=_ok(client.get(f"/items/{found['id']}").status_code))
        ranged = client.get(f"/items/{found['id']}/playable", headers={"Range": "bytes=0-1023"})
        self.journal.event("web-play-range", code=_ok(ranged.status_code, 206))
        return True

    def download(self, client) -> bool | None:
        import hashlib

        found = self._pick()
        if not found:
            return False
        answer = client.get(f"/items/{found['id']}/download")
        truth = self.ledger.files[found["sha256"]]
        whole = answer.status_code == 200 and len(answer.content) == truth.size
        if whole and hashlib.sha256(answer.content).hexdigest() != truth.sha256:
            self.journal.violation(
                "web-download-identical", f"{found['id']} downloaded differs from {truth.name}"
            )
        self.journal.event("web-download", code=_ok(answer.status_code))

    def tag(self, client) -> bool | None:
        import re

        found = self._pick()
        page = client.get("/footage")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if not found or not token:
            return False
        case = f"SOAK-{self.rng.randrange(1, 20):04d}"
        answer = client.post(
            "/footage/tag", data={"csrf": token.group(1), "items": [found["id"]], "case": case}
        )
        self.journal.event("web-tag", code=_ok(answer.status_code))


def _kill_when_writing(process: subprocess.Popen, folder: Path) -> bool:
    """SIGKILL ``process`` as soon as it holds a file open in ``folder`` (named or not); return
    whether it was killed so (False: it ended first)."""
    import os
    import signal

    prefix = f"{folder}/"
    while process.poll() is None:
        with contextlib.suppress(OSError):  # (descriptors come and go while they are looked at)
            for fd in os.listdir(f"/proc/{process.pid}/fd"):
                if os.readlink(f"/proc/{process.pid}/fd/{fd}").startswith(prefix):
                    process.send_signal(signal.SIGKILL)
                    return True
        time.sleep(0.0005)
    return False


def _ok(status: int, good: int = 200) -> int:
    """An HTTP status as the summary counts it: 0 when it is the one wanted."""
    return 0 if status == good else status
