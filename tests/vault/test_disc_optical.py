"""ISO images through xorriso and back through pycdlib, including a file over 4 GiB."""

from __future__ import annotations

import hashlib

import pytest

from custody.vault.disc import optical


def test_volume_ids_are_iso_characters_from_the_case_or_the_export():
    assert optical.volume_id("2026-0042", "EXP-000001") == "2026_0042"
    assert optical.volume_id("京公(2026)42号", "EXP-000001") == "2026_42"
    assert optical.volume_id("案件", "EXP-000001") == "EXP_000001"
    assert len(optical.volume_id("x" * 50, "EXP-000001")) == 32


@pytest.mark.slow
def test_a_file_over_4_gib_goes_onto_the_image_and_reads_back_whole(tmp_path):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    big = root / "data" / "LONG0001.MP4"
    size = 4 * 1024**3 + 1024 * 1024  # past the 4 GiB - 2 KiB a single ISO 9660 extent holds
    with open(big, "wb") as sink:  # sparse, with bytes at both ends so a cut-off read shows
        sink.write(b"head")
        sink.seek(size - 4)
        sink.write(b"tail")
    expected = hashlib.sha256()
    with open(big, "rb") as source:
        while chunk := source.read(1 << 22):
            expected.update(chunk)
    image = tmp_path / "big.iso"
    optical.make_iso("xorriso", root, image, "BIG")
    big.unlink()  # room on the test disk: only the image remains
    with optical.IsoFiles(str(image)) as files:
        assert files.names() == ["data/LONG0001.MP4"]
        assert files.hash_file("data/LONG0001.MP4") == (expected.hexdigest(), size)
        assert files.volume_id == "BIG"
