"""Staging objects: the read-back that follows the writer, on disks with and without O_DIRECT."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from custody.vault.keys import MasterKey
from custody.vault.objects import READBACK_BLOCK, ObjectStore
from custody.vault.sealing import sealed_size

KEY = MasterKey(key=bytes(range(32)), source="test")


@pytest.fixture(params=[True, False], ids=["direct-io", "page-cache"])
def store(request, tmp_path):
    """An object store writing and reading back with O_DIRECT, and one without (vault.direct_io)."""
    ObjectStore.create_layout(tmp_path / "objects")
    return ObjectStore(tmp_path / "objects", KEY, direct_io=request.param)


@pytest.mark.parametrize("size", [0, 5, READBACK_BLOCK - 100, READBACK_BLOCK, 2 * READBACK_BLOCK + 12345])
def test_staged_object_reads_back_whole(store, size):
    data = os.urandom(size)
    staged = store.stage(io.BytesIO(data), expected_size=size)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.path.stat().st_size == sealed_size(size)
    store.store_staged(staged)
    assert b"".join(store.read(staged.sha256, evict_cache=True)) == data


def test_source_shorter_than_announced_leaves_no_preallocated_tail(store):
    data = os.urandom(READBACK_BLOCK + 10)
    staged = store.stage(io.BytesIO(data), expected_size=3 * READBACK_BLOCK)
    assert staged.path.stat().st_size == sealed_size(len(data))
    assert store.check(store.store_staged(staged).name) == len(data)


class FailingSource(io.RawIOBase):
    """A source that gives good bytes, then an I/O error (a recorder pulled out mid-copy)."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError(5, "Input/output error")
        count = min(len(buffer), self.left)
        buffer[:count] = b"\x5a" * count
        self.left -= count
        return count


def test_read_error_mid_stream_removes_the_staging_file_and_stops_the_read_back(store):
    threads_before = threading.active_count()
    with pytest.raises(OSError, match="Input/output error"):
        store.stage(FailingSource(2 * READBACK_BLOCK + 7), expected_size=4 * READBACK_BLOCK)
    assert store.staging_files() == []
    assert threading.active_count() == threads_before


def _device_reads() -> int:
    """Bytes this process has read from storage devices (not the page cache): /proc/self/io."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no read_bytes in /proc/self/io")


@pytest.mark.parametrize("size", [20_000, 3 << 20, 2 * READBACK_BLOCK + 12345])
def test_every_staged_object_is_read_back_from_the_device(tmp_path, size):
    """Small files are read back in the sealing thread once whole, large ones by a thread behind
    the writer: either way the sealed bytes come back from the disk, not from memory."""
    ObjectStore.create_layout(tmp_path / "objects")
    store = ObjectStore(tmp_path / "objects", KEY, direct_io=True)
    data = os.urandom(size)
    before = _device_reads()
    staged = store.stage(io.BytesIO(data), expected_size=size)
    read = _device_reads() - before
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert read >= sealed_size(size) - 4096, f"read back {read} of {sealed_size(size)} bytes from the device"
