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


@pytest.mark.parametrize("grouped", [False, True], ids=["alone", "grouped"])
@pytest.mark.parametrize("size", [20_000, 3 << 20, 2 * READBACK_BLOCK + 12345])
def test_every_staged_object_is_read_back_from_the_device(tmp_path, size, grouped):
    """Small files are read back in the sealing thread once whole, large ones by a thread behind
    the writer; staged for a group (sync=False), a small one is read back when the group is
    settled, after one sync: either way the sealed bytes come back from the disk, not from memory."""
    ObjectStore.create_layout(tmp_path / "objects")
    store = ObjectStore(tmp_path / "objects", KEY, direct_io=True)
    data = os.urandom(size)
    before = _device_reads()
    staged = store.stage(io.BytesIO(data), expected_size=size, sync=not grouped)
    if grouped:
        (staged,) = store.settle([staged])
    read = _device_reads() - before
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.synced and staged.read_back
    assert read >= sealed_size(size) - 4096, f"read back {read} of {sealed_size(size)} bytes from the device"


def test_a_group_settles_around_an_object_damaged_on_disk(store):
    """One object of a group whose bytes on disk differ from what was sealed is refused alone:
    its staging file is removed, the others are read back and can be stored."""
    datas = [os.urandom(n) for n in (10_000, 20_000, 30_000, 40_000)]
    staged = [store.stage(io.BytesIO(d), expected_size=len(d), sync=False) for d in datas]
    with open(staged[2].path, "r+b") as f:  # a bit flipped between the write and the read-back
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 1]))
    settled = store.settle(staged)
    assert [type(s).__name__ for s in settled] == [
        "StagedObject",
        "StagedObject",
        "ObjectDamaged",
        "StagedObject",
    ]
    assert "authentication" in settled[2].message
    assert not staged[2].path.exists()
    store.store_staged_group([settled[0], settled[1], settled[3]])
    for n in (0, 1, 3):
        assert b"".join(store.read(staged[n].sha256, evict_cache=True)) == datas[n]
    assert not store.exists(staged[2].sha256)
    assert store.staging_files() == []
