"""What the web platform's tests share besides fixtures."""

from __future__ import annotations

import json
import time

# The daemon's [web] table for the tests: cst-web may act for signed-in people.
WEB_CONFIG = '[web]\nservice_user = "cst-web"\nsession_minutes = 5\nmax_failed_sign_ins = 3\n'
PASSWORD = "correct horse battery"  # every test account's


def wait_for_media(custody) -> None:
    """Wait until the daemon has made the playable copies and thumbnails of what was ingested."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs = json.loads(custody("status", "--json").stdout)["media_jobs"]
        if not jobs.get("queued") and not jobs.get("running"):
            return
        time.sleep(0.5)
    raise AssertionError(f"media work still running: {jobs}")
