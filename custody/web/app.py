"""The web platform: pages for officers, clerks, custodians, auditors and leaders.

It runs as its own unprivileged user ([web] service_user), which cannot read the vault. Every
page asks the daemon through its socket *as the signed-in person* ("on behalf of": only this
service's uid may name one), so roles, confidentiality and the audit chain are the daemon's,
exactly as for the command line; every page a person opens is an ``access`` event there.

Sign-in checks custody's own accounts through the daemon (Argon2 hashes; wrong passwords slowed
and audited there). The session is a signed cookie (HttpOnly, SameSite=Lax, Secure under TLS)
holding the login, a CSRF token and the time of the last request: a session idle longer than
``[web] session_minutes`` is over. Every change (a form POST) carries the session's CSRF token.
Pages are Simplified Chinese by default, English by a switch or the browser's Accept-Language.
"""

from __future__ import annotations

import contextlib
import csv
import hmac
import io
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from custody.errors import CustodyError
from custody.ingestd import api
from custody.vault.items import shown_text
from custody.vault.timestamps import local_display, parse_user_time
from custody.web import i18n

HERE = Path(__file__).parent
PAGE_SIZE = 50


@dataclass(frozen=True)
class WebConfig:
    """What the web service needs to know: the daemon's socket and the [web] settings it serves."""

    socket: Path
    session_minutes: int = 30
    secure_cookies: bool = False  # under TLS
    # The web service's own folder (0700): disc images and descriptions made for a person wait
    # here, each in a folder only their session knows, until downloaded.
    state: Path | None = None


class Daemon:
    """The daemon's socket, asked as the web service or on behalf of a signed-in person."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def ask(self, login: str, op: str, args: dict | None = None) -> object:
        return api.call(self.socket, op, args or {}, timeout=60, on_behalf_of=login)

    def sign_in(self, login: str, password: str) -> dict:
        return api.call(self.socket, "web_sign_in", {"login": login, "password": password}, timeout=30)

    def stream(self, login: str, args: dict) -> Iterator[bytes]:
        """The bytes of a ``stream`` request as they come (the daemon's socket is read in a thread
        of its own); stopping early (the browser went away) closes the request."""
        chunks: queue.Queue = queue.Queue(maxsize=8)
        stop = threading.Event()

        def put(value: object) -> None:
            while not stop.is_set():
                try:
                    chunks.put(value, timeout=0.5)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        def run() -> None:
            try:
                api.call_stream(self.socket, "stream", args, put, timeout=60, on_behalf_of=login)
                put(_END)
            except _Stopped:
                pass
            except Exception as exc:  # said to the reader, in its thread
                with contextlib.suppress(_Stopped):
                    put(exc)

        threading.Thread(target=run, name="web-stream", daemon=True).start()
        try:
            while (chunk := chunks.get()) is not _END:
                if isinstance(chunk, Exception):
                    raise chunk
                yield chunk
        finally:
            stop.set()


_END = object()


class _Stopped(Exception):
    """The browser stopped reading: the daemon's stream is closed."""


def create_app(config: WebConfig, secret: bytes) -> Starlette:
    """The ASGI application; ``secret`` signs the session cookies."""
    daemon = Daemon(config.socket)
    pages = Pages(daemon, config)
    routes = [
        Route("/", pages.today),
        Route("/sign-in", pages.sign_in_form, methods=["GET"]),
        Route("/sign-in", pages.sign_in, methods=["POST"]),
        Route("/sign-out", pages.sign_out, methods=["POST"]),
        Route("/footage", pages.footage),
        Route("/footage/tag", pages.tag, methods=["POST"]),
        Route("/items/{item}", pages.item),
        Route("/items/{item}/playable", pages.playable),
        Route("/cases", pages.cases),
        Route("/cases/{case}", pages.case),
        Route("/cases/{case}/export", pages.export, methods=["POST"]),
        Route("/exports/{token}/{name}", pages.download),
        Route("/findings", pages.findings),
        Route("/findings/explain", pages.explain, methods=["POST"]),
        Route("/audit", pages.audit),
        Route("/reports", pages.reports),
        Route("/reports.csv", pages.reports_csv),
        Route("/registry", pages.registry),
        Route("/language/{code}", pages.language),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret.hex(),
            session_cookie="custody_session",
            max_age=None,  # a browser session; idleness is checked on every request
            same_site="lax",
            https_only=config.secure_cookies,
        )
    ]
    # The daemon's refusals, a daemon not serving, a bad value typed in a form: each a page that says
    # it in one line (CustodyError is the base of them all), never a traceback.
    return Starlette(routes=routes, middleware=middleware, exception_handlers={CustodyError: pages.refused})


class SignInNeeded(Exception):
    pass


class Pages:
    """The pages, each as the signed-in person (see the module's docstring)."""

    def __init__(self, daemon: Daemon, config: WebConfig) -> None:
        self.daemon = daemon
        self.config = config

    async def ask(self, login: str, op: str, args: dict | None = None) -> object:
        """The daemon's answer to ``op`` as ``login``, asked from a worker thread: a slow answer
        never holds up the other people's pages."""
        return await run_in_threadpool(self.daemon.ask, login, op, args)

    # -- sessions ------------------------------------------------------------------------------

    def person(self, request: Request) -> str | None:
        """The signed-in login, or None (no session, or idle past its time: then it is cleared)."""
        session = request.session
        login, seen = session.get("login"), session.get("seen", 0)
        if not login:
            return None
        if time.time() - seen > self.config.session_minutes * 60:
            session.clear()
            return None
        session["seen"] = int(time.time())
        return login

    def check_csrf(self, request: Request, form) -> bool:
        expected = request.session.get("csrf", "")
        given = str(form.get("csrf", ""))
        return bool(expected) and hmac.compare_digest(expected, given)

    def render(self, request: Request, template: str, http_status: int = 200, **context) -> HTMLResponse:
        language = i18n.language_of(request)
        env = i18n.environment(language)
        context.update(
            request=request,
            language=language,
            login=request.session.get("login"),
            roles=request.session.get("roles", []),
            csrf=request.session.get("csrf", ""),
            when=local_display,
            shown=shown_text,
        )
        html = env.get_template(template).render(**context)
        response = HTMLResponse(html, status_code=http_status)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; media-src 'self'; object-src 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def to_sign_in(self) -> RedirectResponse:
        return RedirectResponse("/sign-in", status_code=303)

    async def refused(self, request: Request, exc: CustodyError) -> HTMLResponse:
        """The daemon's refusal (a role, a confidentiality level, a bad value), or the daemon not
        serving (503), said on a page."""
        status = (
            503 if isinstance(exc, api.ApiUnavailable) else {13: 403, 5: 404, 3: 404}.get(exc.exit_code, 400)
        )
        return self.render(request, "refused.html", http_status=status, message=exc.message)

    # -- signing in and out --------------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> Response:
        return self.render(request, "sign_in.html")

    async def sign_in(self, request: Request) -> Response:
        form = await request.form()
        login, password = str(form.get("login", "")).strip(), str(form.get("password", ""))
        try:
            person = await run_in_threadpool(self.daemon.sign_in, login, password)
        except api.ApiError as exc:
            return self.render(
                request, "sign_in.html", http_status=401, message=exc.message, login_tried=login
            )
        request.session.clear()
        request.session.update(
            login=person["login"],
            roles=person["roles"],
            csrf=secrets.token_urlsafe(32),
            seen=int(time.time()),
        )
        return RedirectResponse("/", status_code=303)

    async def sign_out(self, request: Request) -> Response:
        form = await request.form()
        if self.check_csrf(request, form):
            request.session.clear()
        return self.to_sign_in()

    async def language(self, request: Request) -> Response:
        code = request.path_params["code"]
        # Back to the page the switch was on: only a path of this site (never another site's URL).
        back = urlsplit(request.headers.get("referer") or "")
        same_site = back.netloc == request.url.netloc and back.path.startswith("/")
        target = (back.path + (f"?{back.query}" if back.query else "")) if same_site else "/"
        response = RedirectResponse(target if not target.startswith("/language/") else "/", status_code=303)
        if code in i18n.LANGUAGES:
            response.set_cookie("lang", code, max_age=365 * 86400, samesite="lax", httponly=True)
        return response

    # -- pages ---------------------------------------------------------------------------------

    async def today(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        roles = set(request.session.get("roles", []))
        mine = await self.ask(login, "ls") if roles & {"officer", "clerk", "custodian", "auditor"} else []
        status = (
            await self.ask(login, "status") if roles & {"clerk", "custodian", "auditor", "admin"} else None
        )
        cases = await self.ask(login, "report_cases") if roles & {"clerk", "custodian", "auditor"} else None
        late = [item for item in mine if item.get("late")]
        untagged = [
            item for item in mine if not all(item["tags"].get(n) for n in ("case", "party", "officer"))
        ]
        return self.render(
            request, "today.html", items=mine[-10:], count=len(mine), late=late, untagged=untagged,
            status=status, cases=cases,
        )  # fmt: skip

    async def footage(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        query = request.query_params
        filters = {
            "case_prefix": query.get("case") or None,
            "officer": query.get("officer") or None,
            "party_contains": query.get("party") or None,
            "untagged": query.get("untagged") == "1",
            "late": query.get("late") == "1",
        }
        page = int(query["page"]) if query.get("page", "").isdigit() and int(query["page"]) > 0 else 1
        paging = {"limit": PAGE_SIZE + 1, "offset": (page - 1) * PAGE_SIZE, "newest_first": True}
        found = await self.ask(login, "ls", {k: v for k, v in filters.items() if v} | paging)
        kept = {k: v for k, v in query.items() if k != "page"}  # (the filters, for the page links)
        return self.render(
            request, "footage.html", items=found[:PAGE_SIZE], page=page, more=len(found) > PAGE_SIZE,
            filters=query, kept=kept, message=request.session.pop("said", None),
        )  # fmt: skip

    async def tag(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        form = await request.form()
        if not self.check_csrf(request, form):
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_csrf(request))
        items = [str(value) for value in form.getlist("items")]
        values = {name: str(form.get(name, "")).strip() for name in ("case", "party", "officer")}
        request_args = {"items": items} | {name: value for name, value in values.items() if value}
        changed = await self.ask(login, "tag", request_args)
        request.session["said"] = {"tagged": len(changed)}
        return RedirectResponse("/footage", status_code=303)

    async def item(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        found = await self.ask(login, "show", {"item": request.path_params["item"]})
        playable = next((d for d in found["derivatives"] if d["role"] == "playable"), None)
        may_play = bool(set(request.session.get("roles", [])) & PLAYERS)
        return self.render(request, "item.html", item=found, playable=playable if may_play else None)

    async def cases(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        return self.render(request, "cases.html", cases=await self.ask(login, "case_ls"))

    async def case(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        found = await self.ask(login, "case_show", {"case": request.path_params["case"]})
        return self.render(request, "case.html", case=found)

    async def export(self, request: Request) -> Response:
        """Make an evidence disc of the case as the person (the daemon makes and verifies it); its
        image and written description wait in this service's folder for their session only."""
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        form = await request.form()
        if not self.check_csrf(request, form) or self.config.state is None:
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_csrf(request))
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

    async def download(self, request: Request) -> Response:
        """A file of an export this session made (the image, its description)."""
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        token, name = request.path_params["token"], request.path_params["name"]
        if token not in request.session.get("exports", []) or self.config.state is None:
            return self.render(request, "refused.html", http_status=404, message=i18n.no_export(request))
        folder = self.config.state / "exports" / token
        path = folder / name
        if path.parent != folder or not path.is_file():
            return self.render(request, "refused.html", http_status=404, message=i18n.no_export(request))
        return FileResponse(path, filename=name)

    async def findings(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        gaps = await self.ask(login, "report_gaps", {"open_only": request.query_params.get("all") != "1"})
        missing = await self.ask(login, "report_cases", {"archived": True})
        return self.render(
            request,
            "findings.html",
            gaps=gaps,
            missing=missing["cases"],
            message=request.session.pop("said", None),
        )

    async def explain(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        form = await request.form()
        if not self.check_csrf(request, form):
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_csrf(request))
        finding, reason = str(form.get("finding", "")), str(form.get("reason", ""))
        await self.ask(login, "explain", {"finding": finding, "reason": reason})
        request.session["said"] = {"explained": finding}
        return RedirectResponse("/findings", status_code=303)

    async def _officer_months(self, request: Request, login: str) -> tuple[list[dict], str, str]:
        """The leaders' report for the asked period (default: this month so far)."""
        first_of_month = datetime.now().date().replace(day=1).isoformat()
        since = request.query_params.get("from") or first_of_month
        until = request.query_params.get("until") or datetime.now().date().isoformat()
        rows = await self.ask(
            login,
            "report_officers",
            {
                "since": parse_user_time(since, "from"),
                "until": parse_user_time(until, "until", end_of_day=True),
            },
        )
        return rows, since, until

    async def reports(self, request: Request) -> Response:
        """Per officer and month, with a chart of each officer's recordings and the share stored
        within 24 hours (drawn as SVG on the server: no script)."""
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        rows, since, until = await self._officer_months(request, login)
        totals: dict[str, list[int]] = {}
        for row in rows:
            counts = totals.setdefault(row["officer"], [0, 0])
            counts[0] += row["recordings"]
            counts[1] += row["stored_in_time"]
        bars = [
            {"officer": officer, "recordings": n, "in_time": (100 * ok / n) if n else 0.0}
            for officer, (n, ok) in sorted(totals.items())
        ]
        most = max((bar["recordings"] for bar in bars), default=0) or 1
        return self.render(request, "reports.html", rows=rows, bars=bars, most=most, since=since, until=until)

    async def reports_csv(self, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        rows, since, until = await self._officer_months(request, login)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(REPORT_COLUMNS)
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in REPORT_COLUMNS])
        return Response(
            "\ufeff" + out.getvalue(),  # (a BOM: spreadsheet programs then read the Chinese right)
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="custody-officers-{since}-{until}.csv"'},
        )

    async def registry(self, request: Request) -> Response:
        """Officers and recorders with their assignments (changes stay the custodians' commands)."""
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        officers = await self.ask(login, "officer_ls")
        recorders = await self.ask(login, "recorder_ls")
        return self.render(request, "registry.html", officers=officers, recorders=recorders)

    async def audit(self, request: Request) -> Response:
        """The audit chain, newest first, filtered by action or actor (auditors)."""
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        chain = await self.ask(login, "log")
        action, actor = request.query_params.get("action", ""), request.query_params.get("actor", "")
        shown = [
            e for e in reversed(chain)
            if (not action or e["action"] == action) and (not actor or actor in e["actor"])
        ][:AUDIT_PAGE]  # fmt: skip
        return self.render(request, "audit.html", events=shown, total=len(chain), action=action, actor=actor)

    async def playable(self, request: Request) -> Response:
        """The item's playable copy for the browser's own player, with HTTP range requests: only
        the segments holding the bytes asked for are decrypted (a seek costs a segment)."""
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        if not set(request.session.get("roles", [])) & PLAYERS:
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_role(request))
        found = await self.ask(login, "show", {"item": request.path_params["item"]})
        copy = next((d for d in found["derivatives"] if d["role"] == "playable"), None)
        if copy is None or copy["size"] == 0:
            return self.render(request, "refused.html", http_status=404, message=i18n.no_playable(request))
        size = copy["size"]
        asked = byte_range(request.headers.get("range"), size)
        if asked is False:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        first, last = asked or (0, size - 1)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(last - first + 1),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        if asked:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        args = {"ref": found["id"], "role": "playable"}
        if asked:  # (the whole copy is re-hashed as it goes; a range is authenticated segment by segment)
            args |= {"first": first, "last": last}
        return StreamingResponse(
            self.daemon.stream(login, args), status_code=206 if asked else 200, headers=headers,
            media_type="video/mp4",
        )  # fmt: skip


PLAYERS = {"officer", "clerk"}  # who may view footage itself (access.ALLOWED["cat"])


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The one byte range an HTTP Range header asks of ``size`` bytes: (first, last); None when
    there is no (usable) header (the whole is sent); False when it is unsatisfiable (416)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, _, last_text = header[6:].strip().partition("-")
    try:
        if not first_text:  # the last N bytes
            count = int(last_text)
            return (max(0, size - count), size - 1) if count > 0 else False
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    except ValueError:
        return None
    return (first, last) if 0 <= first <= last and first < size else False


AUDIT_PAGE = 200  # events per page of the audit chain, newest first
REPORT_COLUMNS = (
    "officer", "month", "recordings", "hours", "stored_in_time", "stored_late", "stored_in_time_percent",
    "interruptions_found", "interruptions_explained", "cases_archived_on_time", "cases_archived_late",
)  # fmt: skip


def load_secret(path: Path) -> bytes:
    """The key that signs session cookies: read from ``path``, made there (0600) the first time."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_bytes(32)
    fd = os_open_private(path)
    with open(fd, "w") as out:
        out.write(secret.hex())
    return secret


def os_open_private(path: Path) -> int:
    import os

    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
