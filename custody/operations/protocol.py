"""The socket's protocol page (docs/protocol.md), written from the operations' own registry.

``python -m custody.operations.protocol > docs/protocol.md`` regenerates it;
a test fails when the page and the code disagree.
"""

from __future__ import annotations

import sys

from custody.ingestd.api import MAX_REQUEST_BYTES, PROTOCOL_VERSION
from custody.operations import OPERATIONS, request_fields
from custody.vault import access

_TRANSPORT = """\
# custody's socket protocol, version {version}

The daemon serves the vault on a Unix stream socket (`[access] socket`,
default `<home>/api.sock`; mode 0660, group `[access] socket_group`). Who is
asking is what the kernel says is at the other end (SO_PEERCRED: uid, gid,
pid), mapped to roles by `[access.roles]`; nothing in a request names the
caller. The command line is one client of this protocol; the web platform
will be another. Both get the same records, checked against the same roles.

## Framing

- One request per connection: one JSON object on one line, at most
  {max_request} bytes: `{{"v": {version}, "op": NAME, "args": REQUEST}}`, plus
  `"progress": true` to be told how far a long operation is.
- One answer: `{{"ok": true, "result": RECORDS}}`, or
  `{{"ok": false, "error": "one line for a person", "exit_code": N}}` (the exit
  code `custody` exits with: 2 bad request, 5 not found or not allowed now,
  7 busy or unreachable, 13 not your role; see `custody/errors.py`). A refusal
  the code names also carries `"template"` and `"fields"` (the error's English
  template and its values as text), so a client says it in its person's
  language from the same catalogs (`custody/locale`).
- With `"progress": true`, lines `{{"progress": {{"bar": LABEL, "done": BYTES,
  "total": BYTES}}}}` or `{{"progress": {{"step": TEXT, "said": WORDS}}}}` may come first
  (WORDS: the step's English template and values, `{{"template": ..., "fields": {{...}}}}`, to
  say it in the client's language; or TEXT again).
- `"v"` is this page's version. A daemon answers a request of another
  version with an error naming both (a request without `"v"` is taken as this
  version). Version 1 had a `run` operation that replayed a command line in
  the daemon; it is gone.
- A request is checked field by field before anything runs: an unknown
  field, a missing one or one of the wrong type is refused (exit code 2),
  naming the field. No operation takes a path: the daemon, which runs as
  root, never opens a path a client names.
- Limits: requests per second per user, connections per user and in all
  (`[access]`); a request line must arrive within `request_timeout_seconds`.

## Operations that move bytes

| op | role | what |
|---|---|---|
| `whoami` | anyone | who the daemon takes the caller for: user, uid, groups, roles; the station's name, agency, documents' language and PDF font |
| `stream` | officer (own), clerk | `{{"ref", "role"?}}`: an item's original (or `playable`, `thumbnail`) as a stream: `{{"ok": true, "stream": true}}`, then chunks (4-byte big-endian length, bytes), a zero length, then the final answer line |
| `ingest` | clerk | the caller's own files, sent by the caller's process: an upload conversation (see `custody/ingestd/upload.py`) |
| `export` | clerk | an evidence disc made as the caller into a private outbox; `fetch` then streams its files to the caller's process, `burn_failed` reports a failed burn |
| `verify_image` | clerk | a disc image streamed by the caller's process, checked and thrown away |

## Named operations

Each takes the request fields below (all optional unless marked required)
and answers with records: exactly what `custody ... --json` prints for the
command of the same name. Roles come from `custody/vault/access.py`
(`ALLOWED`); an officer sees only items credited to them, and every listing
leaves out what the caller may not see.

| op | role | request fields | what it answers |
|---|---|---|---|
"""


def _roles(action: str) -> str:
    allowed = access.ALLOWED[action]
    return ", ".join(sorted(allowed)) if allowed else "anyone"


def render() -> str:
    """The whole page, as Markdown."""
    lines = [_TRANSPORT.format(version=PROTOCOL_VERSION, max_request=MAX_REQUEST_BYTES)]
    for name in sorted(OPERATIONS):
        found = OPERATIONS[name]
        fields = ", ".join(
            f"`{field}` ({kind}{', required' if required else ''})"
            for field, kind, required in request_fields(found.request)
        )
        roles = _roles(found.action)
        if found.action_of is not None:
            roles += " (more for some requests)"
        lines.append(f"| `{name}` | {roles} | {fields or '-'} | {found.summary} |\n")
    return "".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
