"""The daemon's API socket: people reach the vault through it, as themselves.

A Unix stream socket (``<home>/api.sock`` by default, ``[access] socket``),
mode 0660, group ``[access] socket_group``: the group decides who may
connect at all. Each connection carries one request, a JSON object on one
line (``{"op": "whoami", "args": {}}``), and gets one JSON line back
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ..., "exit_code": N}``).
The caller is who the kernel says is at the other end (SO_PEERCRED: uid, gid,
pid); nothing in the request names the caller.

Limits, so one client cannot disturb the others: a request line of at most
64 KiB, read within ``request_timeout_seconds``; at most
``max_requests_per_second`` per uid (a burst of twice that); every request is
served in its own thread and its failure ends only that connection.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from custody.errors import CustodyError
from custody.vault.access import Caller, RoleMap, identify

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

Handler = Callable[[Caller, dict], object]


class ApiUnavailable(CustodyError):
    """cannot reach the custody daemon at {path}: {why}"""

    exit_code = 7


class ApiError(CustodyError):
    """{message}"""

    exit_code = 2


class _RateLimit:
    """A token bucket per uid: ``rate`` requests a second, bursts of twice that."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, uid: int) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(uid, (2 * self.rate, now))
            tokens = min(2 * self.rate, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[uid] = (tokens, now)
                return False
            self._buckets[uid] = (tokens - 1, now)
            return True


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False


class ApiServer:
    """Serves ``handlers`` (op -> function of (caller, args)) on a Unix socket until stopped."""

    def __init__(
        self,
        path: Path,
        handlers: dict[str, Handler],
        role_map: RoleMap,
        owner_uid: int,
        group: str = "",
        request_timeout: float = 10.0,
        max_requests_per_second: float = 50.0,
    ) -> None:
        self.path = path
        self.handlers = handlers
        self.role_map = role_map
        self.owner_uid = owner_uid
        self.group = group
        self.request_timeout = request_timeout
        self._limit = _RateLimit(max_requests_per_second)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (replacing a stale one), set its group and mode, serve in a thread.

        Raise ApiUnavailable when another daemon answers on it or the group is unknown.
        """
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise ApiUnavailable(path=self.path, why="another custody daemon is serving it")
            self.path.unlink()
        gid = -1
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError as exc:
                raise ApiUnavailable(
                    path=self.path, why=f"no group {self.group!r} ([access] socket_group): create it first"
                ) from exc
        api = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                api._serve(self.request)

        old_umask = os.umask(0o177)  # the socket is born 0600; opened to its group below
        try:
            self._server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old_umask)
        os.chown(self.path, -1, gid)
        os.chmod(self.path, 0o660 if self.group else 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
        self._thread.start()
        log.info("API socket %s (group %s)", self.path, self.group or "none: the vault's user only")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)

    def _serve(self, connection: socket.socket) -> None:
        pid, uid, gid = _PEERCRED.unpack(
            connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        caller = identify(uid, gid, pid, self.role_map, self.owner_uid)
        connection.settimeout(self.request_timeout)
        try:
            reply = self._answer(caller, connection)
        except TimeoutError:
            reply = _error(f"no whole request within {self.request_timeout:g} s", 2)
        except OSError:
            return  # the client went away
        with contextlib.suppress(OSError):  # the client went away
            connection.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")

    def _answer(self, caller: Caller, connection: socket.socket) -> dict:
        line = _read_line(connection, MAX_REQUEST_BYTES)
        if line is None:
            return _error(f"request larger than {MAX_REQUEST_BYTES} bytes", 2)
        if not line.endswith(b"\n"):
            return _error("request cut off before its end of line", 2)
        if not self._limit.allow(caller.uid):
            return _error("too many requests: slow down and try again", 7)
        try:
            request = json.loads(line)
        except ValueError:
            return _error("request is not JSON", 2)
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return _error('request must be a JSON object with an "op"', 2)
        args = request.get("args", {})
        if not isinstance(args, dict):
            return _error('"args" must be a JSON object', 2)
        handler = self.handlers.get(request["op"])
        if handler is None:
            return _error(f"unknown request {request['op']!r}", 2)
        try:
            return {"ok": True, "result": handler(caller, args)}
        except CustodyError as exc:
            return _error(exc.message, exc.exit_code)
        except Exception as exc:  # one request's bug must not stop the daemon serving others
            log.exception("API request %s by %s failed", request["op"], caller.name)
            return _error(f"internal error: {type(exc).__name__}", 1)


def _error(message: str, exit_code: int) -> dict:
    return {"ok": False, "error": message, "exit_code": exit_code}


def _read_line(connection: socket.socket, limit: int) -> bytes | None:
    """Read up to and including a newline; None when more than ``limit`` bytes come first."""
    data = bytearray()
    while True:
        chunk = connection.recv(4096)
        if not chunk:
            return bytes(data)
        newline = chunk.find(b"\n")
        if newline >= 0:
            data += chunk[: newline + 1]
            return bytes(data) if len(data) <= limit else None
        data += chunk
        if len(data) > limit:
            return None


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def call(path: Path, op: str, args: dict | None = None, timeout: float = 60.0) -> object:
    """Send one request to the daemon at ``path``; return its result.

    Raise ApiUnavailable when nothing serves there or the caller may not
    connect, ApiError (with the daemon's message and exit code) on a refusal.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        try:
            connection.connect(str(path))
        except PermissionError as exc:
            raise ApiUnavailable(
                path=path, why="permission denied: ask the custodian to add you to the socket's group"
            ) from exc
        except OSError as exc:
            raise ApiUnavailable(path=path, why=exc.strerror or str(exc)) from exc
        connection.sendall(json.dumps({"op": op, "args": args or {}}).encode() + b"\n")
        line = _read_line(connection, 64 * 1024 * 1024)
    finally:
        connection.close()
    try:
        reply = json.loads(line or b"")
    except ValueError as exc:
        raise ApiUnavailable(path=path, why="the daemon closed the connection without an answer") from exc
    if not reply.get("ok"):
        error = ApiError(message=reply.get("error", "refused"))
        error.exit_code = int(reply.get("exit_code", 2))
        raise error
    return reply.get("result")


def is_served(path: Path) -> bool:
    """Whether something listens on ``path`` (connecting may still be refused to this caller)."""
    try:
        return path.is_socket()
    except OSError:
        return False
