"""What an operation is: a name, a typed request, the role it needs, and what it does.

An operation takes its request (a frozen dataclass) and an open vault (opened
as the caller) and returns records: plain data (dicts, lists, strings,
numbers), exactly what ``--json`` prints and what the socket sends, so every
client sees the same thing. The role is declared with the operation
(``action``, a row of ``custody.vault.access.ALLOWED``) and checked by
:func:`perform` before the operation runs, for every client alike; the
vault's own methods check again where they read or change (defence in depth,
and the audit event names the exact item).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from custody.config import Settings
from custody.errors import Said, UsageError
from custody.vault import Vault, access

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class Context:
    """What an operation may use besides its request and vault: whom to tell how far it is."""

    progress: Progress | None = None


@dataclass(frozen=True)
class Operation:
    name: str
    request: type
    action: str  # the caller needs a role that ``custody.vault.access.ALLOWED[action]`` allows
    run: Callable[[Vault, typing.Any, Context], object]
    summary: str = ""  # one line for the protocol page
    # When the role depends on the request (the whole audit chain, or one item's history):
    action_of: Callable[[typing.Any], str] | None = None

    def needs(self, request: object) -> str:
        """The access action this request needs."""
        return self.action_of(request) if self.action_of else self.action


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, request: type, action: str, action_of: Callable[[typing.Any], str] | None = None):
    """Register the decorated function as operation ``name`` taking ``request``, needing ``action``
    (or, when given, ``action_of(request)``: one of the actions it may return, the least)."""
    if action not in access.ALLOWED:
        raise ValueError(f"operation {name}: {action!r} is not an action of custody.vault.access.ALLOWED")

    def register(function: Callable) -> Callable:
        first_paragraph = (function.__doc__ or "").strip().split("\n\n")[0]
        summary = " ".join(line.strip() for line in first_paragraph.splitlines()).replace("``", "`")
        OPERATIONS[name] = Operation(name, request, action, function, summary, action_of)
        return function

    return register


@dataclass(frozen=True)
class NoRequest:
    """An operation that takes nothing."""


def perform(
    settings: Settings,
    name: str,
    request: object,
    caller: access.Caller | None = None,
    actor: str | None = None,
    progress: Progress | None = None,
) -> object:
    """Run operation ``name`` on the vault of ``settings`` as ``caller`` (None: this process's
    own user, named ``actor``); return its records as plain data.

    ``request`` is the operation's request dataclass, or a dict from the
    socket (checked field by field: raise UsageError naming a field that is
    unknown, missing or of the wrong type). Raise UsageError for an unknown
    operation, Vault.AccessDenied (recorded) when the caller's roles do not
    allow it, and whatever the operation raises.
    """
    found = OPERATIONS.get(name)
    if found is None:
        raise UsageError(reason=Said("no operation {name!r}", name=name))
    if isinstance(request, dict):
        request = decode(found.request, request, name)
    elif not isinstance(request, found.request):
        raise TypeError(f"operation {name} takes a {found.request.__name__}")
    with Vault(settings, actor or (caller.actor if caller else ""), caller=caller) as vault:
        needed = found.needs(request)
        if not vault.caller.may(needed):
            vault.authorize(needed)  # records the refusal and raises AccessDenied
        # Records are plain data already (as_dict() of the services' records): what the socket
        # sends as JSON, handed over as they are in-process.
        return found.run(vault, request, Context(progress))


def decode(request_type: type, data: dict, name: str = "") -> object:
    """The request dataclass ``request_type`` from ``data`` (a JSON object); raise UsageError
    naming the first field that is unknown, missing or of the wrong type."""
    hints = typing.get_type_hints(request_type)
    fields = {f.name: f for f in dataclasses.fields(request_type)}
    for key in data:
        if key not in fields:
            raise UsageError(
                reason=Said(
                    "{operation}: no field {key!r} in the request",
                    operation=name or request_type.__name__,
                    key=key,
                )
            )
    values = {}
    for key, spec in fields.items():
        if key not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise UsageError(
                    reason=Said(
                        "{operation}: the request needs {key!r}",
                        operation=name or request_type.__name__,
                        key=key,
                    )
                )
            continue
        if not _fits(data[key], hints[key]):
            raise UsageError(
                reason=Said(
                    "{operation}: {key!r} must be {expected}",
                    operation=name or request_type.__name__,
                    key=key,
                    expected=_describe(hints[key]),
                )
            )
        values[key] = tuple(data[key]) if isinstance(data[key], list) else data[key]
    return request_type(**values)


def _fits(value: object, hint: object) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, each) for each in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        (each, _ellipsis) = typing.get_args(hint)
        return isinstance(value, list) and len(value) <= 10_000 and all(_fits(v, each) for v in value)
    if hint is bool:
        return type(value) is bool
    if hint is int:
        return type(value) is int
    if hint is float:
        return type(value) in (int, float)
    if hint is str:
        return isinstance(value, str)
    return False


def _describe(hint: object) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(each) for each in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        hint, "null" if hint is type(None) else str(hint)
    )


def request_fields(request_type: type) -> list[tuple[str, str, bool]]:
    """(name, type in words, required) of each field of a request, for the protocol page."""
    hints = typing.get_type_hints(request_type)
    return [
        (
            f.name,
            _describe(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(request_type)
    ]


@dataclass
class ByteProgress:
    """A byte count that tells ``send`` how far it is: ten times a second at most, and at the end.

    Used like rich's Progress (``add_task``, ``advance``) by vault methods that
    report bytes from worker threads; ``send`` gets ``{"bar", "done", "total"}``.
    """

    label: str
    send: Progress
    interval: float = 0.1
    done: int = 0
    total: int | None = None
    _sent_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, total: int | None) -> None:
        self.total = total
        self._send()

    def advance(self, nbytes: float) -> None:
        with self._lock:
            self.done += int(nbytes)
            if time.monotonic() - self._sent_at < self.interval:
                return
            self._sent_at = time.monotonic()
        self._send()

    def finish(self) -> None:
        self._send()

    def _send(self) -> None:
        self.send({"bar": self.label, "done": self.done, "total": self.total})
