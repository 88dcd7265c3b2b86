#!/usr/bin/env python3
"""Check a custody evidence disc without custody: python3 -I verify.py [DISC_FOLDER]

This file is written onto every evidence disc as ``verify.py``. It needs only
Python 3 (3.6 or newer) and its standard library, so a court, a lawyer or
another agency can run it years later on any computer. It checks:

1. the BagIt bag (RFC 8493): every payload file's SHA-256 against
   ``manifest-sha256.txt``, no payload file missing or unlisted, the
   Payload-Oxum, and every tag file against ``tagmanifest-sha256.txt``;
2. the custody record (``custody/record.json``): every audit event's hash is
   recomputed from its content, consecutive events link to each other, and the
   vault's Ed25519 signatures (the checkpoint, and the excerpt naming exactly
   these events and files) verify with ``custody/public-key.pem``;
3. that each original on the disc is the file the vault recorded at ingest
   (its SHA-256 in the signed ingest event equals the manifest's).

A hash alone catches damage. The signatures catch tampering, as long as the
public key is the vault's: compare the key fingerprint this prints with the
one on the paper description in the case file, or the one the organisation
publishes. Exit code 0 when everything holds, 1 when anything fails (each
problem is named), 2 when the folder is not an evidence disc.

custody itself uses this same module to verify discs and images.
"""

import hashlib
import json
import os
import sys

CHUNK = 1 << 20
RECORD = "custody/record.json"
PUBLIC_KEY = "custody/public-key.pem"
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw key follows.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


# -- Ed25519 signature verification (RFC 8032, section 6, reference code) ------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y, sign):
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 % _P == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _point_add(a, b):
    pa = (a[1] - a[0]) * (b[1] - b[0]) % _P
    pb = (a[1] + a[0]) * (b[1] + b[0]) % _P
    pc = 2 * a[3] * b[3] * _D % _P
    pd = 2 * a[2] * b[2] % _P
    e, f, g, h = pb - pa, pd - pc, pd + pc, pb + pa
    return (e * f, g * h, f * g, e * h)


def _point_mul(scalar, point):
    result = (0, 1, 1, 0)
    while scalar > 0:
        if scalar & 1:
            result = _point_add(result, point)
        point = _point_add(point, point)
        scalar >>= 1
    return result


def _point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _point_decompress(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify(public_key, message, signature):
    """Return True when ``signature`` (64 bytes) is ``public_key``'s (32 bytes) over ``message``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _point_decompress(public_key)
    r = _point_decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    return _point_equal(_point_mul(s, _G), _point_add(r, _point_mul(h, a)))


def public_key_from_pem(text):
    """Return the raw 32-byte Ed25519 key in a PEM public key; raise ValueError otherwise."""
    import base64

    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        raise ValueError("not a PEM public key")
    der = base64.b64decode("".join(lines[1:-1]))
    if len(der) != 44 or not der.startswith(_ED25519_SPKI_PREFIX):
        raise ValueError("not an Ed25519 public key")
    return der[len(_ED25519_SPKI_PREFIX) :]


def key_fingerprint(raw_public_key):
    """The short fingerprint custody prints for a key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


# -- the audit chain's hashing (as custody computes it) -----------------------


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(event):
    body = {
        "seq": event["seq"],
        "at": event["at"],
        "actor": event["actor"],
        "action": event["action"],
        "item": event["item"],
        "details": event["details"],
        "prev": event["prev"],
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def checkpoint_message(vault_id, seq, head, signed_at):
    return canonical_json({"vault": vault_id, "seq": seq, "head": head, "at": signed_at})


def excerpt_message(record):
    """What the vault signs for a disc: its checkpoint, and exactly these events and files."""
    return canonical_json(
        {
            "vault": record["vault"],
            "export": record["export"],
            "disc": record["disc"],
            "checkpoint": record["checkpoint"]["seq"],
            "head": record["checkpoint"]["head"],
            "events": [[event["seq"], event["hash"]] for event in record["events"]],
            "files": [[entry["path"], entry["sha256"]] for entry in record["files"]],
        }
    )


# -- reading a disc -------------------------------------------------------------


class FolderFiles:
    """The files of a disc copied or mounted as a folder."""

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def names(self):
        found = []

        def unreadable(error):
            raise CannotRead(error.filename or self.root, error.strerror or str(error))

        for folder, dirs, files in os.walk(self.root, onerror=unreadable):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                found.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        return found

    def open(self, name):
        path = os.path.join(self.root, *name.split("/"))
        try:
            return open(path, "rb")
        except PermissionError as exc:
            raise CannotRead(path, exc.strerror) from exc


class NotADisc(Exception):
    """The folder holds no custody evidence bag."""


class CannotRead(Exception):
    """A file or folder of the copy cannot be read by this user: nothing is known about it yet."""

    def __init__(self, path, why):
        super().__init__(f"cannot read {path}: {why}")


class DiscReport:
    """What a check found: problems (each naming what failed) and facts for people."""

    def __init__(self):
        self.problems = []
        self.facts = []
        self.files_checked = 0
        self.bytes_checked = 0
        self.file_sha256 = {}

    @property
    def ok(self):
        return not self.problems


def _sha256_of(files, name, report):
    if hasattr(files, "hash_file"):  # custody reading an image: straight from its extents
        digest, size = files.hash_file(name)
        report.bytes_checked += size
        report.files_checked += 1
        return digest
    digest = hashlib.sha256()
    with files.open(name) as stream:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            report.bytes_checked += len(chunk)
    report.files_checked += 1
    return digest.hexdigest()


def _read_text(files, name):
    with files.open(name) as stream:
        return stream.read().decode("utf-8")


def _decode_path(path):
    # RFC 8493 section 2.1.3: CR, LF and % are percent-encoded in manifests.
    return path.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def read_manifest(text, what, report):
    """Return {path: sha256} from a manifest's lines; bad lines are problems."""
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            report.problems.append(f"{what}: line {number} is not '<sha256> <path>'")
            continue
        entries[_decode_path(parts[1].strip())] = parts[0].lower()
    return entries


def read_bag_info(text):
    """Return bag-info.txt's fields as {label: [values]} (continuation lines joined)."""
    fields = {}
    label = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and label is not None:
            fields[label][-1] += " " + line.strip()
            continue
        if ":" not in line:
            continue
        label, value = line.split(":", 1)
        label = label.strip()
        fields.setdefault(label, []).append(value.strip())
    return fields


def check_bag(files, report):
    """Check the bag's declaration, payload and tag manifests, and Payload-Oxum."""
    names = set(files.names())
    if "bagit.txt" not in names or "manifest-sha256.txt" not in names:
        raise NotADisc("no bagit.txt and manifest-sha256.txt: not a custody evidence disc")
    declaration = _read_text(files, "bagit.txt")
    if "BagIt-Version: 1.0" not in declaration:
        report.problems.append("bagit.txt: not a BagIt 1.0 declaration")
    manifest = read_manifest(_read_text(files, "manifest-sha256.txt"), "manifest-sha256.txt", report)
    payload = sorted(name for name in names if name.startswith("data/"))
    for name in payload:
        if name not in manifest:
            report.problems.append(f"{name}: on the disc but not in the manifest")
    total = 0
    for name in sorted(manifest):
        if name not in names:
            report.problems.append(f"{name}: in the manifest but missing from the disc")
            continue
        before = report.bytes_checked
        actual = _sha256_of(files, name, report)
        total += report.bytes_checked - before
        report.file_sha256[name] = actual
        if actual != manifest[name]:
            report.problems.append(f"{name}: SHA-256 differs from the manifest (the file was changed)")
    if "tagmanifest-sha256.txt" in names:
        tags = read_manifest(_read_text(files, "tagmanifest-sha256.txt"), "tagmanifest-sha256.txt", report)
        for name in sorted(tags):
            if name not in names:
                report.problems.append(f"{name}: in the tag manifest but missing from the disc")
            elif _sha256_of(files, name, report) != tags[name]:
                report.problems.append(
                    f"{name}: SHA-256 differs from the tag manifest (the file was changed)"
                )
        for name in (RECORD, PUBLIC_KEY, "bag-info.txt", "manifest-sha256.txt"):
            if name in names and name not in tags:
                report.problems.append(f"{name}: not covered by the tag manifest")
    else:
        report.problems.append("tagmanifest-sha256.txt: missing")
    info = read_bag_info(_read_text(files, "bag-info.txt")) if "bag-info.txt" in names else {}
    oxum = (info.get("Payload-Oxum") or [""])[0]
    if oxum != f"{total}.{len(manifest)}":
        report.problems.append(
            "bag-info.txt: Payload-Oxum {} but the payload is {} bytes in {} files".format(
                oxum or "(none)", total, len(manifest)
            )
        )
    for label in ("External-Identifier", "Case-Number", "Bag-Count"):
        if info.get(label):
            report.facts.append(f"{label}: {info[label][0]}")
    return manifest


def check_record(files, manifest, report):
    """Check the custody record's events, signatures, and its link to the payload."""
    names = set(files.names())
    if RECORD not in names or PUBLIC_KEY not in names:
        report.problems.append(f"{RECORD} or {PUBLIC_KEY}: missing, the custody record cannot be checked")
        return
    try:
        record = json.loads(_read_text(files, RECORD))
        public_key = public_key_from_pem(_read_text(files, PUBLIC_KEY))
        checkpoint = record["checkpoint"]
        events = record["events"]
        entries = record["files"]
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{RECORD}: unreadable ({exc})")
        return
    report.facts.append(f"signing key fingerprint: {key_fingerprint(public_key)}")
    report.facts.append("vault: {}".format(record.get("vault")))
    try:
        signature = bytes.fromhex(checkpoint["signature"])
        message = checkpoint_message(record["vault"], checkpoint["seq"], checkpoint["head"], checkpoint["at"])
    except (KeyError, ValueError, TypeError):
        signature, message = b"", b""
    if not ed25519_verify(public_key, message, signature):
        report.problems.append(f"{RECORD}: the checkpoint's signature does not match the vault's key")
    try:
        excerpt_signature = bytes.fromhex(record["excerpt_signature"])
        excerpt = excerpt_message(record)
    except (KeyError, ValueError, TypeError):
        excerpt_signature, excerpt = b"", b""
    if not ed25519_verify(public_key, excerpt, excerpt_signature):
        report.problems.append(
            f"{RECORD}: the signature over its events and files does not match (the record was changed)"
        )
    previous = None
    by_item = {}
    for event in events:
        try:
            recomputed = event_hash(event)
            seq = event["seq"]
        except (KeyError, TypeError):
            report.problems.append(f"{RECORD}: an audit event is incomplete")
            continue
        if recomputed != event.get("hash"):
            report.problems.append(f"audit event {seq}: altered (its hash does not match its content)")
        if previous is not None and seq == previous["seq"] + 1 and event.get("prev") != previous.get("hash"):
            report.problems.append("audit event {}: does not link to event {}".format(seq, previous["seq"]))
        if seq > checkpoint.get("seq", 0):
            report.problems.append(f"audit event {seq}: newer than the signed checkpoint")
        if seq == checkpoint.get("seq") and event.get("hash") != checkpoint.get("head"):
            report.problems.append(f"audit event {seq}: is not the head the checkpoint signed")
        previous = event
        by_item.setdefault(event.get("item"), []).append(event)
    listed = set()
    for entry in entries:
        path, sha256 = entry.get("path"), entry.get("sha256")
        listed.add(path)
        if manifest.get(path) != sha256:
            report.problems.append(f"{path}: the custody record names another SHA-256 than the manifest")
        if entry.get("role") == "original":
            ingests = [e for e in by_item.get(entry.get("number"), []) if e.get("action") == "ingest"]
            recorded = [json.loads(e["details"]).get("sha256") for e in ingests]
            if sha256 not in recorded:
                report.problems.append(f"{path}: no signed ingest event records this SHA-256")
    for path in sorted(manifest):
        if path not in listed:
            report.problems.append(f"{path}: not named in the custody record")
    report.facts.append(
        "audit events: {} (signed checkpoint at event {}, {})".format(
            len(events), checkpoint.get("seq"), checkpoint.get("at")
        )
    )


def check_disc(files):
    """Check everything on a disc; return a DiscReport. Raise NotADisc when there is no bag."""
    report = DiscReport()
    manifest = check_bag(files, report)
    check_record(files, manifest, report)
    return report


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    try:
        report = check_disc(FolderFiles(root))
    except NotADisc as exc:
        print(f"verify: {root}: {exc}")
        return 2
    except CannotRead as exc:
        # Not a verdict on the disc: a copy made by another user may keep modes this user lacks.
        print(f"verify: {exc}; nothing was checked: run as a user who can read every file of the copy")
        return 2
    for fact in report.facts:
        print(fact)
    print(f"files checked: {report.files_checked} ({report.bytes_checked} bytes)")
    for problem in report.problems:
        print("FAILED: " + problem)
    if report.ok:
        print("OK: every file matches its manifest and the custody record is signed by the vault's key")
        print("Compare the key fingerprint above with the one on the paper description.")
        return 0
    print(f"FAILED: {len(report.problems)} problem(s); this disc is not what the vault wrote")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
