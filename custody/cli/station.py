"""The docking station: officers, recorders, the daemon, status, media work."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import click

from custody import operations
from custody.cli.base import Session, _configure_logging, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _say, _say_error, _size, console, show_listing, wide_option
from custody.errors import Said, UsageError
from custody.i18n import N_, _
from custody.ingestd import api
from custody.operations import NoRequest, station
from custody.vault import Vault
from custody.vault.items import format_item_id, shown_text
from custody.vault.objects import limit_malloc_arenas
from custody.vault.timestamps import local_display, parse_user_time


@cli.group()
def officer() -> None:
    """Register officers (badge or enforcement-certificate number, name, unit).

    \b
    Example:
      custody officer add 031245 --name "Wang Li" --unit "Traffic 2"
      custody officer ls
    """


@officer.command("add")
@click.argument("badge")
@click.option("--name", required=True, help="The officer's full name.")
@click.option("--unit", default="", help="The officer's unit.")
@json_option
@pass_session
def officer_add(session: Session, badge: str, name: str, unit: str, as_json: bool) -> None:
    """Register an officer by badge number (audited).

    \b
    Example:
      custody officer add 031245 --name "Wang Li" --unit "Traffic 2"
    """
    added = session.perform("officer_add", station.AddOfficer(badge, name, unit))
    if as_json:
        click.echo(json.dumps(added))
    else:
        _say(
            _("registered officer {badge} {name}").format(badge=added["badge"], name=added["name"])
            + (f" ({added['unit']})" if added["unit"] else "")
        )


@officer.command("login")
@click.argument("badge")
@click.argument("login")
@pass_session
def officer_login(session: Session, badge: str, login: str) -> None:
    """Say which login name is officer BADGE: with the officer role, they see their own footage.

    \b
    Example:
      custody officer login 031245 wangli
    """
    session.perform("officer_login", station.OfficerLogin(badge, login))
    _say(_("officer {badge} is login {login}").format(badge=badge, login=login))


@officer.command("ls")
@wide_option
@json_option
@pass_session
def officer_ls(session: Session, as_json: bool) -> None:
    """List registered officers.

    \b
    Example:
      custody officer ls --json
    """
    officers = session.perform("officer_ls", NoRequest())
    if as_json:
        click.echo(json.dumps(officers, indent=1))
        return
    table = Listing(
        Column("badge", KEY),
        Column("name", TEXT),
        Column("unit", TEXT),
        Column("registered", drop=2, time=True),
        Column("by", drop=1),
    )
    for o in officers:
        table.add_row(o["badge"], o["name"], o["unit"] or "-", local_display(o["added_at"]), o["added_by"])
    show_listing(table)
    console.print(f"{len(officers)} officer(s)")


@cli.group()
def recorder() -> None:
    """Register recorders (by USB serial) and assign them to officers over time.

    The officer credited for a file is the one assigned to its recorder at the
    file's recording time.

    \b
    Example:
      custody recorder add BWC0042 --officer 031245 --profile bwc-badge
      custody recorder assign BWC0042 028811 --from 2026-12-01
      custody recorder ls
    """


@recorder.command("add")
@click.argument("serial")
@click.option("--profile", default="", help="Recorder profile (default: the first whose match rules fit).")
@click.option("--officer", "badge", help="Officer the recorder is assigned to.")
@click.option("--from", "valid_from", help="Assignment starts at this time (default now; local time).")
@click.option("--vendor", default="", help="Maker, for the record.")
@click.option("--model", default="", help="Model, for the record.")
@json_option
@pass_session
def recorder_add(session: Session, serial, profile, badge, valid_from, vendor, model, as_json) -> None:
    """Register a recorder by its USB serial number (audited).

    Only registered recorders are pulled when docked.

    \b
    Example:
      custody recorder add BWC0042 --officer 031245 --from 2026-11-01
    """
    start = parse_user_time(valid_from, "--from") if valid_from else None
    added = session.perform("recorder_add", station.AddRecorder(serial, profile, badge, start, vendor, model))
    if as_json:
        click.echo(json.dumps(added))
    else:
        assigned = (
            _(", assigned to {officer}").format(officer=added["current_officer"])
            if added["current_officer"]
            else _(", not assigned")
        )
        upcoming = (
            _(" (assigned to {officer} from {when})").format(
                officer=added["upcoming_officer"], when=local_display(added["upcoming_from"])
            )
            if added["upcoming_officer"]
            else ""
        )
        _say(_("registered recorder {serial}").format(serial=added["serial"]) + assigned + upcoming)


@recorder.command("assign")
@click.argument("serial")
@click.argument("badge")
@click.option("--from", "valid_from", help="Assignment starts at this time (default now; local time).")
@json_option
@pass_session
def recorder_assign(session: Session, serial: str, badge: str, valid_from: str | None, as_json: bool) -> None:
    """Assign a recorder to an officer from a time on (audited; history kept).

    \b
    Example:
      custody recorder assign BWC0042 028811 --from 2026-12-01T07:00
    """
    start = parse_user_time(valid_from, "--from") if valid_from else None
    done = session.perform("recorder_assign", station.AssignRecorder(serial, badge, start))
    if as_json:
        click.echo(json.dumps({"serial": done["serial"], "assignments": done["assignments"]}))
        return
    ended = done["ended"]
    if done["later"]:  # a later assignment: the one in force stays until then
        until = _(" ({officer} until then)").format(officer=ended["badge"]) if ended else ""
        _say(
            _("recorder {serial} assigned to {badge} from {when}").format(
                serial=serial, badge=badge, when=local_display(start)
            )
            + until
        )
        return
    was = _(" (was {officer})").format(officer=ended["badge"]) if ended else ""
    _say(_("recorder {serial} assigned to {badge}").format(serial=serial, badge=badge) + was)


@recorder.command("ls")
@wide_option
@json_option
@pass_session
def recorder_ls(session: Session, as_json: bool) -> None:
    """List recorders with the officer assigned now (and the next one, when an assignment starts later) and last dock.

    \b
    Example:
      custody recorder ls --json
    """
    recorders = session.perform("recorder_ls", station.ListRecorders(assignments=as_json))
    if as_json:
        click.echo(json.dumps(recorders, indent=1))
        return
    table = Listing(
        Column("serial", KEY),
        Column("officer", TEXT),
        Column("profile", drop=1),
        Column("last docked", drop=2, time=True),
        Column("state", TEXT),
    )
    for r in recorders:
        upcoming = (
            f" (then {r['upcoming_officer']} from {local_display(r['upcoming_from'])})"
            if r["upcoming_officer"]
            else ""
        )
        table.add_row(
            r["serial"],
            (r["current_officer"] or "-") + upcoming,
            r["profile"] or "(by rules)",
            local_display(r["last_docked"]) if r["last_docked"] else "never",
            f"retired {local_display(r['retired_at'])}" if r["retired_at"] else "active",
        )
    show_listing(table)
    console.print(f"{len(recorders)} recorder(s)")


@recorder.command("retire")
@click.argument("serial")
@json_option
@pass_session
def recorder_retire(session: Session, serial: str, as_json: bool) -> None:
    """Retire a recorder: no longer pulled when docked; its footage and history stay (audited).

    \b
    Example:
      custody recorder retire BWC0042
    """
    retired = session.perform("recorder_retire", station.RecorderRef(serial))
    if as_json:
        click.echo(json.dumps(retired))
        return
    _say(_("recorder {serial} retired").format(serial=retired["serial"]))


@cli.command()
@click.option("--log-json", is_flag=True, help="Log one JSON object per line instead of text.")
@pass_session
def daemon(session: Session, log_json: bool) -> None:
    """Run the docking daemon in the foreground (as systemd runs it).

    Follows USB devices: a registered recorder that is docked is mounted
    read-only and every new file is pulled into the vault; unknown devices
    are logged, audited and left alone. SIGTERM stops it cleanly (the file
    being read is abandoned, everything unmounted); SIGHUP reloads the config.

    \b
    Example:
      custody --home /var/lib/custody daemon
    """
    _configure_logging(session.debug, log_json)
    from custody.ingestd.daemon import Daemon  # (the daemon's modules, boto3 among them, load slowly)
    from custody.retention.plan import replica_lock_rule

    limit_malloc_arenas()
    Daemon(
        session.settings(),
        "custody-daemon",
        replica_locks=replica_lock_rule,
        operations=lambda settings: operations.served(settings, api.progress_sender),
    ).run()


@cli.command()
@wide_option
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """Show docked recorders with live progress, recent sessions, media jobs, findings to explain, errors.

    \b
    Example:
      custody status
      custody status --json
    """
    station_now = session.perform("status", NoRequest())
    oldest_finding = station_now.pop("oldest_open_finding")
    if as_json:
        click.echo(json.dumps(station_now, indent=1))
        return
    _print_status(station_now, oldest_finding)


def _print_status(station_now: dict, oldest_finding: str | None) -> None:
    """``status`` at a terminal: the disk, the daemon and what is docked, sessions, media jobs, findings."""
    live, disk = station_now["daemon"], station_now["vault_disk"]
    if disk["full"]:
        _say(
            _(
                "vault disk full: {free} free, {reserve} kept in reserve ([vault] min_free_mb); pulls wait "
                "and uploads are refused until space is freed"
            ).format(free=_size(disk["free_bytes"]), reserve=_size(disk["reserve_bytes"]))
        )
    if live is None:
        _say(_("daemon: not running"))
    else:
        _say(
            _("daemon: running (pid {pid}, since {since})").format(
                pid=live["pid"], since=local_display(live["started_at"])
            )
        )
        show_listing(_docked_table(live["docked"]))
        for error in live.get("errors", []):
            _say(
                _("error {when}: {message}").format(when=local_display(error["at"]), message=error["message"])
            )
    show_listing(_sessions_table(station_now["sessions"]))
    job_counts = station_now["media_jobs"]
    _say(_("media jobs: ") + ", ".join(f"{job_counts.get(state, 0)} {_(state)}" for state in JOB_STATES))
    for job in station_now["failed_media_jobs"]:
        _say(
            _("  failed: job {job} {kind} of {item} after {tries} tries: {error}").format(
                job=job["id"], kind=job["kind"], item=format_item_id(job["item"]), tries=job["attempts"],
                error=job["last_error"],
            )
        )  # fmt: skip
    open_findings = station_now["open_continuity_findings"]
    if open_findings:
        _say(
            _(
                "continuity: {count} finding(s) to explain, oldest {oldest}: see 'custody report gaps --open'"
            ).format(count=open_findings, oldest=oldest_finding)
        )
    _print_case_attention(station_now.get("cases") or {})
    for recorder in station_now.get("recorders_overdue") or []:
        _say(
            _("recorder {serial} (officer {officer}) not docked within the window; last docked {when}").format(
                serial=recorder["serial"], officer=recorder["officer"],
                when=local_display(recorder["last_docked"]) if recorder["last_docked"] else _("never"),
            )
        )  # fmt: skip
    for replica in station_now.get("replicas") or []:
        if replica["failing"]:
            _say(
                _("replica {target}: {failing} copies failing; last error: {error}").format(
                    target=replica["target"], failing=replica["failing"], error=replica["last_error"]
                )
            )
    unknown = station_now["unknown_devices"]
    if unknown:
        table = Listing(
            Column("device", KEY),
            Column("reason", TEXT),
            Column("last seen", drop=2, time=True),
            Column("times", drop=1, justify="right"),
            title="devices not ingested",
        )
        for u in unknown:
            table.add_row(
                u["key"], u["identity"].get("reason", "-"), local_display(u["last_seen"]), str(u["times"])
            )
        show_listing(table)


def _sessions_table(sessions: list[dict]) -> Listing:
    """The recent dock sessions and what each found."""
    table = Listing(
        Column("session", KEY, justify="right"),
        Column("recorder", KEY),
        Column("officer", drop=2),
        Column("docked", drop=3, time=True),
        Column("state"),
        Column("found", justify="right"),
        Column("new", justify="right"),
        Column("dup", drop=1, justify="right"),
        Column("known", drop=1, justify="right"),
        Column("failed", justify="right"),
        title="sessions",
    )
    for s in sessions:
        table.add_row(
            str(s["id"]),
            s["serial"],
            s["officer"] or "-",
            local_display(s["docked_at"]),
            s["state"],
            str(s["files_found"]),
            str(s["files_new"]),
            str(s["files_duplicate"]),
            str(s["files_known"]),
            str(s["files_failed"]),
        )
    return table


def _docked_table(docked_now: list[dict]) -> Listing:
    """The recorders docked now, with how far each pull is."""
    docked = Listing(
        Column("recorder", KEY),
        Column("state"),
        Column("files"),
        Column("bytes", drop=3),
        Column("rate", drop=2),
        Column("ETA"),
        Column("reading", TEXT, drop=1),
        title="docked",
    )
    for entry in docked_now:
        if "files_total" in entry:
            docked.add_row(
                entry["serial"],
                entry["state"],
                f"{entry['files_done']} of {entry['files_total']}",
                f"{_size(entry['bytes_done'])} of {_size(entry['bytes_total'])}",
                f"{_size(entry['rate_bytes_per_second'])}/s",
                f"{entry['eta_seconds']} s",
                ", ".join(entry.get("reading") or []) or "-",
            )
        else:
            docked.add_row(
                entry.get("serial") or entry.get("device", "?"), entry["state"], "-", "-", "-", "-", "-"
            )
    return docked


@cli.group()
def media() -> None:
    """Media work on sealed originals, from a persistent job queue.

    Per item: metadata (ffprobe), a fast integrity check, a playable copy
    (H.264/AAC MP4: a remux when the original is H.264, else a transcode) and
    a thumbnail, stored as encrypted derivatives; continuity analysis of the
    recorder's segments; then, at low priority, a full decode check.

    \b
    Example:
      custody media run --once
    """


@media.command("run")
@click.option(
    "--once", is_flag=True, help="Work until the queue is empty, then exit (default: keep following it)."
)
@json_option
@pass_session
def media_run(session: Session, once: bool, as_json: bool) -> None:
    """Run queued media jobs with a pool of workers ([media] workers; 0 = one per core).

    Without the daemon, this is how facts, playable copies and thumbnails
    are made. A job whose tool
    crashes or hits its limits is tried again up to [media] max_attempts times,
    then shown as failed by 'custody status'; with --once a full vault disk
    counts as an attempt too (the daemon's job waits for room instead).
    Exits 1 when a job failed for good.

    \b
    Example:
      custody media run --once --json
    """
    import signal

    from custody.ingestd.jobs import MediaJobs  # (media work's modules load only for it)

    settings = session.settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Vault(settings, session.actor, writer=True) as vault:
        summary = MediaJobs(vault, settings).run(stop=stop, until_empty=once)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        _say(
            _("media jobs: {done} done, {retried} to retry, {failed} failed").format(
                done=summary.done, retried=summary.retried, failed=summary.failed
            )
        )
        for error in summary.errors:
            _say_error(error)
    if summary.failed:
        sys.exit(1)


JOB_STATES = (N_("queued"), N_("running"), N_("done"), N_("failed"))


def _print_case_attention(cases: dict) -> None:
    """Status lines for cases needing attention (urgent filings, archive deadlines)."""
    for key, label in (
        ("filing_overdue", N_("filing approval overdue (urgent, over 24 hours)")),
        ("archive_overdue", N_("case file past its 30-day archive deadline")),
        ("archive_near", N_("case file due within 7 days")),
    ):
        if cases.get(key):
            _say(
                _("cases: {what}: {cases}: see 'custody report cases'").format(
                    what=_(label), cases=", ".join(shown_text(c) for c in cases[key])
                )
            )


@cli.group()
def user() -> None:
    """custody's own accounts, for people who sign in to the web platform (admins).

    Their roles come from [access.roles] by login name, as for local users.

    \b
    Example:
      custody user add chenjing
      custody user passwd chenjing
      custody user ls
    """


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@user.command("add")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@pass_session
def user_add(session: Session, login: str, password_stdin: bool) -> None:
    """Add an account LOGIN; the password is asked for twice (kept only as its Argon2 hash).

    \b
    Example:
      custody user add chenjing
    """
    session.perform("account_set", station.SetPassword(login, _read_password(password_stdin), new=True))
    _say(_("account {login} added; give it a role in [access.roles]").format(login=login))


@user.command("passwd")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@pass_session
def user_passwd(session: Session, login: str, password_stdin: bool) -> None:
    """Change the password of account LOGIN.

    \b
    Example:
      custody user passwd chenjing
    """
    session.perform("account_set", station.SetPassword(login, _read_password(password_stdin), new=False))
    _say(_("account {login}: password changed").format(login=login))


@user.command("ls")
@json_option
@pass_session
def user_ls(session: Session, as_json: bool) -> None:
    """List custody's own accounts.

    \b
    Example:
      custody user ls
    """
    rows = session.perform("account_ls", NoRequest())
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Listing(Column("login", KEY), Column("added", time=True), Column("password changed", time=True))
    for row in rows:
        table.add_row(row["login"], local_display(row["created_at"]), local_display(row["changed_at"]))
    show_listing(table)


@cli.command("web")
@click.option("--bind", help="Address to listen on (default [web] bind, loopback).")
@click.option("--port", type=int, help="Port (default [web] port, 8420).")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/var/lib/custody-web/session.key"),
    show_default=True,
    help="The key that signs session cookies (made 0600 the first time).",
)
@click.option(
    "--tls-certificate", type=click.Path(dir_okay=False, path_type=Path), help="Serve HTTPS with it."
)
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="The certificate's key.")
@pass_session
def web(session: Session, bind, port, secret_file: Path, tls_certificate, tls_key) -> None:
    """Serve the platform in a browser (as [web] service_user, under systemd: custody-web.service).

    It reads nothing of the vault: every page asks the daemon through its
    socket as the signed-in person. Chinese by default, English by a switch.

    \b
    Example:
      custody web --port 8420
    """
    import uvicorn

    from custody.web.app import WebConfig, create_app, load_secret

    socket_path = session.api_socket()
    try:
        served = api.call(socket_path, "web_config", timeout=10)
    except api.ApiError as exc:
        raise UsageError(
            reason=Said("the daemon will not serve this web service: {message}", message=exc.message)
        ) from None
    config = WebConfig(
        socket_path, served["session_minutes"], secure_cookies=bool(tls_certificate), state=secret_file.parent
    )
    app = create_app(config, load_secret(secret_file))
    host, listen_port = bind or served["bind"], port or served["port"]
    scheme = "https" if tls_certificate else "http"
    _say(
        _("custody web at {address} (daemon {socket})").format(
            address=f"{scheme}://{host}:{listen_port}/", socket=socket_path
        )
    )
    uvicorn.run(
        app, host=host, port=listen_port, log_level="warning", proxy_headers=False,
        ssl_certfile=str(tls_certificate) if tls_certificate else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )  # fmt: skip
