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

import collections
import itertools
import os
import secrets
import time
from datetime import date, datetime
from pathlib import Path, PurePath
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from custody.errors import CustodyError
from custody.ingestd import api
from custody.vault.access import ALLOWED
from custody.vault.timestamps import parse_user_time, to_text
from custody.web import i18n
from custody.web.base import Daemon, WebConfig, form_change, signed_in
from custody.web.casework import CasePages
from custody.web.i18n import N_
from custody.web.leaders import LeaderPages

HERE = Path(__file__).parent
PAGE_SIZE = 50
# Who may watch footage itself, list it, take it out: the daemon's own table (it decides; the pages
# only leave out what would be refused).
PLAYERS, VIEWERS, DOWNLOADERS = set(ALLOWED["cat"]), set(ALLOWED["ls"]), set(ALLOWED["extract"])
PREVIEWED = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
TODAY_LIMIT = 100  # the Today page counts late and untagged footage up to this ("100+")

__all__ = ["Daemon", "WebConfig", "create_app", "load_secret"]


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
        Route("/items/{item}/download", pages.download_item),
        Route("/items/{item}/preview", pages.preview),
        Route("/items/{item}/thumbnail", pages.thumbnail),
        Route("/cases", pages.cases),
        Route("/cases/{case}", pages.case),
        Route("/cases/{case}/export", pages.export, methods=["POST"]),
        Route("/cases/{case}/archive", pages.archive, methods=["POST"]),
        Route("/exports/{token}/{name}", pages.download),
        Route("/findings", pages.findings),
        Route("/findings/explain", pages.explain, methods=["POST"]),
        Route("/audit", pages.audit),
        Route("/reports", pages.reports),
        Route("/reports.csv", pages.reports_csv),
        Route("/reports.xlsx", pages.reports_xlsx),
        Route("/supervision", pages.supervision),
        Route("/supervision/draw", pages.draw, methods=["POST"]),
        Route("/supervision/{sample}", pages.sample),
        Route("/supervision/{sample}/rate", pages.rate, methods=["POST"]),
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


class SizeCache:
    """The sizes of playable copies a person's player asked for (a copy never changes), the most
    recent ``capacity`` of them."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._sizes: collections.OrderedDict = collections.OrderedDict()

    def get(self, key: tuple[str, str]) -> tuple[str, int] | None:
        found = self._sizes.get(key)
        if found is not None:
            self._sizes.move_to_end(key)
        return found

    def put(self, key: tuple[str, str], value: tuple[str, int]) -> tuple[str, int]:
        self._sizes[key] = value
        while len(self._sizes) > self.capacity:
            self._sizes.popitem(last=False)
        return value


class Pages(CasePages, LeaderPages):
    """The pages, each as the signed-in person (see the module's docstring)."""

    def __init__(self, daemon: Daemon, config: WebConfig) -> None:
        super().__init__(daemon, config)
        self.playable_sizes = SizeCache()

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

    @signed_in
    async def today(self, request: Request, login: str) -> Response:
        """What needs doing, per role: footage recorded today, late and untagged footage (counted
        to TODAY_LIMIT), findings and disk space, cases near their deadlines; for a supervisor the
        samples not yet rated; for an officer the ratings of their own footage."""
        roles = set(request.session.get("roles", []))
        newest, today, late, untagged, status, cases, samples, ratings = [], [], [], [], None, None, [], []
        if roles & VIEWERS:
            start = to_text(datetime.combine(date.today(), datetime.min.time()).astimezone())
            newest = await self.ask(login, "ls", {"limit": 10, "newest_first": True})
            today = await self.ask(login, "ls", {"since": start, "limit": TODAY_LIMIT + 1})
            late = await self.ask(login, "ls", {"late": True, "limit": TODAY_LIMIT + 1, "newest_first": True})
            untagged = await self.ask(login, "ls", {"untagged": True, "limit": TODAY_LIMIT + 1})
        if roles & {"clerk", "custodian", "auditor", "admin"}:
            status = await self.ask(login, "status")
        if roles & {"clerk", "custodian", "auditor"}:
            cases = await self.ask(login, "report_cases")
        if "supervisor" in roles:
            listed = await self.ask(login, "supervise_ls")
            samples = [s for s in listed["samples"] if s["rated"] < len(s["reviews"])]
        if "officer" in roles:
            ratings = (await self.ask(login, "supervise_results"))[:10]
        return self.render(
            request, "today.html", items=newest, today=today, late=late, untagged=untagged, status=status,
            cases=cases, samples=samples, ratings=ratings, limit=TODAY_LIMIT,
        )  # fmt: skip

    @signed_in
    async def footage(self, request: Request, login: str) -> Response:
        query = request.query_params
        filters = {
            "case_prefix": query.get("case") or None,
            "officer": query.get("officer") or None,
            "party_contains": query.get("party") or None,
            "recorder": query.get("recorder") or None,
            "untagged": query.get("untagged") == "1",
            "late": query.get("late") == "1",
            "damaged": query.get("damaged") == "1",
            "important": query.get("important") == "1",
            "since": parse_user_time(query["from"], i18n.text(request, N_("From")))
            if query.get("from")
            else None,
            "until": (
                parse_user_time(query["until"], i18n.text(request, N_("Until")), end_of_day=True)
                if query.get("until")
                else None
            ),
        }
        page = int(query["page"]) if query.get("page", "").isdigit() and int(query["page"]) > 0 else 1
        paging = {"limit": PAGE_SIZE + 1, "offset": (page - 1) * PAGE_SIZE, "newest_first": True}
        found = await self.ask(login, "ls", {k: v for k, v in filters.items() if v} | paging)
        kept = {k: v for k, v in query.items() if k != "page"}  # (the filters, for the page links)
        return self.render(
            request, "footage.html", items=found[:PAGE_SIZE], page=page, more=len(found) > PAGE_SIZE,
            filters=query, kept=kept, message=request.session.pop("said", None),
        )  # fmt: skip

    @form_change
    async def tag(self, request: Request, login: str, form) -> Response:
        items = [str(value) for value in form.getlist("items")]
        values = {name: str(form.get(name, "")).strip() for name in ("case", "party", "officer")}
        request_args = {"items": items} | {name: value for name, value in values.items() if value}
        category = str(form.get("category", "")).strip()
        if category:  # (a retention category such as penalty_evidence: the daemon checks it exists)
            request_args["categories"] = [category]
        changed = await self.ask(login, "tag", request_args)
        request.session["said"] = {"tagged": len(changed)}
        back = f"/items/{items[0]}" if form.get("back") == "item" and len(items) == 1 else "/footage"
        return RedirectResponse(back, status_code=303)

    @signed_in
    async def item(self, request: Request, login: str) -> Response:
        """An item: the player, its facts, findings, ratings, tag and audit history; tagging and
        explaining for clerks; downloads for who may take footage out; with ``?sample=``, the
        supervisor's rating form beside the player."""
        found = await self.ask(login, "show", {"item": request.path_params["item"]})
        playable = next((d for d in found["derivatives"] if d["role"] == "playable"), None)
        roles = set(request.session.get("roles", []))
        sample = None
        if request.query_params.get("sample") and "supervisor" in roles:
            sample = await self.ask(login, "supervise_show", {"sample": request.query_params["sample"]})
        return self.render(
            request, "item.html", item=found, playable=playable if roles & PLAYERS else None, sample=sample,
            may_download=bool(roles & DOWNLOADERS), message=request.session.pop("said", None),
        )  # fmt: skip

    @signed_in
    async def thumbnail(self, request: Request, login: str) -> Response:
        """An item's thumbnail (a frame, JPEG) for the footage table; 404 when it has none. Each is a
        ``view`` in the audit chain, as any look at footage is."""
        if not set(request.session.get("roles", [])) & PLAYERS:
            return Response(status_code=403)
        chunks = self.daemon.stream(login, {"ref": request.path_params["item"], "role": "thumbnail"})
        try:  # (the first bytes before the answer: a missing thumbnail is a 404, not a broken image)
            first = await run_in_threadpool(next, chunks, b"")
        except CustodyError:
            return Response(status_code=404)
        return StreamingResponse(
            itertools.chain([first], chunks), media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    @signed_in
    async def preview(self, request: Request, login: str) -> Response:
        """A written record (PDF, JPEG, PNG) shown in the browser, decrypted and verified as it goes
        (a ``view`` in the audit chain); other kinds are downloaded instead."""
        if not set(request.session.get("roles", [])) & PLAYERS:
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_role(request))
        found = await self.ask(login, "show", {"item": request.path_params["item"]})
        media_type = PREVIEWED.get(PurePath(found["name"]).suffix.lower())
        if media_type is None:
            return self.render(request, "refused.html", http_status=404, message=i18n.no_preview(request))
        return StreamingResponse(
            self.daemon.stream(login, {"ref": found["id"]}), media_type=media_type,
            headers={"Content-Length": str(found["size"]), "Cache-Control": "no-store",
                     "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"},
        )  # fmt: skip

    @signed_in
    async def download_item(self, request: Request, login: str) -> Response:
        """The original (or ``?copy=playable``) as a file, decrypted and verified as it goes; the
        daemon records an ``extract`` naming the browser as where it went."""
        if not set(request.session.get("roles", [])) & DOWNLOADERS:
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_role(request))
        found = await self.ask(login, "show", {"item": request.path_params["item"]})
        role = "playable" if request.query_params.get("copy") == "playable" else None
        wanted = next((d for d in found["derivatives"] if d["role"] == role), None) if role else found
        if wanted is None:
            return self.render(request, "refused.html", http_status=404, message=i18n.no_playable(request))
        name = f"{found['id']}-{'playable.mp4' if role else PurePath(found['name']).name or 'original'}"
        args = {"ref": found["id"], "role": role, "to": f"a download through the web platform ({name})"}
        return StreamingResponse(
            self.daemon.stream(login, args), media_type="application/octet-stream",
            headers={"Content-Length": str(wanted["size"]), "Content-Disposition": content_disposition(name),
                     "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    @signed_in
    async def playable(self, request: Request, login: str) -> Response:
        """The item's playable copy for the browser's own player, with HTTP range requests: only
        the segments holding the bytes asked for are decrypted (a seek costs a segment)."""
        if not set(request.session.get("roles", [])) & PLAYERS:
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_role(request))
        known = self.playable_sizes.get((login, request.path_params["item"]))
        if known is None:  # (a player asks range after range: the copy's size is asked for once)
            found = await self.ask(login, "show", {"item": request.path_params["item"]})
            copy = next((d for d in found["derivatives"] if d["role"] == "playable"), None)
            if copy is None or copy["size"] == 0:
                return self.render(
                    request, "refused.html", http_status=404, message=i18n.no_playable(request)
                )
            known = self.playable_sizes.put((login, request.path_params["item"]), (found["id"], copy["size"]))
        item_id, size = known
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
        args = {"ref": item_id, "role": "playable"}  # (the daemon authorizes every range it sends)
        if asked:  # (the whole copy is re-hashed as it goes; a range is authenticated segment by segment)
            args |= {"first": first, "last": last}
        return StreamingResponse(
            self.daemon.stream(login, args), status_code=206 if asked else 200, headers=headers,
            media_type="video/mp4",
        )  # fmt: skip


def content_disposition(name: str) -> str:
    """An attachment header for any file name (a recorder's, in any script): ASCII fallback and
    RFC 5987's UTF-8 form; quotes and control characters cannot break out of it."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


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
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
