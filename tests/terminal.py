"""Running `custody` at a real pseudo-terminal of a given size, as a clerk's terminal is."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import sys
import termios
from pathlib import Path

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_at_terminal(
    home: Path, *args: str, columns: int = 80, rows: int = 24, env: dict | None = None
) -> tuple[int, str]:
    """Run `custody --home HOME ARGS` with a pty of ``columns`` x ``rows`` as its terminal.

    Return the exit status and what it showed, styles removed, lines ending in "\\n".
    """
    environment = {**os.environ, "PAGER": "cat", "TERM": "xterm-256color", **(env or {})}
    for name in ("COLUMNS", "LINES"):
        environment.pop(name, None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the pty
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            os.execve(
                sys.executable, [sys.executable, "-m", "custody", "--home", str(home), *args], environment
            )
        finally:
            os._exit(127)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return os.waitstatus_to_exitcode(status), _ESCAPES.sub("", text)
