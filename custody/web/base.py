"""What every page of the web platform stands on: its configuration, the daemon asked as the
signed-in person, the session (idle expiry, CSRF), rendering in the person's language, and the
two decorators every handler wears (``signed_in`` for a page, ``form_change`` for a change)."""

from __future__ import annotations

import contextlib
import functools
import hmac
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from custody.errors import CustodyError, Said, UsageError
from custody.ingestd import api
from custody.vault.items import shown_text
from custody.vault.timestamps import local_display
from custody.web import i18n


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


def signed_in(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A page for a signed-in person: ``handler(self, request, login)``; anyone else is sent to
    the sign-in page."""

    @functools.wraps(handler)
    async def page(self: PageBase, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        return await handler(self, request, login)

    return page


def form_change(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A change (a form POST) by a signed-in person: ``handler(self, request, login, form)``, run
    only when the form carries this session's CSRF token (else refused, 403)."""

    @functools.wraps(handler)
    async def change(self: PageBase, request: Request) -> Response:
        login = self.person(request)
        if login is None:
            return self.to_sign_in()
        form = await request.form()
        if not self.check_csrf(request, form):
            return self.render(request, "refused.html", http_status=403, message=i18n.refusal_csrf(request))
        return await handler(self, request, login, form)

    return change


class PageBase:
    """The session and rendering every page shares (see the module's docstring)."""

    def __init__(self, daemon: Daemon, config: WebConfig) -> None:
        self.daemon = daemon
        self.config = config

    async def ask(self, login: str, op: str, args: dict | None = None) -> object:
        """The daemon's answer to ``op`` as ``login``, asked from a worker thread: a slow answer
        never holds up the other people's pages."""
        return await run_in_threadpool(self.daemon.ask, login, op, args)

    def read_item(self, login: str, ref: str, limit: int) -> bytes:
        """The whole of a small item (a case file's signed record) as ``login`` sees it, read in a
        worker thread; raise UsageError when it is larger than ``limit``."""
        chunks, size = [], 0
        for chunk in self.daemon.stream(login, {"ref": ref}):
            size += len(chunk)
            if size > limit:
                raise UsageError(
                    reason=Said(
                        "{ref} is larger than {limit} bytes: open it with 'custody extract'",
                        ref=ref,
                        limit=limit,
                    )
                )
            chunks.append(chunk)
        return b"".join(chunks)

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
