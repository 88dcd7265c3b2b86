"""The web platform's pages for leaders, supervisors, custodians and auditors: the report per
officer and month (chart, CSV, XLSX), supervision (抽查考评: samples drawn and rated), the
registry and the audit chain."""

from __future__ import annotations

import json
from datetime import datetime

from starlette.responses import RedirectResponse, Response

from custody.vault import report_documents
from custody.vault.timestamps import parse_user_time
from custody.vault.wording import Wording
from custody.web import i18n
from custody.web.base import PageBase, form_change, signed_in
from custody.web.i18n import N_

AUDIT_PAGE = 200  # events per page of the audit chain, newest first


class LeaderPages(PageBase):
    """Reports, supervision, registry and audit (part of the platform's pages)."""

    async def _officer_months(self, request, login: str) -> tuple[list[dict], str, str]:
        """The leaders' report for the asked period (default: this month so far)."""
        first_of_month = datetime.now().date().replace(day=1).isoformat()
        since = request.query_params.get("from") or first_of_month
        until = request.query_params.get("until") or datetime.now().date().isoformat()
        period = {
            "since": parse_user_time(since, i18n.text(request, N_("From"))),
            "until": parse_user_time(until, i18n.text(request, N_("Until")), end_of_day=True),
        }
        return await self.ask(login, "report_officers", period), since, until

    @signed_in
    async def reports(self, request, login: str) -> Response:
        """Per officer and month, with a chart of each officer's recordings and the share stored
        within 24 hours (drawn as SVG on the server: no script)."""
        rows, since, until = await self._officer_months(request, login)
        totals: dict[str, list[int]] = {}
        for row in rows:
            counts = totals.setdefault(row["officer"], [0, 0, 0])
            counts[0] += row["recordings"]
            counts[1] += row["stored_in_time"]
            counts[2] += row["reviewed"]
        bars = [
            {
                "officer": officer,
                "recordings": n,
                "in_time": (100 * ok / n) if n else 0.0,
                "reviewed": reviewed,
            }
            for officer, (n, ok, reviewed) in sorted(totals.items())
        ]
        most = max((bar["recordings"] for bar in bars), default=0) or 1
        return self.render(request, "reports.html", rows=rows, bars=bars, most=most, since=since, until=until)

    async def _report_table(self, request, login: str):
        """The leaders' report laid out as a document in the station's documents' language
        ([station] documents), and its period."""
        rows, since, until = await self._officer_months(request, login)
        station = (await self.ask(login, "whoami"))["station"]
        return report_documents.officer_table(rows, Wording(station["documents"])), since, until

    @signed_in
    async def reports_csv(self, request, login: str) -> Response:
        table, since, until = await self._report_table(request, login)
        return Response(
            "\ufeff"
            + report_documents.csv_text(table),  # (a BOM: spreadsheet programs read the Chinese right)
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="custody-officers-{since}-{until}.csv"'},
        )

    @signed_in
    async def reports_xlsx(self, request, login: str) -> Response:
        """The same report as a spreadsheet (custody.vault.report_documents.xlsx_bytes)."""
        table, since, until = await self._report_table(request, login)
        return Response(
            report_documents.xlsx_bytes(table),
            media_type=report_documents.XLSX_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="custody-officers-{since}-{until}.xlsx"'},
        )

    # -- supervision ---------------------------------------------------------------------------

    @signed_in
    async def supervision(self, request, login: str) -> Response:
        """Samples drawn (a supervisor: of their units) with the form to draw one; the ratings of
        the footage the person may see (an officer: their own)."""
        listed = await self.ask(login, "supervise_ls")
        results = await self.ask(login, "supervise_results")
        today = datetime.now().date()
        return self.render(
            request, "supervision.html", samples=listed["samples"], results=results,
            since=today.replace(day=1).isoformat(), until=today.isoformat(),
        )  # fmt: skip

    @form_change
    async def draw(self, request, login: str, form) -> Response:
        """Draw a sample as the supervisor (recorded with its seed, audited by the daemon)."""
        asked = {
            "since": parse_user_time(str(form.get("from", "")), i18n.text(request, N_("From"))),
            "until": parse_user_time(
                str(form.get("until", "")), i18n.text(request, N_("Until")), end_of_day=True
            ),
        }
        for name in ("officer", "unit"):
            if str(form.get(name, "")).strip():
                asked[name] = str(form[name]).strip()
        size = str(form.get("size", "")).strip()
        if size:
            asked["size"] = int(size) if size.isdigit() else -1  # (the daemon says what is allowed)
        drawn = await self.ask(login, "supervise_draw", asked)
        return RedirectResponse(f"/supervision/{drawn['id']}", status_code=303)

    @signed_in
    async def sample(self, request, login: str) -> Response:
        found = await self.ask(login, "supervise_show", {"sample": request.path_params["sample"]})
        return self.render(request, "sample.html", sample=found, message=request.session.pop("said", None))

    @form_change
    async def rate(self, request, login: str, form) -> Response:
        """Rate one item of a sample against the checklist: each entry met, not met, or not judged."""
        sample = request.path_params["sample"]
        checks = {key: str(form.get(f"check-{key}", "")) for key in form.get("keys", "").split()}
        asked = {
            "sample": sample,
            "item": str(form.get("item", "")),
            "rating": str(form.get("rating", "")),
            "passed": [key for key, said in checks.items() if said == "yes"],
            "failed": [key for key, said in checks.items() if said == "no"],
            "problems": str(form.get("problems", "")),
        }
        rated = await self.ask(login, "supervise_rate", asked)
        request.session["said"] = {"rated": rated["item"]}
        return RedirectResponse(f"/supervision/{sample}", status_code=303)

    # -- the station ---------------------------------------------------------------------------

    @signed_in
    async def registry(self, request, login: str) -> Response:
        """Officers and recorders with their assignments (changes stay the custodians' commands)."""
        officers = await self.ask(login, "officer_ls")
        recorders = await self.ask(login, "recorder_ls")
        return self.render(request, "registry.html", officers=officers, recorders=recorders)

    @signed_in
    async def audit(self, request, login: str) -> Response:
        """The audit chain, newest first, filtered by action or actor (auditors)."""
        chain = await self.ask(login, "log")
        action, actor = request.query_params.get("action", ""), request.query_params.get("actor", "")
        shown = [
            e for e in reversed(chain)
            if (not action or e["action"] == action) and (not actor or actor in e["actor"])
        ][:AUDIT_PAGE]  # fmt: skip
        verified = next((e for e in reversed(chain) if e["action"] == "verify"), None)
        # Details as people read them (Chinese names as written; escaped as HTML like any text).
        shown = [
            {**e, "details_text": json.dumps(e["details"], ensure_ascii=False, sort_keys=True)} for e in shown
        ]
        return self.render(
            request,
            "audit.html",
            events=shown,
            total=len(chain),
            action=action,
            actor=actor,
            verified=verified,
        )
