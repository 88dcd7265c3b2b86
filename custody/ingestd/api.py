"""The daemon's API socket: people reach the vault through it, as themselves.

A Unix stream socket (``<home>/api.sock`` by default, ``[access] socket``),
mode 0660, group ``[access] socket_group``: the group decides who may
connect at all. Each connection carries one request, a JSON object on one
line (``{"v": 2, "op": "whoami", "args": {}}``; see docs/protocol.md), and gets one JSON line back
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ..., "exit_code": N}``).
The caller is who the kernel says is at the other end (SO_PEERCRED: uid, gid,
pid); nothing in the request names the caller.

A client that asks for it (``"progress": true`` in the request) may get
progress lines before the answer, ``{"progress": {...}}``: a long command
(verify, making a disc) tells it how far it is, as it would at a terminal
(see ``progress_sender``).

Answers that are bytes (extract, an export's files) come back as a
``Stream``; requests that bring bytes (a client's own files to ingest) get an
``Upload`` answer, after which client and daemon converse over the same
connection (see ``Upload``).

Limits, so one client cannot disturb the others: a request line of at most
64 KiB, read within ``request_timeout_seconds`` (every later read of an upload
too: a client that stalls is dropped); at most ``max_requests_per_second``
per uid (a burst of twice that); at most ``max_connections_per_user``
connections served at once per uid and ``max_connections`` in all (more are
refused at once, without a thread); every request is served in its own
thread and its failure ends only that connection.
"""

from __future__ import annotations

import contextlib
import contextvars
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

from custody.errors import CustodyError, Said, cannot_write, is_write_problem
from custody.ingestd.api_errors import ApiError, error_reply, refusal
from custody.vault.access import Caller, RoleMap, identify
from custody.vault.new_files import new_file

log = logging.getLogger(__name__)

# The protocol's version (docs/protocol.md): 2 is named operations with typed requests;
# 1 had a "run" operation that replayed a command line in the daemon.
PROTOCOL_VERSION = 3
MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 256 * 1024 * 1024  # what a client accepts in one answer line (an ls of many items)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

Handler = Callable[[Caller, dict], object]
_FRAME = struct.Struct(">I")  # a stream chunk's length; 0 ends the stream
STREAM_CHUNK = 1 << 20
STREAM_SEND_BUFFER = 4 << 20
_ABANDON = 0xFFFFFFFF  # in place of a chunk's length: the sender gives up this stream (a reason line follows)


class Stream:
    """A handler's answer that is bytes: ``produce(write)`` writes them and returns the final result.

    On the wire: a JSON line ``{"ok": true, "stream": true}``, then chunks
    (4-byte big-endian length, bytes), a zero length, then the final JSON line
    (``ok`` false when producing failed part way). Nothing is held in memory
    beyond one chunk.
    """

    def __init__(self, produce: Callable[[Callable[[bytes], None]], object]) -> None:
        self.produce = produce


class Upload:
    """A handler's answer that takes bytes from the client: ``receive(channel)`` converses and returns
    the final result.

    On the wire: the daemon answers the request with ``{"ok": true, "send": true, ...offer}``;
    then the client sends messages (JSON lines of at most 64 KiB), and after a
    message that announces bytes, those bytes as chunks framed as in ``Stream``
    (a zero length ends them; a length of 0xFFFFFFFF abandons them, followed by
    a JSON line ``{"reason": ...}``). The daemon answers each message with a
    JSON line, and ends with the final JSON line as for any request. What the
    messages are is the handler's business (``Channel``).
    """

    def __init__(self, receive: Callable[[Channel], object], offer: dict | None = None) -> None:
        self.receive = receive
        self.offer = offer or {}


class UploadBroken(Exception):
    """The client stopped sending (closed the connection, stalled past the timeout, broke the framing)."""


class StreamAbandoned(Exception):
    """The client gave up a stream part way (its file changed or could not be read); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Channel:
    """The daemon's side of an upload conversation: read the client's messages and bytes, answer."""

    def __init__(self, reader, connection: socket.socket) -> None:
        self._reader = reader
        self._connection = connection

    def message(self) -> dict:
        """The client's next message; raise UploadBroken when none comes whole."""
        try:
            line = _read_line(self._reader, MAX_REQUEST_BYTES)
        except OSError as exc:
            raise UploadBroken(f"the client stopped sending ({exc.strerror or type(exc).__name__})") from exc
        if not line or not line.endswith(b"\n"):
            raise UploadBroken("the client closed the connection" if not line else "a message was cut off")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise UploadBroken("a message was not JSON") from exc
        if not isinstance(message, dict):
            raise UploadBroken("a message was not a JSON object")
        return message

    def incoming(self) -> IncomingBytes:
        """The bytes that follow the last message, as a binary file to ``read``."""
        return IncomingBytes(self)

    def answer(self, result: object) -> None:
        self._connection.sendall(_line({"ok": True, "result": result}))

    def read_exactly(self, size: int) -> bytes:
        """``size`` bytes of the client's; raise UploadBroken when they do not all come."""
        try:
            data = self._reader.read(size)
        except OSError as exc:
            raise UploadBroken(f"the client stopped sending ({exc.strerror or type(exc).__name__})") from exc
        if len(data) != size:
            raise UploadBroken("the client closed the connection in the middle of a stream")
        return data


class IncomingBytes:
    """One framed byte stream from the client, read like a binary file: ``read`` returns b"" at its end.

    Raise StreamAbandoned when the client abandons it, UploadBroken when the
    client goes away or breaks the framing (a chunk larger than 1 MiB).
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._left = 0
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        if self._ended:
            return b""
        if self._left == 0:
            length = _FRAME.unpack(self._channel.read_exactly(_FRAME.size))[0]
            if length == 0:
                self._ended = True
                return b""
            if length == _ABANDON:
                reason = self._channel.message().get("reason")
                raise StreamAbandoned(str(reason or "the client gave up sending"))
            if length > STREAM_CHUNK:
                raise UploadBroken(f"a chunk of {length} bytes (at most {STREAM_CHUNK})")
            self._left = length
        wanted = self._left if size < 0 else min(size, self._left)
        data = self._channel.read_exactly(wanted)
        self._left -= len(data)
        return data

    def drain(self) -> None:
        """Read and drop what is left of the stream (after the receiver failed part way), so the
        conversation can go on."""
        try:
            while self.read(STREAM_CHUNK):
                pass
        except StreamAbandoned:
            pass


class _ProgressLines:
    """Progress lines to the client of the request being served: from any thread, each whole.

    A client that went away or stopped reading is not the request's failure:
    the lines stop and the request runs on, as it would unwatched.
    """

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._gone = False

    def __call__(self, progress: dict) -> None:
        with self._lock:
            if self._gone:
                return
            try:
                self._connection.sendall(_line({"progress": progress}))
            except OSError:
                self._gone = True


_PROGRESS: contextvars.ContextVar[_ProgressLines | None] = contextvars.ContextVar("progress", default=None)


def progress_sender() -> Callable[[dict], None] | None:
    """How the request being served (this thread's) tells its client how far it is, one JSON
    object per call; None when the client did not ask for progress or no request is served."""
    return _PROGRESS.get()


class ApiUnavailable(CustodyError):
    """cannot reach the custody daemon at {path}: {why}"""

    exit_code = 7


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


class _ConnectionLimits:
    """How many connections are being served, per uid and in all, against their caps."""

    def __init__(self, per_uid: int, total: int) -> None:
        self.per_uid = per_uid
        self.total = total
        self._open: dict[int, int] = {}
        self._lock = threading.Lock()

    def acquire(self, uid: int) -> bool:
        with self._lock:
            if sum(self._open.values()) >= self.total or self._open.get(uid, 0) >= self.per_uid:
                return False
            self._open[uid] = self._open.get(uid, 0) + 1
            return True

    def release(self, uid: int) -> None:
        with self._lock:
            left = self._open.get(uid, 0) - 1
            if left > 0:
                self._open[uid] = left
            else:
                self._open.pop(uid, None)

    def serving(self) -> int:
        with self._lock:
            return sum(self._open.values())


def _peer(connection: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel tells it."""
    return _PEERCRED.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False  # stopping never waits for a stalled client or a long stream
    allow_reuse_address = False
    limits = _ConnectionLimits(16, 128)

    def process_request(self, request, client_address) -> None:
        """Serve in a new thread, unless the caller or everyone is at the cap: then refuse at once."""
        _pid, uid, _gid = _peer(request)
        if not self.limits.acquire(uid):
            log.warning("refused a connection from uid %d: too many open connections", uid)
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(_line(error_reply("too many connections open: close some and try again", 7)))
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.limits.release(uid)
            raise

    def process_request_thread(self, request, client_address) -> None:
        uid = _peer(request)[1]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.limits.release(uid)


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
        max_connections_per_user: int = 16,
        max_connections: int = 128,
        delegate: Callable[[Caller, object], Caller] | None = None,
    ) -> None:
        self.path = path
        # Who a request "on behalf of" someone is served as (custody.ingestd.delegation).
        self.delegate = delegate
        self.handlers = handlers
        self.role_map = role_map
        self.owner_uid = owner_uid
        self.group = group
        self.request_timeout = request_timeout
        self._limit = _RateLimit(max_requests_per_second)
        self.connections = _ConnectionLimits(max_connections_per_user, max_connections)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._owns_path = True

    def reconfigure(
        self,
        handlers: dict[str, Handler],
        role_map: RoleMap,
        request_timeout: float,
        max_requests_per_second: float,
        max_connections_per_user: int,
        max_connections: int,
    ) -> None:
        """Take a reloaded config (SIGHUP): roles, limits and handlers hold from the next request on.
        The socket, its group and the requests being served are left as they are."""
        self.handlers = handlers
        self.role_map = role_map
        self.request_timeout = request_timeout
        self._limit.rate = max_requests_per_second
        with self.connections._lock:
            self.connections.per_uid, self.connections.total = max_connections_per_user, max_connections

    def start(self) -> None:
        """Serve in a thread: on the socket systemd passed (socket activation), else on one bound here.

        Bind replaces a stale socket file and sets the group and mode. Raise
        ApiUnavailable when another daemon answers on it or the group is unknown.
        """
        api = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                api._serve(self.request)

        inherited = systemd_listen_fd()
        if inherited is not None:
            self._server = _Server(str(self.path), _Handler, bind_and_activate=False)
            self._server.limits = self.connections
            self._server.socket.close()
            self._server.socket = socket.socket(fileno=inherited)
            self._owns_path = False
            self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
            self._thread.start()
            log.info("API socket from systemd (fd %d)", inherited)
            return
        if self.path.exists() or self.path.is_symlink():
            if answers(self.path):
                raise ApiUnavailable(path=self.path, why="another custody daemon is serving it")
            self.path.unlink()
        gid = -1
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError as exc:
                raise ApiUnavailable(
                    path=self.path,
                    why=Said("no group {group!r} ([access] socket_group): create it first", group=self.group),
                ) from exc
        old_umask = os.umask(0o177)  # the socket is born 0600; opened to its group below
        try:
            self._server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old_umask)
        self._server.limits = self.connections
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
        if self._owns_path:
            self.path.unlink(missing_ok=True)

    def _serve(self, connection: socket.socket) -> None:
        pid, uid, gid = _peer(connection)
        caller = identify(uid, gid, pid, self.role_map, self.owner_uid)
        connection.settimeout(self.request_timeout)
        reader = connection.makefile("rb")
        try:
            reply = self._answer(caller, reader, connection)
        except TimeoutError:
            reply = error_reply(f"no whole request within {self.request_timeout:g} s", 2)
        except OSError:
            return  # the client went away
        with contextlib.suppress(OSError):  # the client went away
            if isinstance(reply, Stream):
                self._send_stream(connection, reply)
            elif isinstance(reply, Upload):
                self._receive_upload(connection, reader, reply, caller)
            else:
                connection.sendall(_line(reply))

    def _receive_upload(self, connection: socket.socket, reader, upload: Upload, caller: Caller) -> None:
        connection.sendall(_line({"ok": True, "send": True, **upload.offer}))
        try:
            final = {"ok": True, "result": upload.receive(Channel(reader, connection))}
        except UploadBroken as exc:
            log.warning("upload by %s ended: %s", caller.name, exc)
            final = error_reply(f"upload ended: {exc}", 2)
        except CustodyError as exc:
            final = refusal(exc)
        except OSError:
            raise
        except Exception as exc:
            log.exception("API upload by %s failed", caller.name)
            final = error_reply(f"internal error: {type(exc).__name__}", 1)
        connection.sendall(_line(final))

    def _send_stream(self, connection: socket.socket, stream: Stream) -> None:
        connection.settimeout(None)  # a slow reader slows only its own stream
        # Room for the daemon to decrypt ahead while the client writes (the kernel caps it at
        # net.core.wmem_max): with the default ~208 KiB each side kept waiting for the other,
        # a 1 GiB extract ran at 0.78-0.96x of in-process, 0.98-0.99x with 4 MiB.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        connection.sendall(_line({"ok": True, "stream": True}))

        def write(data: bytes) -> None:
            view = memoryview(data)
            for start in range(0, len(view), STREAM_CHUNK):
                piece = view[start : start + STREAM_CHUNK]
                connection.sendall(_FRAME.pack(len(piece)))
                connection.sendall(piece)

        try:
            final = {"ok": True, "result": stream.produce(write)}
        except CustodyError as exc:
            final = refusal(exc)
        except OSError:
            raise
        except Exception as exc:
            log.exception("API stream failed")
            final = error_reply(f"internal error: {type(exc).__name__}", 1)
        connection.sendall(_FRAME.pack(0))
        connection.sendall(_line(final))

    def _answer(self, caller: Caller, reader, connection: socket.socket) -> dict | Stream | Upload:
        line = _read_line(reader, MAX_REQUEST_BYTES)
        if line is None:
            return error_reply(f"request larger than {MAX_REQUEST_BYTES} bytes", 2)
        if not line.endswith(b"\n"):
            return error_reply("request cut off before its end of line", 2)
        if not self._limit.allow(caller.uid):
            return error_reply("too many requests: slow down and try again", 7)
        try:
            request = json.loads(line)
        except ValueError:
            return error_reply("request is not JSON", 2)
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return error_reply('request must be a JSON object with an "op"', 2)
        version = request.get("v", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            return error_reply(
                f"this daemon speaks protocol {PROTOCOL_VERSION}, the request protocol {version!r}: "
                "use the custody command of the same version as the daemon",
                2,
            )
        args = request.get("args", {})
        if not isinstance(args, dict):
            return error_reply('"args" must be a JSON object', 2)
        handler = self.handlers.get(request["op"])
        if handler is None:
            return error_reply(f"unknown request {request['op']!r}", 2)
        if "on_behalf_of" in request:
            if self.delegate is None:
                return error_reply("this daemon serves no one on behalf of another", 13)
            try:
                caller = self.delegate(caller, request["on_behalf_of"])
            except CustodyError as exc:
                return refusal(exc)
        progress = _PROGRESS.set(_ProgressLines(connection) if request.get("progress") is True else None)
        try:
            result = handler(caller, args)
            return result if isinstance(result, (Stream, Upload)) else {"ok": True, "result": result}
        except CustodyError as exc:
            return refusal(exc)
        except Exception as exc:  # one request's bug must not stop the daemon serving others
            log.exception("API request %s by %s failed", request["op"], caller.name)
            return error_reply(f"internal error: {type(exc).__name__}", 1)
        finally:
            _PROGRESS.reset(progress)


def _line(reply: dict) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode() + b"\n"


def systemd_listen_fd() -> int | None:
    """The listening socket systemd passed to this process (LISTEN_FDS, fd 3), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    return 3


def _read_line(reader, limit: int) -> bytes | None:
    """Read from a buffered binary reader up to and including a newline (or to its end);
    None when more than ``limit`` bytes come first."""
    line = reader.readline(limit + 1)
    return None if len(line) > limit else line


def answers(path: Path) -> bool:
    """Whether a daemon accepts connections on ``path`` (not just a socket file left behind)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _connect(path: Path, timeout: float) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(str(path))
    except PermissionError as exc:
        connection.close()
        raise ApiUnavailable(
            path=path, why="permission denied: ask the custodian to add you to the socket's group"
        ) from exc
    except OSError as exc:
        connection.close()
        raise ApiUnavailable(path=path, why=exc.strerror or str(exc)) from exc
    return connection


def _result(path: Path, line: bytes | None) -> dict:
    try:
        reply = json.loads(line or b"")
    except ValueError as exc:
        raise ApiUnavailable(path=path, why="the daemon closed the connection without an answer") from exc
    if not reply.get("ok"):
        said = reply.get("template"), reply.get("fields")
        known = isinstance(said[0], str) and isinstance(said[1], dict)
        raise ApiError(reply.get("error", "refused"), int(reply.get("exit_code", 2)), said if known else None)
    return reply


def call(
    path: Path,
    op: str,
    args: dict | None = None,
    timeout: float | None = 600.0,
    on_progress: Callable[[dict], None] | None = None,
    on_behalf_of: str | None = None,
) -> object:
    """Send one request to the daemon at ``path``; return its result. With ``on_progress``, ask
    for progress and hand it each progress line's object as it comes. ``on_behalf_of``: the
    person signed in to the web platform (only its service user may name one).

    Raise ApiUnavailable when nothing serves there or the caller may not
    connect, ApiError (with the daemon's message and exit code) on a refusal.
    """
    connection = _connect(path, timeout)
    request = (
        {"v": PROTOCOL_VERSION, "op": op, "args": args or {}}
        | ({"progress": True} if on_progress else {})
        | ({"on_behalf_of": on_behalf_of} if on_behalf_of is not None else {})
    )
    try:
        connection.sendall(_line(request))
        reader = connection.makefile("rb")
        line = _read_line(reader, MAX_ANSWER_BYTES)
        # (Told apart by the daemon's own prefix: an answer can be a large line, parsed once.)
        while on_progress and line and line.startswith(b'{"progress":'):
            on_progress(json.loads(line)["progress"])
            line = _read_line(reader, MAX_ANSWER_BYTES)
    finally:
        connection.close()
    return _result(path, line).get("result")


class Sending:
    """The client's side of an upload conversation (see ``Upload``)."""

    def __init__(self, path: Path, connection: socket.socket, reader, offer: dict) -> None:
        self.path = path
        self.offer = offer  # what the daemon said with its go-ahead
        self._connection = connection
        self._reader = reader

    def message(self, message: dict) -> None:
        self._connection.sendall(_line(message))

    def chunk(self, data: bytes) -> None:
        """Send ``data`` (at most STREAM_CHUNK bytes) as one chunk of the current stream."""
        self._connection.sendall(_FRAME.pack(len(data)))
        self._connection.sendall(data)

    def end(self) -> None:
        self._connection.sendall(_FRAME.pack(0))

    def abandon(self, reason: str) -> None:
        self._connection.sendall(_FRAME.pack(_ABANDON))
        self.message({"reason": reason})

    def answer(self) -> object:
        """The daemon's answer to the last message; raise ApiError if it is a refusal."""
        return _result(self.path, self._reader.readline(MAX_ANSWER_BYTES)).get("result")


def upload(
    path: Path, op: str, args: dict, converse: Callable[[Sending], None], timeout: float | None = 600.0
) -> object:
    """Send a request whose answer is an ``Upload``; ``converse`` sends the messages and bytes;
    return the final result.

    Raise as ``call`` does: a refusal before the go-ahead, or at the end, is an
    ApiError; a daemon that goes away is ApiUnavailable.
    """
    connection = _connect(path, timeout)
    try:
        connection.sendall(_line({"v": PROTOCOL_VERSION, "op": op, "args": args}))
        reader = connection.makefile("rb")
        header = _result(path, reader.readline(MAX_ANSWER_BYTES))
        if not header.get("send"):
            return header.get("result")
        offer = {k: v for k, v in header.items() if k not in ("ok", "send")}
        try:
            converse(Sending(path, connection, reader, offer))
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The daemon hung up part way: its last word says why, when it had one.
            final = reader.readline(MAX_ANSWER_BYTES)
            _result(path, final)
            raise ApiUnavailable(path=path, why="the daemon closed the connection part way") from exc
        return _result(path, reader.readline(MAX_ANSWER_BYTES)).get("result")
    finally:
        connection.close()


def call_stream(
    path: Path,
    op: str,
    args: dict,
    write: Callable[[bytes], object],
    timeout: float = 600.0,
    on_behalf_of: str | None = None,
) -> object:
    """Send a request whose answer is a stream; pass each chunk to ``write``; return the final result.

    Raise as ``call`` does; a refusal before any byte, or a failure part way
    (bytes already written stay written), is an ApiError.
    """
    connection = _connect(path, timeout)
    try:
        request = {"v": PROTOCOL_VERSION, "op": op, "args": args}
        if on_behalf_of is not None:
            request["on_behalf_of"] = on_behalf_of
        connection.sendall(_line(request))
        reader = connection.makefile("rb")
        header = _result(path, reader.readline(64 * 1024))
        if not header.get("stream"):
            return header.get("result")
        while True:
            length = _FRAME.unpack(_read_exactly(reader, _FRAME.size, path))[0]
            if length == 0:
                break
            write(_read_exactly(reader, length, path))
        return _result(path, reader.readline(64 * 1024)).get("result")
    finally:
        connection.close()


def _read_exactly(reader, size: int, path: Path) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ApiUnavailable(path=path, why="the daemon closed the connection in the middle of a stream")
    return data


def is_served(path: Path) -> bool:
    """Whether something listens on ``path`` (connecting may still be refused to this caller)."""
    try:
        return path.is_socket()
    except OSError:
        return False


def fetch_to_file(
    path: Path, args: dict, out: Path, op: str = "stream", on_behalf_of: str | None = None
) -> dict:
    """Stream an item (``args``: ref, role) from the daemon into a new file ``out``, as the caller.

    The file is written by the caller's own process, with the caller's own
    rights; never overwritten (raise Vault.OutputExists); nothing is left
    behind on failure. Return the daemon's result (item, sha256, size).
    """
    try:
        with new_file(out) as sink:
            result = call_stream(
                path, op, {**args, "to": str(out.resolve())}, sink.write, on_behalf_of=on_behalf_of
            )
    except OSError as exc:  # the caller's folder: missing, not theirs to write, full, read-only
        if not is_write_problem(exc):
            raise  # (the connection's errors are the caller's too, said as such below)
        raise cannot_write(out, exc) from exc
    return result
