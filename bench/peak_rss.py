"""Run a command and write its own peak RSS (kB) to a file: ``python peak_rss.py OUT COMMAND...``.

Why a helper: the ru_maxrss of a child the benchmark starts itself begins at
the benchmark's own high-water mark (exec keeps the old memory map's peak),
so after a benchmark that grew its process (the retention plan over a
million items) a 137 MB export read as 377 MB. This small, fresh process
forks the command, so the command's figure starts from this process's
~10 MB instead. Exits with the command's exit code.
"""

import os
import sys

out, command = sys.argv[1], sys.argv[2:]
child = os.fork()
if child == 0:
    try:
        os.execvp(command[0], command)
    finally:
        os._exit(127)
_pid, status, usage = os.wait4(child, 0)
with open(out, "w") as report:
    report.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
