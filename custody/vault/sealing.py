"""The sealed-object format: how one original is encrypted at rest.

An object file is a fixed header followed by AES-256-GCM segments (a
STREAM-style construction)::

    header   magic(16) key_id(16) object_nonce(16) segment_size(4) wrap_nonce(12) wrapped_key(48)
    segment  ciphertext of up to segment_size plaintext bytes + 16-byte GCM tag, repeated

* Every object has its own random 256-bit data key, wrapped (AES-GCM) by the
  vault's master key; the master key's id is in the header so keys can rotate.
* Segment i is sealed with nonce = object_nonce[:7] || i (4 bytes) || last-flag
  (1 byte), so reordering, dropping or duplicating segments fails
  authentication, and so does cutting the object short (the segment that is
  then last was not sealed as last).
* The associated data of every segment is the header, and the last segment's
  also includes the SHA-256 of the whole plaintext: the object's identity, its
  name in the vault. An object renamed or swapped for another fails on its last
  segment even before its plaintext is re-hashed.

What this catches: any change to the stored bytes (corruption or deliberate
tampering by someone without the master key). What it does not: someone who
holds the master key can seal different footage under a name; the audit chain's
signed checkpoints and off-site replicas are what catch that.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custody.errors import CustodyError, Said
from custody.vault.keys import MasterKey

MAGIC = b"CUSTODY-OBJECT\x00\x01"
SEGMENT_SIZE = 1 << 20
TAG_SIZE = 16
_HEADER = struct.Struct("!16s16s16sI12s48s")
HEADER_SIZE = _HEADER.size
# Above this many segments the read and the encryption run in two threads
# (hashlib and file I/O release the GIL); below it a thread costs more than it saves.
_THREADED_FROM_SEGMENTS = 4
_PREFETCH_DEPTH = 4

ProgressCallback = Callable[[int], None]


class ObjectDamaged(CustodyError):
    """object {sha256} failed its integrity check: {problem}"""

    exit_code = 6


@dataclass(frozen=True)
class SealedStream:
    """What sealing one stream produced: the plaintext's SHA-256 and size."""

    sha256: str
    size: int


def seal(
    source: BinaryIO,
    destination: BinaryIO,
    master: MasterKey,
    expected_size: int | None = None,
    on_progress: ProgressCallback | None = None,
    on_written: Callable[[int], None] | None = None,
) -> SealedStream:
    """Encrypt everything readable from ``source`` into ``destination`` in one pass.

    The plaintext is hashed as it is read; memory use is a few segments,
    whatever the size. ``on_progress`` is called with the byte count of each
    chunk read, ``on_written`` with the total bytes written after each
    non-final segment. Return the plaintext's SHA-256 and size. Reading errors
    (OSError) propagate unchanged.
    """
    data_key = AESGCM.generate_key(bit_length=256)
    object_nonce = os.urandom(16)
    wrap_nonce = os.urandom(12)
    key_id = master.key_id.encode("ascii")
    wrapped = AESGCM(master.key).encrypt(wrap_nonce, data_key, _wrap_context(key_id, object_nonce))
    header = _HEADER.pack(MAGIC, key_id, object_nonce, SEGMENT_SIZE, wrap_nonce, wrapped)
    destination.write(header)
    written = len(header)

    size = 0

    def read_segments() -> Iterator[bytes]:
        nonlocal size
        while segment := _read_full(source, SEGMENT_SIZE, on_progress):
            size += len(segment)
            yield segment

    # A large stream is read by one thread, hashed by another and encrypted by this one, so the
    # slowest of them (SHA-256, on most machines) sets the pace; a small one is done here alone.
    # Each segment is hashed as the very bytes object that is then encrypted: what the SHA-256
    # names is exactly what the ciphertext holds, so authenticating the stored segments proves both.
    large = expected_size is not None and expected_size > _THREADED_FROM_SEGMENTS * SEGMENT_SIZE
    segments = _prefetch(read_segments()) if large else read_segments()
    hasher = _HashBehind() if large else _HashHere()

    cipher = AESGCM(data_key)
    counter = 0
    pending = b""
    first = True
    try:
        for segment in segments:
            hasher.update(segment)
            if not first:
                written += destination.write(
                    cipher.encrypt(_nonce(object_nonce, counter, False), pending, header)
                )
                counter += 1
                if on_written:
                    on_written(written)
            pending, first = segment, False
        digest = hasher.digest()
    finally:
        hasher.close()
    destination.write(cipher.encrypt(_nonce(object_nonce, counter, True), pending, header + digest))
    return SealedStream(sha256=digest.hex(), size=size)


class _HashHere:
    """SHA-256 in the sealing thread (a small stream)."""

    def __init__(self) -> None:
        self._hasher = hashlib.sha256()

    def update(self, segment: bytes) -> None:
        self._hasher.update(segment)

    def digest(self) -> bytes:
        return self._hasher.digest()

    def close(self) -> None:
        pass


class _HashBehind:
    """SHA-256 in a thread of its own, a few segments behind the sealing thread (hashlib releases
    the GIL while it hashes, so it runs beside the encryption)."""

    def __init__(self) -> None:
        self._hasher = hashlib.sha256()
        self._segments: queue.Queue[bytes | None] = queue.Queue(_PREFETCH_DEPTH)
        self._thread = threading.Thread(target=self._hash, name="custody-hash", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        while (segment := self._segments.get()) is not None:
            self._hasher.update(segment)

    def update(self, segment: bytes) -> None:
        self._segments.put(segment)

    def digest(self) -> bytes:
        """The SHA-256 of every segment given, once the thread has hashed them all."""
        self.close()
        return self._hasher.digest()

    def close(self) -> None:
        """Stop the thread once it has hashed what it was given (idempotent)."""
        if self._thread.is_alive():
            self._segments.put(None)
            self._thread.join()


def sealed_size(plaintext_size: int) -> int:
    """Return the size of the object file that sealing ``plaintext_size`` bytes makes."""
    segments = max(1, -(-plaintext_size // SEGMENT_SIZE))
    return HEADER_SIZE + plaintext_size + segments * TAG_SIZE


def unseal(
    source: BinaryIO, master: MasterKey, sha256: str | Callable[[], str], prefetch: bool = True
) -> Iterator[bytes]:
    """Yield the plaintext of the object read from ``source``, authenticating every segment.

    ``sha256`` is the object's name, bound into its last segment; it may be a
    callable when the name is only known once ``source`` ends (reading back an
    object while it is being written). Raise
    ObjectDamaged naming the object on a bad header, a wrong key, a segment
    that fails authentication, or a truncated object. The caller must still
    hash the plaintext to check it against the name (that check is what
    catches a fault before encryption). ``prefetch`` reads the next segments in a thread while
    one is decrypted (worth it unless the object is small).
    """
    name = sha256 if isinstance(sha256, str) else "(being written)"
    header = _read_full(source, HEADER_SIZE, None)  # (a read may return fewer bytes than asked)
    cipher, object_nonce, segment_size = _open_header(header, master, name)
    segments = _read_segments(source, segment_size + TAG_SIZE)
    if prefetch:
        segments = _prefetch(segments)
    counter = 0
    pending: bytes | None = None
    for segment in segments:
        if pending is not None:
            yield _open_segment(cipher, object_nonce, counter, False, pending, header, name)
            counter += 1
        pending = segment
    if pending is None:
        raise ObjectDamaged(sha256=name, problem="it has no segments (truncated after the header)")
    name = sha256 if isinstance(sha256, str) else sha256()
    try:
        identity = bytes.fromhex(name)
    except ValueError:
        raise ObjectDamaged(sha256=name, problem="its name is not a SHA-256") from None
    yield _open_segment(cipher, object_nonce, counter, True, pending, header + identity, name)


def unseal_range(source: BinaryIO, master: MasterKey, sha256: str, start: int, end: int) -> Iterator[bytes]:
    """Yield the plaintext bytes ``start`` to ``end`` (inclusive; clipped to the object) of the
    object in ``source`` (a seekable file), decrypting and authenticating only the segments that
    hold them: seeking in a long recording costs one segment, not the recording.

    Each segment is authenticated with its counter and last-segment flag, so a segment moved,
    dropped or cut off fails as it does in ``unseal``; the object's name is checked with its last
    segment only (a range that stops short of it cannot be re-hashed whole: ``verify`` does
    that). Raise ObjectDamaged as ``unseal`` does.
    """
    header = _read_full(source, HEADER_SIZE, None)
    cipher, object_nonce, segment_size = _open_header(header, master, sha256)
    stored = os.fstat(source.fileno()).st_size - HEADER_SIZE
    sealed_segment = segment_size + TAG_SIZE
    segments = max(1, -(-stored // sealed_segment))
    plaintext = stored - segments * TAG_SIZE
    if plaintext < 0:
        raise ObjectDamaged(sha256=sha256, problem="it has no segments (truncated after the header)")
    end = min(end, plaintext - 1)
    for counter in range(start // segment_size, end // segment_size + 1 if start <= end else 0):
        last = counter == segments - 1
        source.seek(HEADER_SIZE + counter * sealed_segment)
        sealed = _read_full(source, sealed_segment, None)
        associated = header + bytes.fromhex(sha256) if last else header
        opened = _open_segment(cipher, object_nonce, counter, last, sealed, associated, sha256)
        offset = counter * segment_size
        yield opened[max(0, start - offset) : end - offset + 1]


def _open_header(header: bytes, master: MasterKey, name: str):
    """The cipher, object nonce and segment size of an object's header; raise ObjectDamaged."""
    if len(header) < HEADER_SIZE:
        raise ObjectDamaged(sha256=name, problem="the file is shorter than its header")
    magic, key_id, object_nonce, segment_size, wrap_nonce, wrapped = _HEADER.unpack(header)
    if magic != MAGIC:
        raise ObjectDamaged(sha256=name, problem="the file is not a custody object (bad magic)")
    if key_id != master.key_id.encode("ascii"):
        raise ObjectDamaged(
            sha256=name,
            problem=Said(
                "sealed with master key {key_id}, but the vault's key is {vault_key_id}",
                key_id=key_id.decode("ascii", "replace"),
                vault_key_id=master.key_id,
            ),
        )
    try:
        data_key = AESGCM(master.key).decrypt(wrap_nonce, wrapped, _wrap_context(key_id, object_nonce))
    except InvalidTag:
        raise ObjectDamaged(sha256=name, problem="its wrapped data key fails authentication") from None
    return AESGCM(data_key), object_nonce, segment_size


def _open_segment(cipher, object_nonce, counter, last, segment, associated, sha256) -> bytes:
    try:
        return cipher.decrypt(_nonce(object_nonce, counter, last), segment, associated)
    except InvalidTag:
        where = "last segment" if last else "segment"
        raise ObjectDamaged(
            sha256=sha256,
            problem=Said(
                "{where} {counter} fails authentication (altered, reordered, truncated or swapped bytes)",
                where=where,
                counter=counter,
            ),
        ) from None


def _read_segments(source: BinaryIO, size: int) -> Iterator[bytes]:
    """Whole segments of ``size`` bytes (the last may be shorter), however short the reads: a
    segment split by a short read (a network or FUSE filesystem) would fail authentication."""
    while segment := _read_full(source, size, None):
        yield segment


def _nonce(object_nonce: bytes, counter: int, last: bool) -> bytes:
    return object_nonce[:7] + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _wrap_context(key_id: bytes, object_nonce: bytes) -> bytes:
    return b"custody data key\0" + key_id + object_nonce


def _read_full(source: BinaryIO, size: int, on_progress: ProgressCallback | None) -> bytes:
    """Return the next ``size`` bytes of ``source`` (fewer only at its end), however short its reads.

    Sources may return short reads (pipes, FUSE); segments must be full-sized
    except the last so that readers can find the segment boundaries.
    """
    chunk = source.read(size)
    if not chunk:
        return b""
    if on_progress:
        on_progress(len(chunk))
    if len(chunk) == size:
        return chunk
    parts = [chunk]
    missing = size - len(chunk)
    while missing:
        more = source.read(missing)
        if not more:
            break
        if on_progress:
            on_progress(len(more))
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


_END = object()


def _prefetch(items: Iterator[bytes], depth: int = _PREFETCH_DEPTH) -> Iterator[bytes]:
    """Yield ``items`` while a background thread produces the next ones.

    Exceptions in the producer are re-raised in the consumer. When the consumer
    stops early, the producer is stopped and joined before this returns.
    """
    handoff: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def offer(entry) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_END, None))
        except BaseException as exc:
            offer((_END, exc))

    producer = threading.Thread(target=produce, name="custody-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item, error = handoff.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        producer.join()
