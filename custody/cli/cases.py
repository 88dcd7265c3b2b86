"""Case files (案卷): case open|ls|show|stage|approve-filing|file|link|explain-missing|close|
archive|types, and the reports on cases and compliance."""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

import click

from custody.cli.base import Session, json_option, pass_session
from custody.cli.casework import case_group, report
from custody.cli.items import _IngestPrinter
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _say, show_fields, show_listing, wide_option
from custody.errors import Said, UsageError
from custody.i18n import N_, _
from custody.ingestd.pipeline import IngestSession, IngestSource, SilentObserver
from custody.operations import NoRequest, cases
from custody.rules import PARTY_KINDS, PROCEDURES, STAGE_KEYS, STAGES
from custody.vault import Vault, report_documents
from custody.vault.items import shown_text
from custody.vault.report_documents import write_new_file
from custody.vault.timestamps import local_display, parse_user_time
from custody.vault.wording import Wording

STAGE_NAMES = {key: f"{chinese} {english}" for key, chinese, english, _articles in STAGES}
ARCHIVE_STATES = {
    "open": "open",
    "due": "due {due}",
    "near": "due {due} (near)",
    "overdue": "OVERDUE since {due}",
    "archived": "archived",
    "archived-late": "archived LATE",
}


@case_group.command("open")
@click.argument("case")
@click.option("--cause", required=True, help="The cause of the case (案由).")
@click.option("--party", required=True, help="The party (当事人): a person's or an organisation's name.")
@click.option("--party-kind", type=click.Choice(PARTY_KINDS), default="person", show_default=True)
@click.option(
    "--handler", "handlers", multiple=True, required=True, help="A handling officer's badge (repeat)."
)
@click.option("--procedure", type=click.Choice(PROCEDURES), default="general", show_default=True)
@click.option(
    "--urgent", is_flag=True, help="Started before its filing was approved: approval due in 24 hours."
)
@click.option("--started", help="When the case started (YYYY-MM-DD[THH:MM], local time; default now).")
@json_option
@pass_session
def case_open(
    session: Session, case: str, cause: str, party: str, party_kind: str, handlers: tuple[str, ...],
    procedure: str, urgent: bool, started: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Open a case: its number, cause, party and handling officers (clerks; audited).

    A case number already used as a tag is a case already: this completes it.

    \b
    Example:
      custody case open 2026-0412 --cause "无证经营" --party "张三" --handler 031245
      custody case open 2026-0413 --cause "占道经营" --party "李四" --handler 031245 --urgent
    """
    opened = session.perform(
        "case_open",
        cases.OpenCase(
            case, cause, party, tuple(handlers), party_kind, procedure, urgent,
            parse_user_time(started, "--started") if started else None,
        ),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(opened, ensure_ascii=False))
        return
    _say(
        _("case {case} open: {cause}, party {party}").format(
            case=shown_text(opened["case_name"]),
            cause=shown_text(opened["cause"]),
            party=shown_text(opened["party"]),
        )
    )
    if opened["filing_due"]:
        _say(
            _("urgent: its filing approval is due by {when}").format(when=local_display(opened["filing_due"]))
        )


@case_group.command("ls")
@click.option("--open", "open_only", is_flag=True, help="Only cases not yet archived.")
@wide_option
@json_option
@pass_session
def case_ls(session: Session, open_only: bool, as_json: bool) -> None:
    """List cases: stage, handlers, archive deadline and what needs attention.

    \b
    Example:
      custody case ls --open
    """
    rows = session.perform("case_ls", cases.ListCases(archived=not open_only))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Listing(
        Column("case", KEY),
        Column("party", TEXT, narrowest=6),
        Column("stage", drop=3),
        Column("handlers", drop=2),
        Column("archive"),
        Column("attention", TEXT, narrowest=8),
        title="cases",
    )
    for row in rows:
        table.add_row(
            row["case"], row["party"] or "-", STAGE_NAMES.get(row["stage"], row["stage"]),
            ", ".join(row["handlers"]) or "-", _archive_state(row), _attention(row),
        )  # fmt: skip
    show_listing(table)


def _archive_state(row: dict) -> str:
    return ARCHIVE_STATES.get(row["archive_state"], row["archive_state"]).format(due=row["archive_due"])


def _attention(row: dict) -> str:
    notes = []
    if row["filing_overdue"]:
        notes.append("filing approval overdue")
    if row["recordings_missing"]:
        notes.append(f"{len(row['recordings_missing'])} recording(s) missing")
    if row["interruptions_open"]:
        notes.append(f"{len(row['interruptions_open'])} interruption(s) unexplained")
    return "; ".join(notes) or "-"


@case_group.command("show")
@click.argument("case")
@json_option
@pass_session
def case_show(session: Session, case: str, as_json: bool) -> None:
    """Show a case: details, stages, written records in stage order, footage, findings, archives.

    \b
    Example:
      custody case show 2026-0412
    """
    found = session.perform("case_show", cases.CaseRef(case))
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    c = found["case"]
    filing = (
        _("approved by {who} {when}").format(
            who=shown_text(c["filing_approved_by"]), when=local_display(c["filing_approved_at"])
        )
        if c["filing_approved_at"]
        else _("not approved")
        + (_(" (due {when})").format(when=local_display(c["filing_due"])) if c["filing_due"] else "")
    )
    show_fields([
        (N_("case"), c["case_name"]), (N_("cause"), c["cause"] or "-"),
        (N_("party"), f"{c['party'] or '-'} ({c['party_kind']})"), (N_("handlers"), ", ".join(c["handlers"]) or "-"),
        (N_("procedure"), c["procedure"] + (_(", urgent") if c["urgent"] else "")),
        (N_("stage"), STAGE_NAMES.get(c["stage"], c["stage"])), (N_("started"), local_display(c["started_at"])),
        (N_("filing"), filing),
        (N_("ended"), (c["ended_on"] or "-") + (_("; archive due {day}").format(day=c["archive_due"]) if c["archive_due"] else "")),
        (N_("archived"), local_display(c["archived_at"])),
    ])  # fmt: skip
    table = Listing(
        Column("id", KEY), Column("type", TEXT, narrowest=8), Column("stage", drop=2), Column("date"),
        Column("recordings", TEXT, narrowest=8), title="written records",
    )  # fmt: skip
    for d in found["documents"]:
        recordings = ", ".join(d["recordings"]) or (
            f"explained: {d['recording_exemption']}" if d["recording_exemption"] else "-"
        )
        table.add_row(d["id"], d["type"], STAGE_NAMES.get(d["stage"], d["stage"]), d["date"], recordings)
    show_listing(table)
    table = Listing(Column("id", KEY), Column("name", TEXT), Column("recorded", time=True), title="footage")
    for f in found["footage"]:
        table.add_row(f["id"], shown_text(f["name"]), local_display(f["recorded_start"]))
    show_listing(table)
    for missing in found["recordings_missing"]:
        if missing["state"] == "open":
            _say(
                _("recording missing: {document} ({type}): link one or explain why").format(
                    document=missing["document"], type=missing["type"]
                )
            )
    for gap in found["interruptions"]:
        if gap["state"] == "open":
            _say(_("interruption {finding} not explained").format(finding=gap["id"]))
    for archive in found["archives"]:
        _say(
            _("archived version {version} {when}: record {record}, PDF {pdf}").format(
                version=archive["version"], when=local_display(archive["archived_at"]), record=archive["record"],
                pdf=archive["pdf"],
            )
        )  # fmt: skip
    if found["gaps"]:
        _say(_("not ready to archive:") + "\n  " + "\n  ".join(shown_text(g) for g in found["gaps"]))


@case_group.command("stage")
@click.argument("case")
@click.argument("stage", type=click.Choice(STAGE_KEYS), metavar="STAGE")
@click.option("--reason", help="Why (needed to move back).")
@pass_session
def case_stage(session: Session, case: str, stage: str, reason: str | None) -> None:
    """Move a case to STAGE (the rule's order; back only with --reason; audited).

    STAGE is one of initiation, investigation, review, service, archive.

    \b
    Example:
      custody case stage 2026-0412 investigation
    """
    moved = session.perform("case_stage", cases.MoveCase(case, stage, reason))
    _say(
        _("case {case}: {stage}").format(
            case=shown_text(moved["case_name"]), stage=STAGE_NAMES[moved["stage"]]
        )
    )


@case_group.command("approve-filing")
@click.argument("case")
@click.option("--by", "by", required=True, help="Who approved the filing (the principal leader).")
@click.option("--at", "at", help="When (YYYY-MM-DD[THH:MM], local time; default now).")
@pass_session
def case_approve_filing(session: Session, case: str, by: str, at: str | None) -> None:
    """Record the approval of the case's filing form (立案审批; file the form itself with 'case file').

    \b
    Example:
      custody case approve-filing 2026-0412 --by "王局长" --at 2026-12-01T09:30
    """
    approved = session.perform(
        "case_approve_filing", cases.ApproveFiling(case, by, parse_user_time(at, "--at") if at else None)
    )
    late = approved["filing_due"] and approved["filing_approved_at"] > approved["filing_due"]
    _say(
        _("case {case}: filing approved by {who} {when}").format(
            case=shown_text(approved["case_name"]), who=shown_text(approved["filing_approved_by"]),
            when=local_display(approved["filing_approved_at"]),
        )
        + (_(" (after its 24 hours)") if late else "")
    )  # fmt: skip


@case_group.command("file")
@click.argument("case")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--type", "doc_type", required=True, help="Document type, e.g. 询问笔录 (see 'custody case types')."
)
@click.option("--stage", type=click.Choice(STAGE_KEYS), help="Stage (default: the type's).")
@click.option("--date", "dated", help="The document's date (YYYY-MM-DD; default today).")
@click.option("--title", default="", help="Title (default: the file name).")
@click.option("--pages", type=int, help="Number of pages.")
@click.option("--person", "people", multiple=True, help="A person named on it (repeat).")
@json_option
@pass_session
def case_file(
    session: Session, case: str, paths: tuple[Path, ...], doc_type: str, stage: str | None,
    dated: str | None, title: str, pages: int | None, people: tuple[str, ...], as_json: bool,
) -> None:  # fmt: skip
    """File written records (scans, photographs of signed forms, DOCX/ODT) with a case.

    Each file is sealed into the vault as footage is (hashed, encrypted, read
    back, replicated, kept), then filed with its type, stage and date. Nothing
    is filed unless every file was sealed (run it again: sealed files are
    recognised). A record filed after the case was archived is a supplement.

    \b
    Example:
      custody case file 2026-0412 inquiry.pdf --type 询问笔录 --date 2026-12-01 --pages 3
    """
    facts = dict(stage=stage, date=dated, title=title, pages=pages, people=tuple(people))
    session.perform("case_file", cases.FileDocuments(case, doc_type, (), **facts))  # check before sending
    source = IngestSource(paths=list(paths), source="import")
    printer = SilentObserver() if as_json else _IngestPrinter(as_json)  # (--json: one document at the end)
    socket_path = session.daemon_socket()
    with printer if isinstance(printer, _IngestPrinter) else contextlib.nullcontext():
        if socket_path is not None:
            from custody.ingestd import upload

            summary = upload.send_files(socket_path, source, printer)
        else:
            settings = session.settings()
            with Vault(settings, session.actor, writer=True) as vault:
                summary = IngestSession(vault, source, settings.ingest, printer).run()
    if not summary.ok or not summary.tasks:
        failed = [t.display_path for t in summary.tasks if t.item_id is None]
        raise UsageError(
            reason=Said(
                "nothing filed with case {case}: {failed} could not be sealed; the rest are in the vault, recognised when you run this again",
                case=case,
                failed=", ".join(failed) or "no file",
            )
        )
    items = tuple(dict.fromkeys(task.item_id for task in summary.tasks))
    filed = session.perform("case_file", cases.FileDocuments(case, doc_type, items, **facts))
    if as_json:
        click.echo(json.dumps({**filed, "ingest": summary.as_dict()}, ensure_ascii=False))
        return
    for document in filed["documents"]:
        supplement = _(" (supplement)") if document["supplement_to_version"] else ""
        _say(
            _("{document}: {type} filed with case {case}").format(
                document=document["id"], type=document["type"], case=shown_text(case)
            )
            + supplement
        )


@case_group.command("link")
@click.argument("document")
@click.argument("footage", nargs=-1, required=True)
@pass_session
def case_link(session: Session, document: str, footage: tuple[str, ...]) -> None:
    """Link FOOTAGE to a written record DOCUMENT as the recording of its act (audited).

    \b
    Example:
      custody case link EV-000130 EV-000123 EV-000124
    """
    linked = session.perform("case_link", cases.LinkRecording(document, tuple(footage)))
    _say(
        _("{document} ({type}): recordings {recordings}").format(
            document=linked["id"], type=linked["type"], recordings=", ".join(linked["recordings"])
        )
    )


@case_group.command("explain-missing")
@click.argument("document")
@click.option(
    "--reason", required=True, help="Why the act has no audio-visual record (kept in the audit chain)."
)
@pass_session
def case_explain_missing(session: Session, document: str, reason: str) -> None:
    """Close a 'recording missing' finding of a record DOCUMENT with a reason (e.g. state secrets).

    \b
    Example:
      custody case explain-missing EV-000131 --reason "涉及国家秘密，依法不录像"
    """
    explained = session.perform("case_explain_missing", cases.ExplainMissing(document, reason))
    _say(_("{document}: missing recording explained").format(document=explained["id"]))


@case_group.command("close")
@click.argument("case")
@click.option("--ended", required=True, help="The day the enforcement action ended (YYYY-MM-DD).")
@pass_session
def case_close(session: Session, case: str, ended: str) -> None:
    """Record the end of the enforcement action: the case file is due 30 days later.

    \b
    Example:
      custody case close 2026-0412 --ended 2026-12-03
    """
    closed = session.perform("case_close", cases.CloseCase(case, ended))
    _say(
        _("case {case} closed: archive it by {day}").format(
            case=shown_text(closed["case_name"]), day=closed["archive_due"]
        )
    )


@case_group.command("archive")
@click.argument("case")
@click.option("--force", is_flag=True, help="Archive with its gaps (needs --reason; the gaps are recorded).")
@click.option("--reason", help="Why it is archived with gaps.")
@json_option
@pass_session
def case_archive(session: Session, case: str, force: bool, reason: str | None, as_json: bool) -> None:
    """Check the case file is complete, then seal its cover and index (JSON signed, and PDF).

    Refuses, naming each gap, when a required document, a required recording
    (or its explanation), an explanation of an interruption or a tag is
    missing. After records are added, archiving again makes a new version.

    \b
    Example:
      custody case archive 2026-0412
    """
    archived = session.perform("case_archive", cases.ArchiveCase(case, force, reason))
    if as_json:
        click.echo(json.dumps({k: v for k, v in archived.items() if k != "content"}, ensure_ascii=False))
        return
    _say(
        _("case {case} archived, version {version}: cover and index {record} (JSON), {pdf} (PDF)").format(
            case=shown_text(case), version=archived["version"], record=archived["record"], pdf=archived["pdf"]
        )
        + (_("; {count} gap(s) recorded").format(count=len(archived["gaps"])) if archived["gaps"] else "")
    )


@case_group.command("types")
@json_option
@pass_session
def case_types(session: Session, as_json: bool) -> None:
    """List the document types (Chinese, English, stage, recording required) and the stages.

    Add or change types in custody.toml under [cases.document_types."名称"].

    \b
    Example:
      custody case types
    """
    found = session.perform("case_types", NoRequest())
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    table = Listing(
        Column("type", KEY), Column("english", TEXT), Column("stage"), Column("video"), title="document types"
    )
    for kind in found["types"]:
        table.add_row(
            kind["type"], kind["english"], kind["stage"], "required" if kind["recording_required"] else "-"
        )
    show_listing(table)


@report.command("cases")
@click.option("--all", "show_all", is_flag=True, help="Archived cases too.")
@wide_option
@json_option
@pass_session
def report_cases(session: Session, show_all: bool, as_json: bool) -> None:
    """Cases against the rule's deadlines: filing approvals overdue, archive deadlines near and past,
    recordings missing and interruptions unexplained.

    \b
    Example:
      custody report cases --json
    """
    found = session.perform("report_cases", cases.ReportCases(archived=show_all))
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    for label, key in ((N_("filing approval overdue"), "filing_overdue"), (N_("archive overdue"), "archive_overdue"),
                       (N_("archive due within 7 days"), "archive_near")):  # fmt: skip
        if found[key]:
            _say(f"{_(label)}: {', '.join(shown_text(c) for c in found[key])}")
    table = Listing(
        Column("case", KEY), Column("stage", drop=2), Column("archive"), Column("attention", TEXT, narrowest=8),
        title="cases",
    )  # fmt: skip
    for row in found["cases"]:
        table.add_row(
            row["case"], STAGE_NAMES.get(row["stage"], row["stage"]), _archive_state(row), _attention(row)
        )
    show_listing(table)


def document_options(function):
    """--csv, --xlsx FILE and --pdf FILE: a report written as a document, headings in the
    station's documents' language ([station] documents: Chinese with English by default)."""
    function = click.option("--pdf", "pdf", type=click.Path(dir_okay=False, path_type=Path),
                            help="Write the report as a PDF to this new file.")(function)  # fmt: skip
    function = click.option("--xlsx", "xlsx", type=click.Path(dir_okay=False, path_type=Path),
                            help="Write the report as a spreadsheet (XLSX) to this new file.")(function)  # fmt: skip
    return click.option("--csv", "as_csv", is_flag=True, help="Print the report as CSV.")(function)


def _write_report(session: Session, make_table, period: str, as_csv: bool, xlsx: Path | None,
                  pdf: Path | None) -> bool:  # fmt: skip
    """Write the report's documents asked for (``make_table(wording)`` lays it out); False when
    none was asked. Files are written whole or not at all, never over an existing one."""
    if not (as_csv or xlsx or pdf):
        return False
    station = session.station()
    wording = Wording(station["documents"])
    table = make_table(wording)
    if xlsx:
        write_new_file(xlsx, report_documents.xlsx_bytes(table))
        _say(_("wrote {what} to {out}").format(what=table.title, out=xlsx))
    if pdf:
        data = report_documents.pdf_bytes(
            table, station["pdf_font"], period, station["organisation"], wording
        )
        write_new_file(pdf, data)
        _say(_("wrote {what} to {out}").format(what=table.title, out=pdf))
    if as_csv:
        click.echo(report_documents.csv_text(table), nl=False)
    return True


@report.command("compliance")
@click.option("--from", "since", required=True, help="From this date (YYYY-MM-DD).")
@click.option("--until", required=True, help="Until this date (YYYY-MM-DD, the whole day).")
@document_options
@json_option
@pass_session
def report_compliance(session: Session, since: str, until: str, as_csv: bool, xlsx: Path | None, pdf: Path | None,
                      as_json: bool) -> None:  # fmt: skip
    """Compliance per case and per officer (art. 27): recordings required but missing, footage
    stored after its window, interruptions unexplained, cases archived late or not yet, filing
    approvals late.

    As CSV, XLSX or PDF: one row per case, then per officer, headed in
    Chinese with English ([station] documents = "zh" or "en" for one).

    \b
    Example:
      custody report compliance --from 2026-11-01 --until 2026-11-30 --csv > november.csv
      custody report compliance --from 2026-11-01 --until 2026-11-30 --pdf november.pdf
    """
    found = session.perform(
        "report_compliance",
        cases.ReportCompliance(
            parse_user_time(since, "--from"), parse_user_time(until, "--until", end_of_day=True)
        ),
    )
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    table_of = functools.partial(report_documents.compliance_table, found)
    if _write_report(session, table_of, f"{since} – {until}", as_csv, xlsx, pdf):
        return
    table = Listing(
        Column("case", KEY), Column("missing"), Column("late"), Column("gaps"), Column("archive"), Column("filing"),
        title="cases",
    )  # fmt: skip
    for row in found["cases"]:
        table.add_row(
            row["case"], str(len(row["recordings_missing"])), str(len(row["footage_late"])),
            str(len(row["interruptions_unexplained"])), row["archive_state"],
            "late" if row["filing_approval_late"] else "ok",
        )  # fmt: skip
    show_listing(table)
    table = Listing(
        Column("officer", KEY), Column("missing"), Column("late"), Column("gaps"), Column("archived late"),
        Column("overdue"), Column("filing late"), title="officers",
    )  # fmt: skip
    for row in found["officers"]:
        table.add_row(
            row["officer"], str(row["recordings_missing"]), str(row["footage_late"]),
            str(row["interruptions_unexplained"]), str(row["cases_archived_late"]),
            str(row["cases_not_archived_overdue"]), str(row["filing_approvals_late"]),
        )  # fmt: skip
    show_listing(table)


@report.command("officers")
@click.option("--from", "since", required=True, help="From this date (YYYY-MM-DD).")
@click.option("--until", required=True, help="Until this date (YYYY-MM-DD, the whole day).")
@document_options
@wide_option
@json_option
@pass_session
def report_officers(session: Session, since: str, until: str, as_csv: bool, xlsx: Path | None, pdf: Path | None,
                    as_json: bool) -> None:  # fmt: skip
    """Per officer and month, for leaders: recordings and hours, the share stored within the
    24-hour window, interruptions found and explained, case files archived on time and late,
    supervision reviews and their ratings (clerks, custodians, auditors, supervisors).

    As CSV, XLSX or PDF: one row per officer and month, headed in Chinese
    with English ([station] documents = "zh" or "en" for one).

    \b
    Example:
      custody report officers --from 2026-11-01 --until 2026-11-30 --csv > november.csv
      custody report officers --from 2026-11-01 --until 2026-11-30 --xlsx november.xlsx
    """
    rows = session.perform(
        "report_officers",
        cases.ReportOfficers(
            parse_user_time(since, "--from"), parse_user_time(until, "--until", end_of_day=True)
        ),
    )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table_of = functools.partial(report_documents.officer_table, rows)
    if _write_report(session, table_of, f"{since} – {until}", as_csv, xlsx, pdf):
        return
    table = Listing(
        Column("officer", KEY), Column("month"), Column("recordings", justify="right"),
        Column("hours", justify="right", drop=2), Column("in 24 h", justify="right"),
        Column("gaps found", justify="right", drop=1), Column("explained", justify="right", drop=1),
        Column("archived late", justify="right", drop=3), Column("reviewed", justify="right", drop=4),
        Column("failed", justify="right", drop=4), title="officers by month",
    )  # fmt: skip
    for row in rows:
        percent = "-" if row["stored_in_time_percent"] is None else f"{row['stored_in_time_percent']:.1f} %"
        table.add_row(
            row["officer"], row["month"], str(row["recordings"]), f"{row['hours']:.1f}", percent,
            str(row["interruptions_found"]), str(row["interruptions_explained"]), str(row["cases_archived_late"]),
            str(row["reviewed"]), str(row["rated_fail"]),
        )  # fmt: skip
    show_listing(table)
