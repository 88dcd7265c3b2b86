"""Config: acceptance 8 (errors name the key or file) and home precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.config import default_config_text, load_settings, resolve_home
from custody.errors import ConfigError


@pytest.mark.parametrize(
    "text,named",
    [
        ("[ingest]\nskip_nmes = ['.*']\n", "ingest.skip_nmes: unknown key"),
        (
            "[catalog]\nbusy_timeout_seconds = 'soon'\n",
            "catalog.busy_timeout_seconds: must be a number, got 'soon'",
        ),
        ("[ingest]\nskip_names = '.*'\n", "ingest.skip_names: must be a list of strings, got '.*'"),
        ("[station]\nname = 7\n", "station.name: must be a string, got 7"),
        ("[retention]\nyears = 2\n", "retention.years: unknown key"),
        ("[vaults]\nyears = 2\n", "vaults: unknown section"),
        ("station = 'x'\n", "station: must be a table"),
        ("[station\nname = 'x'\n", "(syntax)"),
        (
            "[continuity]\ngap_tolerance_seconds = 600\n",
            "continuity.gap_tolerance_seconds: must be at least 0 and less than continuity.run_break_seconds",
        ),
        ("[media]\nplayable_crf = 'good'\n", "media.playable_crf: must be a whole number, got 'good'"),
        ("[targets.offsite]\nregion = 'eu-west-1'\n", "targets.offsite.bucket: is required"),
        (
            "[retention.categories]\nroutine = '1y'\n",
            "retention.categories.routine: 1y is below the 2-year floor: footage is kept at least two years",
        ),
        (
            "[retention.categories]\npenalty_evidence = '10y'\n",
            "retention.categories.penalty_evidence: penalty_evidence is kept permanently by regulation",
        ),
        (
            "[targets.offsite]\nbucket = 'b'\nverify = 'trust'\n",
            "targets.offsite.verify: must be one of checksum, download",
        ),
        (
            "[targets.offsite]\nbucket = 'b'\npart_size_mb = 1\n",
            "targets.offsite.part_size_mb: must be at least 5",
        ),
        ("[targets.offsite]\nbucket = 'b'\nsecret = 'x'\n", "targets.offsite.secret: unknown key"),
        (
            "[access.roles]\nsuperuser = ['li']\n",
            "access.roles.superuser: no such role (known: officer, clerk,",
        ),
        ("[access.roles]\nclerk = 'li'\n", 'access.roles.clerk: must be a list of login names and "@group"s'),
        (
            "[access.roles]\nclerk = ['@']\n",
            'access.roles.clerk: must be a list of login names and "@group"s',
        ),
        (
            "[access]\nconfidentiality_levels = ['normal', 'secret']\n",
            'access.confidentiality_levels: must start with "normal", include "restricted"',
        ),
        ("[access]\nrequest_timeout_seconds = 0\n", "access.request_timeout_seconds: must be more than 0"),
        ("[access]\nsocket_mode = '0666'\n", "access.socket_mode: unknown key"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(custody, home, text, named):
    custody("init")
    (home / "custody.toml").write_text(text)
    result = custody("ls", expect=3)
    assert named in result.stderr
    assert str(home / "custody.toml") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_missing_key_file_is_one_line_naming_the_file(custody, home):
    custody("init")
    (home / "keys" / "master.key").unlink()
    result = custody("ls", expect=4)
    assert result.stderr.strip() == (
        f"custody: key file {home / 'keys' / 'master.key'} is missing: "
        "restore it from the key backup (without it the vault cannot be read)"
    )


def test_key_file_readable_by_others_is_refused(custody, home):
    custody("init")
    (home / "keys" / "signing.key").chmod(0o644)
    result = custody("ls", expect=4)
    assert "mode 0644" in result.stderr and "chmod 600" in result.stderr


def test_no_vault_says_how_to_make_one(custody, home):
    result = custody("ls", expect=4)
    # (--home goes before the command: 'custody init --home X', the hint before, is refused by click)
    assert f"no vault at {home}" in result.stderr and f"custody --home {home} init" in result.stderr


def test_default_config_file_loads_to_the_defaults(tmp_path):
    (tmp_path / "custody.toml").write_text(default_config_text())
    loaded = load_settings(tmp_path)
    assert loaded.ingest.skip_names[0] == ".*"
    assert loaded.catalog.busy_timeout_seconds == 30.0


def test_values_from_the_file_override_defaults(tmp_path):
    (tmp_path / "custody.toml").write_text(
        '[station]\nname = "dock-7"\n[catalog]\nbusy_timeout_seconds = 5\n'
    )
    loaded = load_settings(tmp_path)
    assert loaded.station.name == "dock-7"
    assert loaded.catalog.busy_timeout_seconds == 5.0


def test_home_precedence_is_option_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "env"))
    assert resolve_home(str(tmp_path / "opt")) == tmp_path / "opt"
    assert resolve_home(None) == tmp_path / "env"
    monkeypatch.delenv("CUSTODY_HOME")
    expected = (
        Path("/var/lib/custody") if __import__("os").geteuid() == 0 else Path.home() / ".local/share/custody"
    )
    assert resolve_home(None) == expected


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ('clock_timezone = "Mars/Olympus"', "profiles.acme.clock_timezone", "unknown time zone"),
        ('filename_pattern = "(unclosed"', "profiles.acme.filename_pattern", "not a regular expression"),
        ('filename_pattern = "^(?P<date>\\\\d+)"', "profiles.acme.filename_pattern", "(?P<start>"),
        ('wipe = "after_replica"', "profiles.acme.wipe", "needs at least one [targets.NAME]"),
        ('wipe = "always"', "profiles.acme.wipe", "never, after_vault"),
        ("colour = 1", "profiles.acme.colour", "unknown key"),
        ("extensions = 3", "profiles.acme.extensions", "list of strings"),
    ],
)
def test_bad_profile_is_refused_naming_the_key(tmp_path, table, key, problem):
    (tmp_path / "custody.toml").write_text(f"[profiles.acme]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert key in caught.value.message and problem in caught.value.message


def test_profile_in_the_file_adds_to_the_shipped_ones(tmp_path):
    (tmp_path / "custody.toml").write_text(
        '[profiles.acme]\nusb_vendor_id = "2b3c"\nclock_timezone = "Asia/Shanghai"\n'
    )
    settings = load_settings(tmp_path)
    assert {"dcim", "timestamped", "bwc-badge", "acme"} <= set(settings.profiles)
    assert settings.profiles["acme"].usb_vendor_id == "2b3c"


def test_watch_profile_must_name_a_profile(tmp_path):
    (tmp_path / "custody.toml").write_text('[dock]\nwatch_profile = "nope"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert "dock.watch_profile" in caught.value.message and "known: bwc-badge, dcim" in caught.value.message


def test_negative_or_zero_durations_and_counts_are_refused_naming_the_key(tmp_path):
    from custody.config import ConfigError, settings_from_dict

    for section, key, value, problem in (
        ("dock", "window_hours", -5, "must be more than 0"),
        ("dock", "window_hours", 0, "must be more than 0"),
        ("media", "max_attempts", 0, "must be more than 0"),
        ("media", "workers", -1, "must be 0 or more"),
        ("continuity", "run_break_seconds", -1.5, "must be more than 0"),
        ("media", "playable_crf", 60, "must be at most 51"),
    ):
        with pytest.raises(ConfigError) as refused:
            settings_from_dict({section: {key: value}}, home=tmp_path)
        assert (
            f"{section}.{key}: {problem}, got {float(value) if isinstance(value, float) else value!r}"
            in str(refused.value)
        )
    with pytest.raises(ConfigError, match=r"targets\.offsite\.concurrency: must be more than 0"):
        settings_from_dict({"targets": {"offsite": {"bucket": "b", "concurrency": 0}}}, home=tmp_path)
    assert settings_from_dict({"media": {"workers": 0}}, home=tmp_path).media.workers == 0


def test_the_generated_config_takes_the_readmes_advice_appended(tmp_path):
    """The README says to append `[dock] ingest_unknown_devices = true`; the generated file held a
    live empty [dock] table, so that was 'Cannot declare ('dock',) twice'."""
    from custody.config import default_config_text, load_settings

    (tmp_path / "custody.toml").write_text(
        default_config_text() + "\n[dock]\ningest_unknown_devices = true\n"
    )
    assert load_settings(tmp_path).dock.ingest_unknown_devices is True
    assert not [line for line in default_config_text().splitlines() if line.startswith("[")]


def test_init_names_the_agency_in_a_live_station_table_and_appended_tables_still_load(
    tmp_path, custody, home
):
    custody("init", "--organisation", '某某县公安局 "交警" 大队')
    text = (home / "custody.toml").read_text(encoding="utf-8")
    assert [line for line in text.splitlines() if line.startswith("[")] == ["[station]"]
    (home / "custody.toml").write_text(text + "\n[dock]\ningest_unknown_devices = true\n", encoding="utf-8")
    settings = load_settings(home)
    assert settings.station.organisation == '某某县公安局 "交警" 大队'
    assert settings.dock.ingest_unknown_devices is True
    refused = custody("--home", str(tmp_path / "other"), "init", "--organisation", "two\nlines", expect=2)
    assert "--organisation must be one line" in refused.stderr
    later = custody("--home", str(tmp_path / "third"), "init")
    assert "Set [station] organisation in custody.toml" in later.stdout
