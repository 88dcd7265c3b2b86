"""The named operations at the Python level: each declares its role, the socket serves exactly
them (and the streams), requests are checked field by field, the protocol page is the registry,
and an operation in-process gives the very records the command line prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custody import operations
from custody.config import load_settings
from custody.errors import UsageError
from custody.ingestd.api_handlers import api_handlers
from custody.operations import OPERATIONS, decode, perform
from custody.operations.base import operation
from custody.operations.items import ListItems, TagItems
from custody.operations.protocol import render
from custody.vault import access
from tests.conftest import make_clip

ROOT = Path(__file__).resolve().parents[1]

# The role each operation needs, written out here (not read from the code): an operation served
# without a declared role, or with another one, fails this table.
EXPECTED_ROLES = {
    "ls": "ls", "show": "show", "tag": "tag", "log": "show", "explain": "explain",
    "verify": "verify", "anchor": "verify", "status": "status",
    "officer_add": "registry", "officer_login": "registry", "officer_ls": "report",
    "recorder_add": "registry", "recorder_assign": "registry", "recorder_retire": "registry",
    "recorder_ls": "report",
    "hold_add": "hold", "hold_release": "hold", "hold_ls": "report",
    "retention_plan": "report", "retention_request": "retention", "retention_approve": "retention",
    "retention_execute": "retention", "retention_category": "retention", "retention_requests": "report",
    "case_staff": "case", "case_confidentiality": "case",
    "report_gaps": "report", "report_window": "report", "report_retention": "report",
    "export_ls": "report",
    "case_open": "casework", "case_stage": "casework", "case_approve_filing": "casework",
    "case_file": "casework", "case_link": "casework", "case_close": "casework", "case_archive": "casework",
    "case_explain_missing": "explain", "case_ls": "ls", "case_show": "show", "case_types": "ls",
    "report_cases": "report", "report_compliance": "report",
    "account_set": "accounts", "account_ls": "accounts", "report_officers": "leaders-report",
    "supervise_draw": "supervise", "supervise_rate": "supervise", "supervise_ls": "reviews",
    "supervise_show": "reviews", "supervise_results": "reviews",
    "alerts_ls": "report", "alerts_test": "alerts",
}  # fmt: skip
STREAMS = {
    "whoami",
    "stream",
    "ingest",
    "export",
    "verify_image",
    "fetch",
    "burn_failed",
    "web_sign_in",
    "web_config",
}


def test_the_socket_serves_the_named_operations_and_the_streams_each_with_its_declared_role(settings):
    served = {**api_handlers(settings), **operations.served(settings, lambda: None)}
    assert set(served) == set(OPERATIONS) | STREAMS
    assert "run" not in served  # the daemon no longer runs a command line for anyone
    assert {name: op.action for name, op in OPERATIONS.items()} == EXPECTED_ROLES
    for name, op in OPERATIONS.items():
        assert access.ALLOWED.get(op.action), name  # someone, not anyone
        assert op.summary, f"{name} has no docstring for the protocol page"
    # The whole chain is the auditors'; one item's history anyone's who may see it.
    log = OPERATIONS["log"]
    assert log.needs(OPERATIONS["log"].request()) == "log"
    assert log.needs(OPERATIONS["log"].request(item="EV-000001")) == "show"


def test_an_operation_cannot_be_registered_without_a_role_of_the_access_table():
    with pytest.raises(ValueError, match="not an action"):

        @operation("format_disk", ListItems, "format")
        def format_disk(vault, request, context):  # pragma: no cover - never registered
            raise AssertionError

    assert "format_disk" not in OPERATIONS


def test_a_request_is_checked_field_by_field_before_anything_runs():
    assert decode(TagItems, {"items": ["EV-000001"], "case": "2026-1"}) == TagItems(
        ("EV-000001",), case="2026-1"
    )
    for data, said in (
        ({"items": ["EV-1"], "report_dir": "/tmp/x"}, "no field 'report_dir'"),
        ({"case": "2026-1"}, "needs 'items'"),
        ({"items": "EV-1"}, "'items' must be a list of text"),
        ({"items": ["EV-1"], "clear": "yes"}, "'clear' must be true or false"),
        ({"items": ["EV-1", 7]}, "'items' must be a list of text"),
        ({"items": ["EV-1"], "case": 12}, "'case' must be text or null"),
    ):
        with pytest.raises(UsageError, match=said):
            decode(TagItems, data, "tag")


def test_the_protocol_page_is_written_from_the_registry():
    page = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert page == render(), "regenerate: python -m custody.operations.protocol > docs/protocol.md"
    for name in OPERATIONS:
        assert f"| `{name}` |" in page


def test_an_operation_in_process_gives_the_records_the_command_line_prints(tmp_path, home, custody):
    custody("init")
    custody("ingest", str(make_clip(tmp_path / "CLIP.MP4")))
    settings = load_settings(home)
    listed = perform(settings, "ls", ListItems(), actor="clerk-at-python")
    assert listed == json.loads(custody("ls", "--json").stdout)
    assert [item["id"] for item in listed] == ["EV-000001"]
    # A dict from the socket and the dataclass give the same answer.
    assert perform(settings, "ls", {"name_contains": "clip"}) == listed
    changed = perform(settings, "tag", TagItems(("EV-000001",), case="2026-0412", party="Li Si"))
    assert changed == [
        {
            "id": "EV-000001",
            "changed": {"case": {"from": None, "to": "2026-0412"}, "party": {"from": None, "to": "Li Si"}},
        }
    ]
    shown = perform(settings, "show", {"item": "EV-000001"})
    assert shown == json.loads(custody("show", "EV-000001", "--json").stdout)
    assert shown["tags"] == {"case": "2026-0412", "party": "Li Si"}
    with pytest.raises(UsageError, match="no operation 'run'"):
        perform(settings, "run", {"argv": ["ls"]})
    with pytest.raises(TypeError):
        perform(settings, "ls", TagItems(("EV-000001",)))


def test_ls_pages_through_what_the_caller_may_see_newest_first(custody, home, tmp_path, monkeypatch):
    """A page is counted among the items the caller may see (a hidden one neither fills a page nor
    shows), read from the catalog in chunks; the vault's own user pages in SQL alone."""
    from custody.vault import case_access

    monkeypatch.setattr(case_access, "LIST_CHUNK", 2)  # (several chunks for a few items)
    custody("init")
    for number in range(1, 8):
        (tmp_path / f"file{number}.txt").write_bytes(f"item {number}".encode())
    custody("ingest", *(str(tmp_path / f"file{n}.txt") for n in range(1, 8)))
    custody("tag", "EV-000003", "EV-000006", "--confidentiality", "restricted")
    settings = load_settings(home)
    clerk = access.Caller(uid=4242, gid=4242, pid=None, name="pager", roles=("clerk",))

    def page(caller, **paging) -> list[str]:
        return [
            item["id"] for item in perform(settings, "ls", {"newest_first": True, **paging}, caller=caller)
        ]

    assert page(clerk) == ["EV-000007", "EV-000005", "EV-000004", "EV-000002", "EV-000001"]
    assert page(clerk, limit=2) == ["EV-000007", "EV-000005"]
    assert page(clerk, limit=2, offset=2) == ["EV-000004", "EV-000002"]
    assert page(clerk, limit=2, offset=4) == ["EV-000001"]
    assert page(clerk, limit=2, offset=6) == []
    assert page(None, limit=3, offset=1) == ["EV-000006", "EV-000005", "EV-000004"]  # the owner: all
    with pytest.raises(UsageError, match="limit must be 1 to 10000"):
        page(clerk, limit=0)
