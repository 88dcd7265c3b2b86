"""The web platform's case pages: cases and a case's file, a disc made from its page and its
downloads, and the findings a clerk explains."""

from __future__ import annotations

import json
import secrets
import shutil

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from custody.web import i18n
from custody.web.base import PageBase, form_change, signed_in

MAX_RECORD_BYTES = 16 << 20  # an archived case file's cover and index (JSON) read for its page


class CasePages(PageBase):
    """Cases, exports and findings (part of the platform's pages)."""

    @signed_in
    async def cases(self, request, login: str) -> Response:
        return self.render(request, "cases.html", cases=await self.ask(login, "case_ls"))

    @signed_in
    async def case(self, request, login: str) -> Response:
        """A case's file: stages, written records (with a preview), footage, findings, deadlines;
        the index of its latest archived version, read from the sealed record as the person."""
        found = await self.ask(login, "case_show", {"case": request.path_params["case"]})
        index = None
        if found["archives"] and set(request.session.get("roles", [])) & {"clerk", "officer", "supervisor"}:
            latest = found["archives"][-1]
            record = await run_in_threadpool(self.read_item, login, latest["record"], MAX_RECORD_BYTES)
            index = json.loads(record)["index"]
        return self.render(
            request, "case.html", case=found, index=index, message=request.session.pop("said", None)
        )

    @form_change
    async def archive(self, request, login: str, form) -> Response:
        """Archive the case file from its page (the daemon checks it is complete, as the person)."""
        case = request.path_params["case"]
        archived = await self.ask(login, "case_archive", {"case": case})
        request.session["said"] = {"archived": archived["version"]}
        return RedirectResponse(f"/cases/{case}", status_code=303)

    @form_change
    async def export(self, request, login: str, form) -> Response:
        """Make an evidence disc of the case as the person (the daemon makes and verifies it); its
        image and written description wait in this service's folder for their session only."""
        if self.config.state is None:
            return self.render(request, "refused.html", http_status=403, message=i18n.no_export(request))
        from custody.ingestd.client_export import export_through_daemon
        from custody.vault.disc.export import ExportRequest

        case = request.path_params["case"]
        token = secrets.token_urlsafe(16)
        folder = self.config.state / "exports" / token
        folder.mkdir(parents=True, mode=0o700)
        disc = ExportRequest(
            case=case, maker=str(form.get("maker", "")).strip(), extractor=str(form.get("extractor", "")).strip(),
            iso=folder / "case.iso", with_documents=form.get("with_documents") == "1",
        )  # fmt: skip
        try:
            record = await run_in_threadpool(
                export_through_daemon, self.config.socket, disc, lambda _step: None, None, on_behalf_of=login
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # (nothing half-made is left to download)
            raise
        request.session["exports"] = [*request.session.get("exports", [])[-9:], token]
        files = sorted(path.name for path in folder.iterdir())
        return self.render(request, "exported.html", record=record, token=token, files=files, case=case)

    @signed_in
    async def download(self, request, login: str) -> Response:
        """A file of an export this session made (the image, its description)."""
        token, name = request.path_params["token"], request.path_params["name"]
        if token not in request.session.get("exports", []) or self.config.state is None:
            return self.render(request, "refused.html", http_status=404, message=i18n.no_export(request))
        folder = self.config.state / "exports" / token
        path = folder / name
        if path.parent != folder or not path.is_file():
            return self.render(request, "refused.html", http_status=404, message=i18n.no_export(request))
        return FileResponse(path, filename=name)

    @signed_in
    async def findings(self, request, login: str) -> Response:
        gaps = await self.ask(login, "report_gaps", {"open_only": request.query_params.get("all") != "1"})
        missing = await self.ask(login, "report_cases", {"archived": True})
        return self.render(
            request,
            "findings.html",
            gaps=gaps,
            missing=missing["cases"],
            message=request.session.pop("said", None),
        )

    @form_change
    async def explain(self, request, login: str, form) -> Response:
        finding, reason = str(form.get("finding", "")), str(form.get("reason", ""))
        await self.ask(login, "explain", {"finding": finding, "reason": reason})
        request.session["said"] = {"explained": finding}
        return RedirectResponse("/findings", status_code=303)
