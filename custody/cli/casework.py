"""Case work: holds, retention and disposition, continuity explanations, reports, case access."""

from __future__ import annotations

import json
from pathlib import Path

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _say, said_text, show_listing, wide_option
from custody.errors import UsageError
from custody.i18n import _
from custody.operations import NoRequest, casework
from custody.vault.timestamps import local_display, parse_user_time


@cli.group()
def hold() -> None:
    """Legal holds: a held item (or every item of a held case) is never disposed of.

    \b
    Example:
      custody hold add EV-000123 --reason "court order 2026-17"
      custody hold add --case 2026-0412 --reason "appeal pending"
      custody hold release HOLD-000001 --reason "appeal decided"
    """


@hold.command("add")
@click.argument("item", required=False)
@click.option("--case", help="Hold every item of this case (present and future).")
@click.option("--reason", required=True, help="Why (kept in the audit chain).")
@json_option
@pass_session
def hold_add(session: Session, item: str | None, case: str | None, reason: str, as_json: bool) -> None:
    """Put a legal hold on ITEM or on a whole --case (audited).

    \b
    Example:
      custody hold add EV-000123 --reason "court order 2026-17"
      custody hold add --case 2026-0412 --reason "appeal pending"
    """
    placed = session.perform("hold_add", casework.PlaceHold(reason, item, case))
    if as_json:
        click.echo(json.dumps(placed))
        return
    what = _("case {case}").format(case=placed["case_name"]) if placed["case_name"] else placed["item"]
    _say(_("{hold}: {what} held: {reason}").format(hold=placed["id"], what=what, reason=placed["reason"]))


@hold.command("release")
@click.argument("hold_id")
@click.option("--reason", required=True, help="Why the hold ends (kept in the audit chain).")
@json_option
@pass_session
def hold_release(session: Session, hold_id: str, reason: str, as_json: bool) -> None:
    """Release a hold (audited); its items follow their retention again.

    \b
    Example:
      custody hold release HOLD-000001 --reason "appeal decided"
    """
    released = session.perform("hold_release", casework.ReleaseHold(hold_id, reason))
    if as_json:
        click.echo(json.dumps(released))
        return
    _say(_("{hold} released: {reason}").format(hold=released["id"], reason=released["release_reason"]))


@hold.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
@wide_option
@json_option
@pass_session
def hold_ls(session: Session, show_all: bool, as_json: bool) -> None:
    """List holds (active ones unless --all).

    \b
    Example:
      custody hold ls --all --json
    """
    found = session.perform("hold_ls", casework.ListHolds(all=show_all))
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    table = Listing(
        Column("hold", KEY),
        Column("on", KEY),
        Column("reason", TEXT),
        Column("placed", drop=2, time=True),
        Column("by", drop=1),
        Column("released", TEXT),
        title="holds",
    )
    for h in found:
        table.add_row(
            h["id"],
            f"case {h['case_name']}" if h["case_name"] else h["item"],
            h["reason"],
            local_display(h["placed_at"]),
            h["placed_by"],
            f"{local_display(h['released_at'])} by {h['released_by']}: {h['release_reason']}"
            if h["released_at"]
            else "-",
        )
    show_listing(table)


@cli.group()
def retention() -> None:
    """How long footage is kept (at least two years; the four permanent categories for ever).

    \b
    Example:
      custody retention plan
      custody retention category --case 2026-0412 major_case
    """


@retention.command("plan")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the plan as retention-plan-YYYY-MM-DD.json in this folder (the daily timer does).",
)
@wide_option
@json_option
@pass_session
def retention_plan(session: Session, report_dir: Path | None, as_json: bool) -> None:
    """List what may be disposed of now and what becomes eligible soon, with the rule for each.

    Nothing is deleted by planning.

    \b
    Example:
      custody retention plan --json
      custody retention plan --report-dir /var/lib/custody/reports
    """
    from custody.retention.plan import write_report

    if report_dir is not None and session.daemon_socket() is not None:
        raise UsageError(
            reason="'custody retention plan --report-dir' cannot be run through the daemon: it names a file on "
            "the vault's machine, which the daemon never opens for a caller; leave it out (the vault's own "
            "user can run it in-process)"
        )
    report = session.perform("retention_plan", NoRequest())
    if report_dir is not None:
        written = write_report(report, report_dir)
        _say(_("wrote {path}").format(path=written))
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for title, rows in (
        (_("eligible for disposition now"), report["eligible"]),
        (_("eligible within {days} days").format(days=report["upcoming_days"]), report["upcoming"]),
    ):
        table = Listing(
            Column("id", KEY),
            Column("case", drop=2),
            Column("categories", TEXT),
            Column("retain until"),
            Column("rule", TEXT, drop=1),
            title=title,
        )
        for row in rows:
            table.add_row(
                row["id"],
                row["case"] or "-",
                ", ".join(row["categories"]) or "-",
                row["retain_until"][:10] if row["retain_until"] else _("permanent"),
                said_text(row, "rule"),
            )
        show_listing(table)
    _say(
        _("{items} item(s): {eligible} eligible, {soon} soon, {permanent} permanent, {held} held; nothing was deleted").format(
            items=report["items"], eligible=len(report["eligible"]), soon=len(report["upcoming"]),
            permanent=report["permanent"], held=report["held"],
        )
    )  # fmt: skip


@retention.command("request")
@click.argument("items", nargs=-1)
@click.option("--plan", "from_plan", is_flag=True, help="Every item eligible now (see 'retention plan').")
@click.option(
    "--remove-category",
    help="Instead of deleting, take this retention category off the ITEMs (it may shorten retention).",
)
@click.option("--reason", required=True, help="Why (kept in the audit chain).")
@json_option
@pass_session
def retention_request(
    session: Session,
    items: tuple[str, ...],
    from_plan: bool,
    remove_category: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Request the disposition of eligible items (or a category's removal); a second person approves it.

    \b
    Example:
      custody retention request --plan --reason "routine footage past its period"
      custody retention request EV-000123 --reason "routine, no case"
      custody retention request EV-000123 --remove-category penalty_evidence --reason "penalty annulled"
    """
    if bool(items) == from_plan:
        raise UsageError(reason="give ITEMs or --plan (not both)")
    request = casework.RequestDisposition(reason, tuple(items), from_plan, remove_category)
    made = session.perform("retention_request", request)
    if as_json:
        click.echo(json.dumps(made))
        return
    _say(
        _("{request}: {count} item(s) requested by {who}; a second person approves it").format(
            request=made["id"], count=len(made["items"]), who=made["requested_by"]
        )
    )


@retention.command("approve")
@click.argument("request_id")
@json_option
@pass_session
def retention_approve(session: Session, request_id: str, as_json: bool) -> None:
    """Approve a disposition request (not your own; both names go into the audit chain).

    \b
    Example:
      custody retention approve REQ-000001
    """
    approved = session.perform("retention_approve", casework.DispositionRef(request_id))
    if as_json:
        click.echo(json.dumps(approved))
        return
    _say(
        _("{request} approved by {approver} (requested by {requester})").format(
            request=approved["id"], approver=approved["approved_by"], requester=approved["requested_by"]
        )
    )


@retention.command("execute")
@click.argument("request_id")
@json_option
@pass_session
def retention_execute(session: Session, request_id: str, as_json: bool) -> None:
    """Execute an approved request: each item still eligible goes (tombstone kept); the rest are refused.

    Objects are deleted here at once and from every replica by replication
    (a replica still under Object Lock is retried after its date).

    \b
    Example:
      custody retention execute REQ-000001
    """
    done = session.perform("retention_execute", casework.DispositionRef(request_id))
    result = done["result"] or {}
    if as_json:
        click.echo(json.dumps(done))
        return
    if done["kind"] == "remove-category":
        _say(
            _("{request}: category {category} taken off {count} item(s)").format(
                request=done["id"], category=done["category"], count=len(result.get("items", []))
            )
        )
        return
    _say(
        _("{request}: disposed of {count} item(s)").format(
            request=done["id"], count=len(result.get("deleted", []))
        )
    )
    for item, why in result.get("refused", {}).items():
        _say(_("  kept {item}: {why}").format(item=item, why=why))


@retention.command("requests")
@wide_option
@json_option
@pass_session
def retention_requests(session: Session, as_json: bool) -> None:
    """List disposition requests and where each stands.

    \b
    Example:
      custody retention requests --json
    """
    found = session.perform("retention_requests", NoRequest())
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    table = Listing(
        Column("request", KEY),
        Column("state"),
        Column("items", justify="right"),
        Column("requested by", drop=2),
        Column("approved by", drop=1),
        Column("reason", TEXT),
        title="disposition requests",
    )
    for r in found:
        table.add_row(
            r["id"], r["state"], str(len(r["items"])), r["requested_by"], r["approved_by"] or "-", r["reason"]
        )
    show_listing(table)


@retention.command("category")
@click.option("--case", "case", required=True, help="The case whose items all take the categories.")
@click.argument("categories", nargs=-1, required=True)
@pass_session
def retention_category(session: Session, case: str, categories: tuple[str, ...]) -> None:
    """Add retention categories to a whole case: they apply to every item of it (audited).

    \b
    Example:
      custody retention category --case 2026-0412 major_case
    """
    added = session.perform("retention_category", casework.CaseCategories(case, tuple(categories)))["added"]
    _say(
        f"{_('case {case}').format(case=case)}: {', '.join(added) if added else _('already had these categories')}"
    )


@cli.command()
@click.argument("finding")
@click.option("--reason", required=True, help="Why the recording was interrupted (kept in the audit chain).")
@json_option
@pass_session
def explain(session: Session, finding: str, reason: str, as_json: bool) -> None:
    """Close an open continuity finding (see 'custody report gaps') with an explanation (audited).

    \b
    Example:
      custody explain GAP-000001 --reason "battery changed during the arrest"
    """
    closed = session.perform("explain", casework.Explain(finding, reason))
    if as_json:
        click.echo(json.dumps(closed, indent=1))
        return
    _say(_("{finding} explained: {reason}").format(finding=closed["id"], reason=closed["reason"]))


@cli.group()
def report() -> None:
    """Reports for supervisors and auditors.

    \b
    Example:
      custody report window --since 2026-11-01
      custody report gaps --open
      custody report retention --days 7
    """


@report.command("gaps")
@click.option("--open", "open_only", is_flag=True, help="Only findings not yet explained.")
@wide_option
@json_option
@pass_session
def report_gaps(session: Session, open_only: bool, as_json: bool) -> None:
    """List interruptions, overlaps and order problems between a recorder's consecutive segments.

    A hole longer than [continuity] gap_tolerance_seconds (2 s) and shorter
    than run_break_seconds (300 s) interrupts one recording; each stays open
    until a clerk explains it with 'custody explain'.

    \b
    Example:
      custody report gaps --open
      custody report gaps --json
    """
    findings = session.perform("report_gaps", casework.ReportGaps(open_only))
    if as_json:
        click.echo(json.dumps(findings, indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("kind", drop=3),
        Column("recorder", drop=2),
        Column("officer", drop=1),
        Column("before", KEY),
        Column("after", KEY),
        Column("seconds", justify="right"),
        Column("state", TEXT),
        title="continuity",
    )
    for finding in findings:
        state = finding["state"]
        if finding["reason"]:
            state += f" ({finding['closed_by']}): {finding['reason']}"
        table.add_row(
            finding["id"],
            finding["kind"],
            finding["recorder_serial"],
            finding["officer"] or "-",
            finding["before_item"],
            finding["after_item"],
            f"{finding['seconds']:.1f}",
            state,
        )
    show_listing(table)
    _say(
        _("{open} open of {count} shown").format(
            open=sum(f["state"] == "open" for f in findings), count=len(findings)
        )
    )


@report.command("retention")
@click.option(
    "--days", type=click.IntRange(1, 3650), default=7, show_default=True, help="How far ahead to look."
)
@wide_option
@json_option
@pass_session
def report_retention(session: Session, days: int, as_json: bool) -> None:
    """The custodian's notice: what may be disposed of now and what becomes eligible within --days.

    \b
    Example:
      custody report retention --days 7
    """
    report = session.perform("report_retention", casework.ReportRetention(days))
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("case", drop=2),
        Column("categories", TEXT),
        Column("eligible from"),
        Column("rule", TEXT, drop=1),
        title=f"eligible now or within {days} days",
    )
    for row in report["eligible"] + report["upcoming"]:
        table.add_row(
            row["id"],
            row["case"] or "-",
            ", ".join(row["categories"]) or "-",
            row["retain_until"][:10],
            said_text(row, "rule"),
        )
    show_listing(table)
    _say(
        _("{eligible} eligible now, {soon} within {days} days; disposition needs a request and a second person's approval").format(
            eligible=len(report["eligible"]), soon=len(report["upcoming"]), days=days
        )
    )  # fmt: skip


@report.command("window")
@click.option("--since", help="Only items recorded on or after this date (YYYY-MM-DD[THH:MM]).")
@wide_option
@json_option
@pass_session
def report_window(session: Session, since: str | None, as_json: bool) -> None:
    """List footage stored after its deadline and assigned recorders not docked within the window.

    The deadline of a file is its recording end plus [dock] window_hours (24 by default).

    \b
    Example:
      custody report window --since 2026-11-01 --json
    """
    answer = session.perform(
        "report_window", casework.ReportWindow(parse_user_time(since, "--since") if since else None)
    )
    report, window_hours = answer["report"], answer["window_hours"]
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("officer"),
        Column("recorder", drop=1),
        Column("recorded", drop=3, time=True),
        Column("ingested", drop=2, time=True),
        Column("hours late", justify="right"),
        title="late footage",
    )
    for row in report["late_items"]:
        table.add_row(
            row["id"],
            row["officer"] or "-",
            row["recorder"] or "-",
            local_display(row["recorded_end"]),
            local_display(row["ingested_at"]),
            f"{row['hours_late']:.1f}",
        )
    show_listing(table)
    table = Listing(
        Column("recorder", KEY),
        Column("officer"),
        Column("last docked", time=True),
        title=f"recorders not docked within {window_hours:g} h",
    )
    for row in report["silent_recorders"]:
        table.add_row(
            row["serial"],
            row["officer"],
            local_display(row["last_docked"]) if row["last_docked"] else "never",
        )
    show_listing(table)


@cli.group("case")
def case_group() -> None:
    """Case files (案卷): a case through its stages with its written records and footage, to the
    archived file (clerks); who is named on a case and how confidential it is (custodians).

    \b
    Example:
      custody case open 2026-0412 --cause "无证经营" --party "张三" --handler 031245
      custody case file 2026-0412 form.pdf --type 立案审批表
      custody case approve-filing 2026-0412 --by "王局长"
      custody case close 2026-0412 --ended 2026-12-03
      custody case archive 2026-0412
      custody case staff 2026-0412 chenjing liwei
      custody case confidentiality 2026-0412 restricted
    """


@case_group.command("staff")
@click.argument("case")
@click.argument("logins", nargs=-1, required=True)
@pass_session
def case_staff(session: Session, case: str, logins: tuple[str, ...]) -> None:
    """Name users (login names) on a case: clerks and custodians named on it see its restricted footage.

    \b
    Example:
      custody case staff 2026-0412 chenjing
    """
    added = session.perform("case_staff", casework.CaseStaff(case, tuple(logins)))["named"]
    _say(_("case {case}: named {logins}").format(case=case, logins=", ".join(added) or _("no one new")))


@case_group.command("confidentiality")
@click.argument("case")
@click.argument("level")
@pass_session
def case_confidentiality(session: Session, case: str, level: str) -> None:
    """Set a case's confidentiality; each of its items is at least that confidential.

    \b
    Example:
      custody case confidentiality 2026-0412 restricted
    """
    session.perform("case_confidentiality", casework.CaseConfidentiality(case, level))
    _say(_("case {case}: {level}").format(case=case, level=level))
