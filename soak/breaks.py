"""Deliberately broken builds: a copy of custody with one mistake each, to show that each of the
soak's invariants can fail (``python -m soak --break NAME``; tests/test_soak.py). A mistake is one
or more text replacements, each of which must match the code exactly once, so a change to the code
that moves it fails loudly here instead of testing nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Break:
    """A mistake in custody/``file``: each (code, mistake) pair replaced; the invariant that must
    then fail, and any other one the same mistake may also fail as a consequence."""

    file: str
    replacements: tuple[tuple[str, str], ...]
    invariant: str
    may_also_fail: frozenset[str] = frozenset()


BREAKS: dict[str, Break] = {
    # A daemon that silently skips one recorder's footage: every file in the vault exactly once.
    "lose-files": Break(
        "config.py",
        (('            "Thumbs.db",\n', '            "Thumbs.db",\n            "BWC1002_*",\n'),),
        "every-file-exactly-once",
    ),
    # A daemon that takes in hidden files (a Mac's ._NAME.MP4 beside each copy; and a copy in
    # progress under its hidden name, without the officer or time its real name gives).
    "ingest-hidden-files": Break(
        "config.py",
        (('            ".*",\n', ""),),
        "nothing-but-what-was-docked",
        frozenset({"credited-to-the-right-officer", "right-recording-window", "every-file-exactly-once"}),
    ),
    "credit-nobody": Break(
        "ingestd/dock.py",
        (("            credited_officer=officer,\n", "            credited_officer=None,\n"),),
        "credited-to-the-right-officer",
    ),
    # A recording time read from the file's name without its seconds.
    "drop-seconds": Break(
        "devices/profiles.py",
        (
            (
                "        start = local.replace(tzinfo=zoneinfo.ZoneInfo(profile.clock_timezone)).astimezone(UTC)\n",
                "        start = local.replace(second=0, tzinfo=zoneinfo.ZoneInfo(profile.clock_timezone))"
                ".astimezone(UTC)\n",
            ),
        ),
        "right-recording-window",
    ),
    # The 24-hour deadline counted the wrong way (everything late).
    "deadline-backwards": Break(
        "ingestd/dock.py",
        (
            (
                "        deadline = end + timedelta(hours=self.dock_settings.window_hours)\n",
                "        deadline = end - timedelta(hours=self.dock_settings.window_hours)\n",
            ),
        ),
        "right-deadline",
    ),
    # A profile that says "wipe after the replica" wiping as soon as the vault holds the file.
    "wipe-before-replica": Break(
        "ingestd/dock.py",
        (('                if self.profile.wipe == "after_replica":\n', "                if False:\n"),),
        "wiped-before-durable",
    ),
    # An extract through the daemon that writes a byte too many.
    "extract-extra-byte": Break(
        "cli/remote.py",
        (
            (
                '    _say_extracted(role, result["item"], params["out"], result["size"], result["sha256"])\n',
                '    Path(params["out"]).open("ab").write(b"\\n")\n'
                '    _say_extracted(role, result["item"], params["out"], result["size"], result["sha256"])\n',
            ),
        ),
        "extract-identical",
    ),
    # A disc whose manifest lists each file's SHA-256 reversed: its own check fails.
    "wrong-disc-manifest": Break(
        "vault/disc/bag.py",
        (
            (
                '        "".join(f"{sha256}  {encode_path(path)}\\n" for path, sha256 in sorted(payload)), encoding="utf-8"\n',
                '        "".join(f"{sha256[::-1]}  {encode_path(path)}\\n" for path, sha256 in sorted(payload)),'
                ' encoding="utf-8"\n',
            ),
        ),
        "exports-verify",
    ),
    # The web platform's download sends each chunk backwards (the right length, the wrong bytes).
    "web-download-backwards": Break(
        "web/app.py",
        (
            (
                '            self.daemon.stream(login, args), media_type="application/octet-stream",\n',
                '            (chunk[::-1] for chunk in self.daemon.stream(login, args)), media_type="application/octet-stream",\n',
            ),
        ),
        "web-download-identical",
    ),
    # A new file written in place under its name (a writer killed part way leaves half a file).
    "write-in-place": Break(
        "vault/new_files.py",
        (
            (
                '            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o666, dir_fd=folder)\n',
                "            fd = os.open(out.name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666, dir_fd=folder)\n",
            ),
            (
                '                    os.link(f"/proc/self/fd/{sink.fileno()}", out.name, dst_dir_fd=folder)\n',
                "                    pass\n",
            ),
        ),
        "no-half-written-files",
    ),
    # Custodians let read the whole audit chain (the auditors' alone).
    "custodians-read-the-chain": Break(
        "vault/access.py",
        (('    "log": frozenset({AUDITOR}),\n', '    "log": frozenset({AUDITOR, CUSTODIAN}),\n'),),
        "roles-enforced",
    ),
    # A retention floor of one year instead of two: footage 13-22 months old is disposed of.
    "one-year-floor": Break(
        "rules.py",
        (("FLOOR_MONTHS = 24 ", "FLOOR_MONTHS = 12 "),),
        "disposed-only-when-due",
    ),
    "forget-denials": Break(
        "vault/vault.py",
        (
            (
                '            self.audit.append(self.caller.actor, "denied", item.number if item else None, details)\n',
                "            pass\n",
            ),
        ),
        "every-denial-audited",
    ),
    # A tag event's hash that leaves out the item it tags: the chain no longer verifies.
    "hash-without-item": Break(
        "vault/audit.py",
        (
            (
                "            digest = event_hash(seq, at, actor, action, item, details_text, prev)\n",
                '            digest = event_hash(seq, at, actor, action, None if action == "tag" else item, details_text, prev)\n',
            ),
        ),
        "audit-chain-and-catalog-verify",
        frozenset({"verify-against-offsite"}),
    ),
    # The off-site anchors published without the first event of each segment.
    "publish-with-gaps": Break(
        "vault/offsite/published.py",
        (
            (
                '    segment = {"format": FORMAT, "vault": vault.audit.vault_id, "events": events, "checkpoints": checkpoints}\n',
                '    segment = {"format": FORMAT, "vault": vault.audit.vault_id, "events": events[1:], "checkpoints": checkpoints}\n',
            ),
        ),
        "verify-against-offsite",
    ),
    # Each upload sent a second time under another key, which nobody deletes.
    "upload-twice": Break(
        "vault/offsite/target.py",
        (
            (
                "        if locked:\n            # Some servers ignore lock headers on multipart uploads: set it explicitly.\n",
                "        self._call(self.client.upload_file, str(path), self.settings.bucket,"
                ' self.key_for(sha256) + ".retry", ExtraArgs=extra, Config=self.transfer)\n'
                "        if locked:\n            # Some servers ignore lock headers on multipart uploads: set it explicitly.\n",
            ),
        ),
        "no-orphan-objects-or-uploads",
        frozenset({"replicas-match"}),  # (replicate check names what the catalog does not know)
    ),
    "leak-staging": Break(
        "vault/objects.py",
        (
            (
                '        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")\n',
                '        tempfile.mkstemp(dir=self.staging, prefix="seal-leak-", suffix=".part")\n'
                '        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")\n',
            ),
        ),
        "no-staging-files-or-mounts",
    ),
    # A descriptor opened on each status request and never closed.
    "leak-descriptors": Break(
        "operations/station.py",
        (
            (
                "    live = read_status(vault.home)\n",
                '    globals().setdefault("_kept", []).append(open(__file__))  # noqa: SIM115\n'
                "    live = read_status(vault.home)\n",
            ),
        ),
        "memory-descriptors-threads-flat",
    ),
    # A replicator that trusts what it sent without reading it back (the soak's proxy corrupts
    # an object now and then, as a bad link or disk can).
    "trust-the-upload": Break(
        "vault/offsite/replicator.py",
        (
            (
                '            if mode == "download":\n                problem = target.download_problem(sha256, self.vault.master)\n',
                '            if mode == "download":\n                problem = None\n',
            ),
        ),
        "replicas-match",
    ),
    # A status request that takes over a second.
    "slow-status": Break(
        "operations/station.py",
        (
            (
                "    sessions = vault.registry.dock_sessions(limit=10)\n",
                '    __import__("time").sleep(1.2)\n    sessions = vault.registry.dock_sessions(limit=10)\n',
            ),
        ),
        "status-p99-within-a-second",
    ),
}


def apply(copy: Path, names: list[str]) -> list[str]:
    """Make each named mistake in the copy of custody at ``copy``; return the invariants that
    must fail. Raise KeyError for an unknown name, ValueError when the code no longer matches."""
    expected = []
    for name in names:
        mistake = BREAKS[name]
        path = copy / mistake.file
        text = path.read_text(encoding="utf-8")
        for code, wrong in mistake.replacements:
            if text.count(code) != 1:
                raise ValueError(
                    f"break {name}: the code it changes is not found once in custody/{mistake.file}"
                )
            text = text.replace(code, wrong)
        path.write_text(text, encoding="utf-8")
        expected.append(mistake.invariant)
    return expected


def may_fail(names: list[str]) -> set[str]:
    """Every invariant the named mistakes may fail: their own and their consequences."""
    return {BREAKS[n].invariant for n in names} | {i for n in names for i in BREAKS[n].may_also_fail}
