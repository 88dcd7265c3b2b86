"""What the web platform's tests share besides fixtures."""

from __future__ import annotations

# The daemon's [web] table for the tests: cst-web may act for signed-in people.
WEB_CONFIG = '[web]\nservice_user = "cst-web"\nsession_minutes = 5\nmax_failed_sign_ins = 3\n'
PASSWORD = "correct horse battery"  # every test account's
