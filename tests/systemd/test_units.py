"""The shipped systemd units are valid and hardened as documented."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def installed_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit as installed here: ExecStart pointing at this environment's custody (verify checks it exists)."""
    custody = Path(sys.executable).parent / "custody"
    assert custody.exists(), "the custody entry point is not installed in this environment"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/custody/bin/custody", str(custody)))
    return copy


def verify_together(service: Path, companion: str, tmp_path: Path) -> None:
    """systemd-analyze verify on a service and its companion unit (a timer or socket) side by side."""
    unit = tmp_path / companion
    unit.write_text((UNITS / companion).read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", str(service), str(unit)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def unit_parser(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keep key case
    parser.read(UNITS / name)
    return parser


def test_systemd_analyze_verify_passes_on_the_ingest_daemon_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: make test installs the systemd package")
    unit = installed_copy(UNITS / "custody-ingestd.service", tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_ingest_daemon_unit_is_type_notify_with_watchdog_and_hardening():
    parser = unit_parser("custody-ingestd.service")
    service = parser["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["StateDirectory"] == "custody"
    assert service["Environment"] == "CUSTODY_HOME=/var/lib/custody"
    for option in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelModules",
        "RestrictSUIDSGID",
    ):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["SystemCallArchitectures"] == "native"
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
    assert set(service["CapabilityBoundingSet"].split()) == {"CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"}
    assert service["DevicePolicy"] == "closed"


def test_retention_timer_and_service_verify_and_never_delete(tmp_path):
    service = installed_copy(UNITS / "custody-retention.service", tmp_path)
    verify_together(service, "custody-retention.timer", tmp_path)
    parser = unit_parser("custody-retention.service")
    command = parser["Service"]["ExecStart"].split()
    assert command[1:4] == ["retention", "plan", "--report-dir"]  # evaluation and a report, nothing else
    assert parser["Service"]["Type"] == "oneshot" and parser["Service"]["PrivateNetwork"] == "yes"
    parser.read(UNITS / "custody-retention.timer")
    assert parser["Timer"]["OnCalendar"] == "daily" and parser["Timer"]["Persistent"] == "true"


def test_api_socket_unit_verifies_and_opens_the_socket_to_its_group_only(tmp_path):
    service = installed_copy(UNITS / "custody-ingestd.service", tmp_path)
    verify_together(service, "custody-api.socket", tmp_path)
    parser = unit_parser("custody-api.socket")
    assert parser["Socket"]["SocketMode"] == "0660"
    assert parser["Socket"]["ListenStream"] == "/run/custody/api.sock"
    assert parser["Socket"]["Service"] == "custody-ingestd.service"


@pytest.mark.slow  # (make test-quick leaves it out)
def test_install_on_a_server_as_the_readme_says_gives_units_that_systemd_verifies(tmp_path):
    """The units hard-coded a path nothing installed (verify failed as shipped): scripts/install-server
    follows README "Install on a server" into a clean tree, and systemd-analyze verify passes on it."""
    import os
    import stat

    script = UNITS.parent / "scripts" / "install-server"
    root = tmp_path / "server"
    result = subprocess.run([str(script), "--root", str(root)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "systemd-analyze verify" in result.stdout and "nothing started" in result.stdout
    installed = root / "etc/systemd/system"
    assert sorted(p.name for p in installed.iterdir()) == sorted(p.name for p in UNITS.iterdir())
    for unit in installed.iterdir():
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                assert line.split("=", 1)[1].split()[0] == "/opt/custody/bin/custody", unit.name
    version = subprocess.run(
        [str(root / "opt/custody/bin/custody"), "--help"], capture_output=True, text=True
    )
    assert version.returncode == 0 and "Usage:" in version.stdout
    assert os.readlink(root / "usr/local/bin/custody") == "/opt/custody/bin/custody"
    assert any(line.startswith("custody:") for line in (root / "etc/group").read_text().splitlines())
    assert stat.S_IMODE((root / "run/custody").stat().st_mode) == 0o711
    assert stat.S_IMODE((root / "var/lib/custody").stat().st_mode) == 0o700
    assert not (UNITS.parent / "build").exists()  # pip's in-tree build is not left in the checkout

    # The same check catches a broken unit: the script stops with systemd's complaint.
    broken = tmp_path / "broken"
    import shutil as _shutil

    _shutil.copytree(
        UNITS.parent, broken, ignore=_shutil.ignore_patterns(".venv", ".git", "*.egg-info", "tests")
    )
    service = broken / "systemd/custody-ingestd.service"
    service.write_text(service.read_text().replace("Type=notify", "Type=notifyy"))
    failed = subprocess.run(
        [str(broken / "scripts/install-server"), "--root", str(tmp_path / "server2")],
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0 and "notifyy" in failed.stderr


def test_the_readme_stands_alone_and_says_why_the_unit_allows_the_network():
    """The README pointed at ../shared/DESIGN.md, outside the repository; and it named AF_UNIX and
    AF_NETLINK while the unit also allows AF_INET/AF_INET6 (for replicas)."""
    readme = (UNITS.parent / "README.md").read_text(encoding="utf-8")
    import re

    outside = re.findall(r"(?:^|[\s(`\[])\.\./[\w.-]+", readme)
    assert outside == [], f"the README points outside the repository: {outside}"
    assert "AF_INET/AF_INET6 (only for the off-site replicas" in readme


def test_the_web_platform_unit_verifies_and_runs_unprivileged_away_from_the_vault(tmp_path):
    unit = installed_copy(UNITS / "custody-web.service", tmp_path)
    daemon = installed_copy(UNITS / "custody-ingestd.service", tmp_path)
    socket_unit = tmp_path / "custody-api.socket"
    socket_unit.write_text((UNITS / "custody-api.socket").read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit), str(daemon), str(socket_unit)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    service = unit_parser("custody-web.service")["Service"]
    assert service["User"] == "custody-web" and service["CapabilityBoundingSet"] == ""
    assert service["InaccessiblePaths"] == "-/var/lib/custody"  # the vault: not even by mistake
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateDevices", "PrivateTmp"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict" and service["StateDirectory"] == "custody-web"
    assert "--secret-file /var/lib/custody-web/session.key" in service["ExecStart"]
