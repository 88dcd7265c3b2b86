"""The sealed-object format: round trips, and every kind of damage caught."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from custody.vault.keys import MasterKey
from custody.vault.sealing import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    ObjectDamaged,
    seal,
    unseal,
    unseal_range,
)

KEY = MasterKey(key=bytes(range(32)), source="test")
OTHER_KEY = MasterKey(key=bytes(32), source="test")


def sealed(data: bytes, key: MasterKey = KEY) -> tuple[bytes, str]:
    out = io.BytesIO()
    result = seal(io.BytesIO(data), out, key, expected_size=len(data))
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    return out.getvalue(), result.sha256


def opened(blob: bytes, sha256: str, key: MasterKey = KEY) -> bytes:
    return b"".join(unseal(io.BytesIO(blob), key, sha256))


@pytest.mark.parametrize(
    "size",
    [0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 5 * SEGMENT_SIZE + 17, 6 * SEGMENT_SIZE],
)
def test_round_trip_gives_back_identical_bytes(size):
    data = os.urandom(size)
    blob, sha256 = sealed(data)
    assert opened(blob, sha256) == data


def test_short_reads_from_the_source_still_make_full_segments():
    class Trickle(io.RawIOBase):
        def __init__(self, data):
            self.data = memoryview(data)

        def readable(self):
            return True

        def read(self, n=-1):
            step = 1000 if n < 0 else min(n, 1000)
            chunk, self.data = self.data[:step], self.data[step:]
            return bytes(chunk)

    data = os.urandom(2 * SEGMENT_SIZE + 5)
    out = io.BytesIO()
    result = seal(Trickle(data), out, KEY)
    blob = out.getvalue()
    assert len(blob) == HEADER_SIZE + len(data) + 3 * TAG_SIZE
    assert opened(blob, result.sha256) == data


def test_sealed_object_holds_no_plaintext_window():
    data = os.urandom(3 * SEGMENT_SIZE)
    blob, _sha = sealed(data)
    for offset in range(0, len(data) - 64, 65_521):
        assert data[offset : offset + 64] not in blob


def test_flipped_bit_is_an_error_naming_the_segment():
    data = os.urandom(3 * SEGMENT_SIZE)
    blob, sha256 = sealed(data)
    damaged = bytearray(blob)
    damaged[HEADER_SIZE + SEGMENT_SIZE + TAG_SIZE + 100] ^= 0x01
    with pytest.raises(ObjectDamaged, match=r"segment 1 fails authentication") as caught:
        opened(bytes(damaged), sha256)
    assert sha256 in caught.value.message


@pytest.mark.parametrize("cut", ["segment-boundary", "mid-segment", "header-only", "half-header"])
def test_truncated_object_is_an_error(cut):
    data = os.urandom(3 * SEGMENT_SIZE + 10)
    blob, sha256 = sealed(data)
    length = {
        "segment-boundary": HEADER_SIZE + 2 * (SEGMENT_SIZE + TAG_SIZE),
        "mid-segment": HEADER_SIZE + SEGMENT_SIZE + 500,
        "header-only": HEADER_SIZE,
        "half-header": HEADER_SIZE // 2,
    }[cut]
    with pytest.raises(ObjectDamaged):
        opened(blob[:length], sha256)


def test_swapped_segments_are_an_error():
    data = os.urandom(3 * SEGMENT_SIZE)
    blob, sha256 = sealed(data)
    seg = SEGMENT_SIZE + TAG_SIZE
    first = blob[HEADER_SIZE : HEADER_SIZE + seg]
    second = blob[HEADER_SIZE + seg : HEADER_SIZE + 2 * seg]
    swapped = blob[:HEADER_SIZE] + second + first + blob[HEADER_SIZE + 2 * seg :]
    with pytest.raises(ObjectDamaged, match="segment 0 fails"):
        opened(swapped, sha256)


def test_object_under_another_name_fails_on_its_last_segment():
    blob, _sha = sealed(b"footage A")
    other_name = hashlib.sha256(b"footage B").hexdigest()
    with pytest.raises(ObjectDamaged, match="last segment 0 fails"):
        opened(blob, other_name)


def test_object_sealed_with_another_master_key_is_refused():
    blob, sha256 = sealed(b"footage", key=OTHER_KEY)
    with pytest.raises(ObjectDamaged, match=f"sealed with master key {OTHER_KEY.key_id}"):
        opened(blob, sha256)


def test_each_object_gets_its_own_data_key():
    data = b"same footage" * 1000
    first, _ = sealed(data)
    second, _ = sealed(data)
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]


class _ShortReads(io.RawIOBase):
    """A file whose every read returns at most 1,000 bytes, as FUSE and network filesystems may."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 1000 if size < 0 else min(size, 1000)
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk


def test_an_object_read_in_short_reads_unseals_whole():
    """Sealing and unsealing must not take a short read for the end of a segment (the class of
    a pull that took a FUSE file's short read for its whole content)."""
    data = os.urandom(3 * SEGMENT_SIZE + 12345)
    sealed = io.BytesIO()
    result = seal(_ShortReads(data), sealed, KEY, len(data))
    assert result.size == len(data)
    assert b"".join(unseal(_ShortReads(sealed.getvalue()), KEY, result.sha256)) == data


@pytest.mark.parametrize(
    "size", [0, 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE + 17, 4 * SEGMENT_SIZE]
)
def test_a_range_is_read_by_decrypting_only_its_segments(tmp_path, size):
    data = os.urandom(size)
    blob, sha256 = sealed(data)
    path = tmp_path / "object"
    path.write_bytes(blob)
    edges = sorted(
        {0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, size // 2, max(0, size - 1), size}
    )
    for first in edges:
        for last in edges:
            if first > last:
                continue
            with open(path, "rb") as source:
                got = b"".join(unseal_range(source, KEY, sha256, first, last))
            assert got == data[first : last + 1], (first, last)


def test_a_range_from_a_tampered_or_cut_object_is_an_error(tmp_path):
    data = os.urandom(3 * SEGMENT_SIZE + 5)
    blob, sha256 = sealed(data)
    path = tmp_path / "object"
    flipped = bytearray(blob)
    flipped[HEADER_SIZE + SEGMENT_SIZE + TAG_SIZE + 10] ^= 1  # in segment 1
    path.write_bytes(bytes(flipped))
    with open(path, "rb") as source:  # a range in segment 0 alone is still whole and sound
        assert b"".join(unseal_range(source, KEY, sha256, 0, 99)) == data[:100]
    with open(path, "rb") as source, pytest.raises(ObjectDamaged, match="segment 1 fails authentication"):
        b"".join(unseal_range(source, KEY, sha256, SEGMENT_SIZE, SEGMENT_SIZE + 10))
    # Cut after two whole segments: the new "last" one was not sealed as last.
    path.write_bytes(blob[: HEADER_SIZE + 2 * (SEGMENT_SIZE + TAG_SIZE)])
    with open(path, "rb") as source, pytest.raises(ObjectDamaged, match="segment 1 fails authentication"):
        b"".join(unseal_range(source, KEY, sha256, SEGMENT_SIZE, SEGMENT_SIZE + 10))
