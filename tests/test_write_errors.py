"""Ordinary OS errors writing a file (a missing folder, a read-only or full disk, no permission) are
one line naming the file and what to do, a non-zero exit, and nothing half-written: never a traceback."""

from __future__ import annotations

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
