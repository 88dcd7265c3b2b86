"""Ordinary OS errors writing a file (a missing folder, a read-only or full disk, no permission) are
one line naming the file and what to do, a non-zero exit, and nothing half-written: never a traceback."""

from __future__ import annotations

import contextlib

from click.testing import CliRunner

from custody.cli import cli
from tests.vault.test_disc_export import small_filesystem


def run(home, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_every_command_that_writes_a_file_says_why_it_cannot(tmp_path, home, custody, footage):
    custody("init", "--organisation", "Test County Public Security Bureau")
    custody("ingest", str(footage / "LONG0001.MP4"))
    custody(
        "tag", "EV-000001", "--case", "2026-0001", "--party", "Li Si", "--officer", "X1", "--unregistered"
    )
    writers = {
        "extract": lambda out: ("extract", "EV-000001", "--out", str(out / "x.mp4")),
        "export disc": lambda out: (
            "export", "disc", "--case", "2026-0001", "--maker", "M", "--extractor", "E",
            "--no-playable", "--iso", str(out / "x.iso"),
        ),
        "retention plan": lambda out: ("retention", "plan", "--report-dir", str(out / "deeper" / "reports")),
    }  # fmt: skip
    with (
        small_filesystem(tmp_path / "ro", 1 << 20, read_only=True) as read_only,
        small_filesystem(tmp_path / "full", 64 << 10) as full,
    ):
        cases = {
            "missing": (tmp_path / "no-such-folder", ("no such folder", "does not exist")),
            "read-only": (read_only, ("read-only", "Read-only", "not writable")),
            "full": (full, ("no space", "No space", "not enough room")),
        }
        for name, command in writers.items():
            for case, (folder, reasons) in cases.items():
                if name == "retention plan" and case != "read-only":
                    continue  # (it makes its folder, as the daily timer needs; a plan fits in 64 KB)
                result = run(home, *command(folder))
                assert result.exit_code not in (0, 1) and isinstance(result.exception, SystemExit), (
                    name, case, result.output,
                )  # fmt: skip
                assert "Traceback" not in result.output
                [line] = result.stderr.strip().splitlines()
                assert line.startswith("custody: ") and any(r in line for r in reasons), (name, case, line)
            assert not list(full.iterdir()), f"{name} left something half-written"


def test_a_writer_killed_part_way_leaves_nothing_behind(tmp_path, home, custody):
    """SIGKILL of `custody extract` while it writes leaves no file and no hidden partial one in the
    person's folder: the file has no name until it is whole (O_TMPFILE). Found by the soak: a
    killed extract left `.NAME.custody-partial-PID` behind, which nobody would ever clean up."""
    import os
    import signal
    import subprocess
    import sys
    import time

    custody("init", "--organisation", "Test County Public Security Bureau")
    big = tmp_path / "BIG0001.MP4"
    big.write_bytes(os.urandom(64 << 20))
    custody("ingest", str(big))
    out = tmp_path / "clerk"
    out.mkdir()
    extract = subprocess.Popen(
        [sys.executable, "-m", "custody", "--home", str(home), "extract", "EV-000001", "--out", str(out / "x.mp4")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    writing = False
    while extract.poll() is None and not writing:
        with contextlib.suppress(OSError):  # (a descriptor closed while it is looked at)
            writing = any(
                os.readlink(f"/proc/{extract.pid}/fd/{fd}").startswith(f"{out}/")
                for fd in os.listdir(f"/proc/{extract.pid}/fd")
            )
        time.sleep(0.001)
    assert writing, "the extract ended before it was seen writing: make the item larger"
    extract.send_signal(signal.SIGKILL)
    assert extract.wait() == -signal.SIGKILL
    assert list(out.iterdir()) == []


def test_a_new_file_on_a_usb_stick_without_unnamed_files_is_whole_or_absent(tmp_path):
    """exFAT through FUSE (a clerk's USB stick) offers no O_TMPFILE: a hidden partial file is
    used there and removed on failure; the file is given its name only when whole."""
    import pytest

    from custody.vault.new_files import OutputExists, new_file
    from tests.docking import host

    image, stick = tmp_path / "stick.img", tmp_path / "stick"
    stick.mkdir()
    host("truncate", "-s", "64M", image)
    host("mkfs.exfat", "-L", "STICK", image)
    device = host("losetup", "--find", "--show", image).strip()
    try:
        host("mount.exfat-fuse", device, stick)
        try:
            with new_file(stick / "whole.bin") as sink:
                sink.write(b"all of it")
            with pytest.raises(RuntimeError), new_file(stick / "broken.bin") as sink:
                sink.write(b"part of it")
                raise RuntimeError("the stream broke")
            with pytest.raises(OutputExists), new_file(stick / "whole.bin") as sink:
                sink.write(b"again")
            assert sorted(p.name for p in stick.iterdir()) == ["whole.bin"]
            assert (stick / "whole.bin").read_bytes() == b"all of it"
        finally:
            host("umount", stick)
    finally:
        host("losetup", "-d", device)
