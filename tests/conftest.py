"""Fixtures that build real things: ffmpeg clips, vaults in tmp_path, the real CLI."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from custody.cli import cli
from custody.config import Settings
from custody.vault import Vault

pytest_plugins = ["tests.docking", "tests.s3"]

CLIP_SECONDS = 2

# The largest single test (an 8 GiB sparse file pulled into the vault, where
# sealed it takes 8 GiB) with room for the vault's staging and the others.
DISK_NEEDED = 10 << 30


def pytest_report_header(config) -> str:
    """Say how much disk the run has, so a "No space left" failure is told apart at once."""
    where = tempfile.gettempdir()  # pytest's tmp_path folders are made there
    free = shutil.disk_usage(where).free
    verdict = (
        "enough" if free >= DISK_NEEDED else f"TOO LITTLE: the largest test needs {DISK_NEEDED >> 30} GiB"
    )
    return f"disk free in {where}: {free / (1 << 30):.1f} GiB ({verdict})"


def make_clip(path: Path, seconds: int = CLIP_SECONDS, tone: int = 440, size: str = "320x240") -> Path:
    """Write a small real H.264/AAC MP4 with ffmpeg (a test pattern and a tone)."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=15:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency={tone}:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def clip_library(tmp_path_factory) -> Path:
    """Three generated clips and one 3.5 MiB file (several segments), made once per run."""
    root = tmp_path_factory.mktemp("clips")
    for number, tone in enumerate((440, 550, 660), start=1):
        make_clip(root / f"CLIP{number:04d}.MP4", tone=tone)
    (root / "LONG0001.MP4").write_bytes(os.urandom(3 * (1 << 20) + 512 * 1024))
    return root


@pytest.fixture
def footage(tmp_path, clip_library) -> Path:
    """A fresh copy of the clip library, as a recorder's DCIM folder the test may change."""
    target = tmp_path / "DCIM"
    shutil.copytree(clip_library, target)
    return target


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def settings(home) -> Settings:
    return Settings(home=home)


@pytest.fixture
def vault(settings):
    """A new vault, opened as the writer, for the clerk 'clerk1'."""
    Vault.init(settings, "clerk1").close()
    with Vault(settings, "clerk1", writer=True) as opened:
        yield opened


@pytest.fixture
def custody(home):
    """Run the real `custody` command in-process against the test vault.

    ``custody("ls", "--json")`` returns click's Result; ``expect`` is the exit code required.
    """
    runner = CliRunner()

    def run(*args: str, expect: int = 0):
        result = runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
        assert result.exit_code == expect, (
            f"custody {' '.join(args)} exited {result.exit_code}, wanted {expect}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    return run


def custody_process(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    """Start `custody` as a separate process (for kills and other users)."""
    return subprocess.Popen(
        [sys.executable, "-m", "custody", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def ogg_with_empty_packets(path: Path, seconds: int = 3) -> int:
    """Write a real Ogg Theora/Vorbis file whose Vorbis stream holds zero-length packets, as valid
    files from some encoders do (the reference decoder reads them whole); return how many.

    ffmpeg writes the file; then, in each Vorbis audio page, an empty packet (a lacing value of 0)
    follows the page's first whole packet, and the page's CRC is made again.
    """
    clean = path.with_suffix(".clean.ogv")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=15:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
         "-c:v", "libtheora", "-q:v", "5", "-c:a", "libvorbis", "-q:a", "2", str(clean)],
        check=True,
    )  # fmt: skip
    source, out, position, vorbis_serial, added = clean.read_bytes(), bytearray(), 0, None, 0
    while position < len(source):
        assert source[position : position + 4] == b"OggS"
        segments = list(source[position + 27 : position + 27 + source[position + 26]])
        header = bytearray(source[position : position + 27])
        body_start = position + 27 + len(segments)
        body = source[body_start : body_start + sum(segments)]
        serial, sequence = struct.unpack_from("<II", header, 14)
        if vorbis_serial is None and body[1:7] == b"vorbis":
            vorbis_serial = serial
        if (
            serial == vorbis_serial
            and sequence >= 3
            and len(segments) < 255
            and any(v < 255 for v in segments)
        ):
            first_end = next(k for k, v in enumerate(segments) if v < 255)
            segments.insert(first_end + 1, 0)
            header[26] = len(segments)
            added += 1
        struct.pack_into("<I", header, 22, 0)
        page = bytes(header) + bytes(segments) + body
        out += page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]
        position = body_start + len(body)
    path.write_bytes(out)
    clean.unlink()
    return added


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def not_media(size: int) -> bytes:
    """Random bytes no demuxer takes for media. Bare os.urandom was read by ffprobe as raw H.263 in
    about 1 of 100 tries (two zero bytes are half a picture start code), or as lyrics (lrc) once a
    "[" starts a line; a test expecting "unreadable" then failed now and then."""
    return os.urandom(size).replace(b"\0", b"\1").replace(b"[", b"\1")
