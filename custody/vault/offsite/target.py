"""One off-site replica: an S3-compatible bucket, through boto3.

Objects go up exactly as stored (sealed: the provider never sees footage)
under ``<prefix>objects/sha256/ab/cd/<sha256>``, with a SHA-256 checksum per
part that the server checks where it can (AWS S3, MinIO, Ceph RGW). boto3's
managed transfer does the multipart work with bounded memory (``concurrency``
parts of ``part_size_mb`` in flight) and aborts its upload when it fails;
botocore's "standard" retry mode retries throttling, 5xx, time-outs and
connection resets with exponential backoff and jitter. Verification is the
vault's own: the checksum the server reports against the one computed here,
or the object downloaded, authenticated and re-hashed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from s3transfer.utils import ChunksizeAdjuster

from custody.config import TargetSettings
from custody.errors import CustodyError, Said
from custody.vault.keys import MasterKey
from custody.vault.objects import ObjectStore, verify_plaintext
from custody.vault.sealing import ObjectDamaged, unseal

MiB = 1 << 20


class ReplicaUnavailable(CustodyError):
    """replica {target}: {problem}"""

    exit_code = 8


# S3 refuses a retain-until date that is not in the future (InvalidArgument), as footage recorded
# more than two years before it was docked has: its retention is over, so nothing is dated. A
# date less than this far ahead could have passed by the time the server reads it.
LOCK_MARGIN = timedelta(minutes=5)


def still_ahead(retain_until: datetime | None) -> bool:
    """Whether ``retain_until`` is a date S3 will take (far enough in the future)."""
    return retain_until is not None and retain_until > datetime.now(UTC) + LOCK_MARGIN


@dataclass(frozen=True)
class Uploaded:
    checksum: str  # base64 SHA-256 (of the parts' SHA-256s, "-N", when sent in N parts)
    version_id: str | None
    remote: RemoteObject | None  # what the server said of it right after (HEAD, checksum mode)


@dataclass(frozen=True)
class RemoteObject:
    size: int
    checksum: str | None
    version_id: str | None
    lock_mode: str | None
    retain_until: datetime | None
    legal_hold: bool


class S3Target:
    """A configured target; every method raises ReplicaUnavailable with one clear line on failure."""

    def __init__(self, name: str, settings: TargetSettings, credentials_dir: Path | None = None) -> None:
        self.name = name
        self.settings = settings
        self.part_size = settings.part_size_mb * MiB
        session_args = {}
        if settings.credential:
            session_args = _credential(name, settings.credential, credentials_dir)
        config = Config(
            region_name=settings.region,
            retries={"mode": "standard", "max_attempts": 6},
            connect_timeout=min(10.0, settings.timeout_seconds),
            read_timeout=settings.timeout_seconds,
            s3={"addressing_style": settings.addressing_style},
            # Checksums are asked for explicitly (SHA-256), not botocore's CRC default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=max(10, settings.concurrency * 2),
        )
        self.client = boto3.session.Session(**session_args).client(
            "s3", endpoint_url=settings.endpoint_url or None, config=config
        )
        self.transfer = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=settings.concurrency,
            use_threads=True,
        )
        # Parts read ahead of the senders (s3transfer's setting; boto3's constructor lacks it):
        # memory stays near concurrency x part size, not ten parts.
        self.transfer.max_in_memory_upload_chunks = settings.concurrency
        self._lock_enabled: bool | None = None

    # -- naming -------------------------------------------------------------

    def key_for(self, sha256: str) -> str:
        return f"{self.settings.prefix}objects/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    @property
    def objects_prefix(self) -> str:
        return f"{self.settings.prefix}objects/sha256/"

    # -- the bucket ---------------------------------------------------------

    def check_reachable(self) -> None:
        """Raise ReplicaUnavailable when the bucket cannot be reached with these credentials."""
        self._call(self.client.head_bucket, Bucket=self.settings.bucket)

    def object_lock(self) -> bool:
        """True when the bucket has Object Lock enabled (asked once)."""
        if self._lock_enabled is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.settings.bucket)
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) not in ("ObjectLockConfigurationNotFoundError", "NotImplemented"):
                    raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
                enabled = False
            except BotoCoreError as exc:
                raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
            self._lock_enabled = enabled
        return self._lock_enabled

    def abort_open_uploads(self) -> int:
        """Abort multipart uploads left under our prefix (a killed upload); return how many."""
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = self._call(
            lambda: list(paginator.paginate(Bucket=self.settings.bucket, Prefix=self.objects_prefix))
        )
        for page in pages:
            for upload in page.get("Uploads") or []:
                self._call(
                    self.client.abort_multipart_upload,
                    Bucket=self.settings.bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
                aborted += 1
        return aborted

    def open_uploads(self) -> int:
        answer = self._call(
            self.client.list_multipart_uploads, Bucket=self.settings.bucket, Prefix=self.objects_prefix
        )
        return len(answer.get("Uploads") or [])

    def listing(self) -> dict[str, int]:
        """Return {sha256 or other key: size} of everything under the objects prefix."""
        found = {}
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            lambda: list(paginator.paginate(Bucket=self.settings.bucket, Prefix=self.objects_prefix))
        )
        for page in pages:
            for entry in page.get("Contents") or []:
                name = entry["Key"].rsplit("/", 1)[-1]
                found[name if ObjectStore.is_object_name(name) else entry["Key"]] = entry["Size"]
        return found

    # -- one object ---------------------------------------------------------

    def upload(self, path: Path, sha256: str, retain_until: datetime | None, legal_hold: bool) -> Uploaded:
        """Send the sealed object file at ``path``; lock it when the bucket has Object Lock.

        The local checksum is computed beside the upload (the same parts, in
        another thread). Raise ReplicaUnavailable naming what failed.
        """
        size = path.stat().st_size
        local: dict[str, str] = {}
        hashing = threading.Thread(target=lambda: local.update(checksum=self.expected_checksum(path, size)))
        hashing.start()
        extra = {"ChecksumAlgorithm": "SHA256"}
        if self.settings.storage_class and self.settings.storage_class != "STANDARD":
            extra["StorageClass"] = self.settings.storage_class
        dated = still_ahead(retain_until)
        locked = (dated or legal_hold) and self.object_lock()
        if locked and dated:
            extra.update(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until)
        try:
            self._call(
                self.client.upload_file,
                str(path),
                self.settings.bucket,
                self.key_for(sha256),
                ExtraArgs=extra,
                Config=self.transfer,
            )
        finally:
            hashing.join()
        if locked:
            # Some servers ignore lock headers on multipart uploads: set it explicitly.
            self.set_lock(sha256, retain_until, legal_hold)
        remote = self.head(sha256)
        return Uploaded(local["checksum"], remote.version_id if remote else None, remote)

    def set_lock(self, sha256: str, retain_until: datetime | None, legal_hold: bool) -> None:
        """COMPLIANCE retention until ``retain_until`` (unless that date has passed) and the legal
        hold, on the current version."""
        key = self.key_for(sha256)
        if still_ahead(retain_until):
            self._call(
                self.client.put_object_retention,
                Bucket=self.settings.bucket,
                Key=key,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": retain_until},
            )
        if legal_hold:
            self._call(
                self.client.put_object_legal_hold,
                Bucket=self.settings.bucket,
                Key=key,
                LegalHold={"Status": "ON"},
            )

    def delete_everywhere(self, sha256: str) -> datetime | None:
        """Delete every version of the object (and its delete markers); return None when all went.

        A version under Object Lock is refused by the server: return the
        retain-until date to try again after (a day from now when unknown).
        """
        key = self.key_for(sha256)
        answer = self._call(self.client.list_object_versions, Bucket=self.settings.bucket, Prefix=key)
        entries = [
            entry
            for group in ("Versions", "DeleteMarkers")
            for entry in answer.get(group) or []
            if entry["Key"] == key
        ]
        locked_until: datetime | None = None
        for entry in entries:
            version = entry.get("VersionId")
            try:
                if version and version != "null":
                    self.client.delete_object(Bucket=self.settings.bucket, Key=key, VersionId=version)
                else:
                    self.client.delete_object(Bucket=self.settings.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) not in ("AccessDenied", "403", "InvalidRequest"):
                    raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
                until = self._retain_until(key, version)
                locked_until = until if locked_until is None or until > locked_until else locked_until
            except BotoCoreError as exc:
                raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        return locked_until

    def _retain_until(self, key: str, version: str | None) -> datetime:
        try:
            extra = {"VersionId": version} if version and version != "null" else {}
            head = self.client.head_object(Bucket=self.settings.bucket, Key=key, **extra)
            if head.get("ObjectLockRetainUntilDate") and head.get("ObjectLockLegalHoldStatus") != "ON":
                return head["ObjectLockRetainUntilDate"]
        except (ClientError, BotoCoreError):
            pass
        return datetime.now(UTC) + timedelta(days=1)

    def release_legal_hold(self, sha256: str) -> None:
        """Lift the legal hold (the item is neither permanent nor held any more); retention stays."""
        self._call(
            self.client.put_object_legal_hold,
            Bucket=self.settings.bucket,
            Key=self.key_for(sha256),
            LegalHold={"Status": "OFF"},
        )

    def head(self, sha256: str) -> RemoteObject | None:
        """What the server says of the object (None when it has none)."""
        try:
            answer = self.client.head_object(
                Bucket=self.settings.bucket, Key=self.key_for(sha256), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        except BotoCoreError as exc:
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        return RemoteObject(
            size=answer["ContentLength"],
            checksum=answer.get("ChecksumSHA256"),
            version_id=answer.get("VersionId"),
            lock_mode=answer.get("ObjectLockMode"),
            retain_until=answer.get("ObjectLockRetainUntilDate"),
            legal_hold=answer.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def checksum_problem(
        self, sha256: str, size: int, checksum: str, remote: RemoteObject | None = None
    ) -> str | None:
        """Compare the server's size and SHA-256 with ours; return the difference, or None.

        ``remote`` is a HEAD answer already in hand (just after an upload); else one is asked for.
        """
        remote = remote or self.head(sha256)
        if remote is None:
            return "missing"
        if remote.size != size:
            return f"size {remote.size}, expected {size}"
        if remote.checksum is None:
            return "the server reports no SHA-256 checksum"
        if remote.checksum.split("-")[0] != checksum.split("-")[0]:
            return f"checksum {remote.checksum}, expected {checksum}"
        return None

    def download_problem(self, sha256: str, master: MasterKey, version_id: str | None = None) -> str | None:
        """Download the object (its newest version, or ``version_id``), authenticate every segment
        and re-hash it; return the problem, or None."""
        version = _version_arg(version_id)
        try:
            answer = self.client.get_object(Bucket=self.settings.bucket, Key=self.key_for(sha256), **version)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return "missing"
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        except BotoCoreError as exc:
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        body = _FullReads(answer["Body"])
        try:
            verify_plaintext(unseal(body, master, sha256), sha256)
        except ObjectDamaged as exc:
            return str(exc.fields.get("problem", exc))
        except (BotoCoreError, OSError) as exc:
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        finally:
            answer["Body"].close()
        return None

    def put_blob(self, key: str, data: bytes, retain_until: datetime | None) -> None:
        """Store a small object (a sealed sidecar or audit segment) under ``key``, read back to check it.

        A copy that does not read back identical is sent again (three tries),
        then ReplicaUnavailable is raised.
        """
        extra = {}
        if still_ahead(retain_until) and self.object_lock():
            extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": retain_until}
        for _attempt in range(3):
            self._call(
                self.client.put_object,
                Bucket=self.settings.bucket,
                Key=self.settings.prefix + key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                **extra,
            )
            if self.get_blob(key) == data:
                return
        raise ReplicaUnavailable(
            target=self.name, problem=Said("{key} does not read back as it was sent", key=key)
        )

    def get_blob(self, key: str, version_id: str | None = None) -> bytes:
        """The bytes stored under ``key`` (below the prefix): its newest version, or ``version_id``."""
        version = _version_arg(version_id)
        answer = self._call(
            self.client.get_object, Bucket=self.settings.bucket, Key=self.settings.prefix + key, **version
        )
        try:
            return self._call(answer["Body"].read)
        finally:
            answer["Body"].close()

    def versions(self, key: str) -> list[str]:
        """The version ids stored under ``key`` (below the prefix), newest first.

        Object Lock stops versions being deleted, not new ones being added on
        top: whoever may write to the bucket can put a newer version over a
        sealed object. Readers that must not be fooled by that read the newest
        version that authenticates (see newest_authentic).
        """
        return self.versions_under(key).get(key, [])

    def versions_under(self, folder: str) -> dict[str, list[str]]:
        """{key below the prefix: version ids newest first} for every key below ``<prefix><folder>``.

        An unversioned bucket gives each key one version, "null". Delete markers are left out.
        """
        paginator = self.client.get_paginator("list_object_versions")
        pages = self._call(
            lambda: list(
                paginator.paginate(Bucket=self.settings.bucket, Prefix=self.settings.prefix + folder)
            )
        )
        start = len(self.settings.prefix)
        found: dict[str, list[str]] = {}
        for page in pages:
            for entry in page.get("Versions") or []:  # S3 lists each key's versions newest first
                found.setdefault(entry["Key"][start:], []).append(entry.get("VersionId") or "null")
        return found

    def object_key(self, sha256: str) -> str:
        """The object's key below the prefix (key_for without the prefix)."""
        return self.key_for(sha256)[len(self.settings.prefix) :]

    def put_version_on_top(
        self, key: str, version_id: str, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> str | None:
        """Copy version ``version_id`` of ``key`` (below the prefix) over it, as its newest version,
        with the given lock; return the new version id. Nothing is deleted."""
        extra: dict = {}
        if self.object_lock():
            if still_ahead(retain_until):  # (a version put back for footage whose time is over: undated)
                extra.update(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until)
            if legal_hold:
                extra["ObjectLockLegalHoldStatus"] = "ON"
        full = self.settings.prefix + key
        answer = self._call(
            self.client.copy_object,
            Bucket=self.settings.bucket,
            Key=full,
            CopySource={"Bucket": self.settings.bucket, "Key": full, **_version_arg(version_id)},
            ChecksumAlgorithm="SHA256",  # (a server asks for one where Object Lock applies)
            **extra,
        )
        return answer.get("VersionId")

    def keys_under(self, folder: str) -> list[str]:
        """Every key below ``<prefix><folder>``, without the prefix, sorted."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            lambda: list(
                paginator.paginate(Bucket=self.settings.bucket, Prefix=self.settings.prefix + folder)
            )
        )
        start = len(self.settings.prefix)
        return sorted(entry["Key"][start:] for page in pages for entry in page.get("Contents") or [])

    def newest_authentic(
        self, sha256: str, master: MasterKey, versions: list[str] | None = None
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """(the newest version of the object that authenticates, [(newer version, its problem)]).

        Each version is downloaded, authenticated and re-hashed, newest
        first, until one holds; (None, every problem) when none does.
        """
        versions = versions if versions is not None else self.versions(self.object_key(sha256))
        bad: list[tuple[str, str]] = []
        for version_id in versions:
            problem = self.download_problem(sha256, master, version_id)
            if problem is None:
                return version_id, bad
            bad.append((version_id, problem))
        return None, bad

    def download_to(self, sha256: str, sink, version_id: str | None = None) -> None:
        """Write the stored (sealed) object to ``sink``, as it is in the bucket (newest, or ``version_id``)."""
        version = _version_arg(version_id)
        answer = self._call(
            self.client.get_object, Bucket=self.settings.bucket, Key=self.key_for(sha256), **version
        )
        try:
            for chunk in _FullReads(answer["Body"]):
                sink.write(chunk)
        except (BotoCoreError, OSError) as exc:
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        finally:
            answer["Body"].close()

    def expected_checksum(self, path: Path, size: int) -> str:
        """The SHA-256 checksum S3 reports for this file sent with our transfer settings."""
        if size < self.part_size:
            digest = hashlib.sha256()
            with open(path, "rb") as source:
                while chunk := source.read(8 * MiB):
                    digest.update(chunk)
            return base64.b64encode(digest.digest()).decode()
        part = ChunksizeAdjuster().adjust_chunksize(self.part_size, size)
        digests = []
        with open(path, "rb") as source:
            for start in range(0, size, part):
                digest, left = hashlib.sha256(), min(part, size - start)
                while left:
                    chunk = source.read(min(MiB, left))
                    if not chunk:
                        break
                    digest.update(chunk)
                    left -= len(chunk)
                digests.append(digest.digest())
        combined = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
        return f"{combined}-{len(digests)}"

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise ReplicaUnavailable(target=self.name, problem=describe(exc, self.settings)) from exc
        except Exception as exc:
            # s3transfer wraps failures of its worker threads in its own exceptions.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise ReplicaUnavailable(target=self.name, problem=describe(cause, self.settings)) from exc
            if type(exc).__module__.startswith(("s3transfer", "boto3")):
                raise ReplicaUnavailable(target=self.name, problem=f"{type(exc).__name__}: {exc}") from exc
            raise


def _version_arg(version_id: str | None) -> dict:
    """get_object's VersionId argument: none for the newest, or on an unversioned bucket ("null")."""
    return {"VersionId": version_id} if version_id and version_id != "null" else {}


def describe(exc: BaseException, settings: TargetSettings) -> str:
    """One line saying what went wrong with a target, and what to do; never a secret."""
    where = settings.endpoint_url or "AWS S3"
    if isinstance(exc, NoCredentialsError):
        return "no credentials: set them in the AWS chain (environment, profile) or a systemd credential"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {where}: check endpoint_url and the network"
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied", "InvalidToken"):
            return f"credentials refused by {where} ({code}): check the access key and secret"
        if code in ("NoSuchBucket", "404"):
            return f"no bucket {settings.bucket!r} at {where}: create it or fix bucket"
        message = exc.response.get("Error", {}).get("Message") or ""
        return f"{where} answered {code}: {message}".strip()
    return f"{where}: {type(exc).__name__}: {exc}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _credential(target: str, name: str, credentials_dir: Path | None) -> dict:
    """Read a systemd credential holding the access key id and the secret, one a line."""
    directory = credentials_dir or (
        Path(os.environ["CREDENTIALS_DIRECTORY"]) if "CREDENTIALS_DIRECTORY" in os.environ else None
    )
    if directory is None:
        raise ReplicaUnavailable(
            target=target,
            problem=Said(
                "credential {name!r} is configured but $CREDENTIALS_DIRECTORY is not set", name=name
            ),
        )
    try:
        lines = [line.strip() for line in (directory / name).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ReplicaUnavailable(
            target=target,
            problem=Said("cannot read credential {name!r}: {strerror}", name=name, strerror=exc.strerror),
        ) from exc
    if len(lines) < 2:
        raise ReplicaUnavailable(
            target=target,
            problem=Said(
                "credential {name!r} must hold the access key id and the secret, one a line", name=name
            ),
        )
    return {"aws_access_key_id": lines[0], "aws_secret_access_key": lines[1]}


class _FullReads:
    """A response body whose read(n) returns n bytes unless the object ends (segments must come whole)."""

    def __init__(self, body) -> None:
        self.body = body

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self.body.read()
        pieces, wanted = [], size
        while wanted > 0:
            piece = self.body.read(wanted)
            if not piece:
                break
            pieces.append(piece)
            wanted -= len(piece)
        return b"".join(pieces)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(MiB):
            yield chunk
