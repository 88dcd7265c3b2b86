"""custody's own accounts: people who sign in to the web platform without a login on this machine.

A password is kept only as its Argon2 hash (argon2-cffi's defaults, RFC 9106). Adding an account
and changing its password are audited (never the password); each sign-in the web service asks
for is checked here and audited, a wrong one too. After ``[web] max_failed_sign_ins`` wrong
passwords for one login within ``lockout_minutes``, that login's sign-ins are refused until the
window has passed (counted from the audit chain, so a restart does not reset it). Roles come from
``[access.roles]`` by login name, as for local users.
"""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from custody.errors import CustodyError, Said, UsageError
from custody.vault import registry
from custody.vault.service import VaultService, locked
from custody.vault.timestamps import from_text, to_text, utc_now

MIN_PASSWORD_LENGTH = 10
_HASHER = PasswordHasher()


class SignInRefused(CustodyError):
    """sign-in refused: {why}"""

    exit_code = 13


class Accounts(VaultService):
    """custody's own accounts (``vault.accounts``)."""

    @locked
    def set_password(self, login: str, password: str, new: bool) -> None:
        """Add account ``login`` (``new``) or change its password; audited without the password.

        Raise UsageError for a bad login, a short password, an account that exists (``new``) or
        does not; AccessDenied without the admin role.
        """
        vault = self.vault
        vault.authorize("accounts", f"account {login}")
        registry.check_registry_text("login", login, required=True)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UsageError(
                reason=Said(
                    "the password is shorter than {min_password_length} characters",
                    min_password_length=MIN_PASSWORD_LENGTH,
                )
            )
        exists = vault.catalog.db.execute("SELECT 1 FROM accounts WHERE login = ?", [login]).fetchone()
        if new and exists:
            raise UsageError(
                reason=Said(
                    "account {login} exists: change its password with 'custody user passwd'", login=login
                )
            )
        if not new and not exists:
            raise UsageError(reason=Said("no account {login}: add it with 'custody user add'", login=login))
        hashed = _HASHER.hash(password)
        with vault.change() as change:
            change.record("account-added" if new else "account-password-changed", None, {"login": login})
            if new:
                change.catalog.db.execute(
                    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                    [login, hashed, change.at, vault.actor, change.at, vault.actor],
                )
            else:
                change.catalog.db.execute(
                    "UPDATE accounts SET password_hash = ?, changed_at = ?, changed_by = ? WHERE login = ?",
                    [hashed, change.at, vault.actor, login],
                )

    @locked
    def listed(self) -> list[dict]:
        self.vault.authorize("accounts")
        rows = self.vault.catalog.db.query(
            "SELECT login, created_at, changed_at FROM accounts ORDER BY login"
        )
        return list(rows)

    def sign_in(self, login: str, password: str, via: str) -> None:
        """Check a password the web service ``via`` was given for ``login`` (audited either way).

        Raise SignInRefused for an unknown login or a wrong password (the same words for both),
        and while the login is locked out after too many wrong ones.
        """
        vault = self.vault
        web = vault.settings.web
        with vault.serialized():
            since = to_text(from_text(utc_now()) - timedelta(minutes=web.lockout_minutes))
            failures = vault.catalog.db.execute(
                "SELECT count(*) FROM audit WHERE action = 'sign-in-failed' AND at > ? "
                "AND json_extract(details, '$.login') = ?",
                [since, login],
            ).fetchone()[0]
            if failures >= web.max_failed_sign_ins:
                vault.audit.append(via, "sign-in-refused", None, {"login": login, "why": "locked out"})
                raise SignInRefused(
                    why=Said(
                        "too many wrong passwords for {login}: try again in {lockout_minutes} minutes",
                        login=login,
                        lockout_minutes=web.lockout_minutes,
                    )
                )
            row = vault.catalog.db.execute(
                "SELECT password_hash FROM accounts WHERE login = ?", [login]
            ).fetchone()
        ok = False
        if row is not None:
            try:
                ok = _HASHER.verify(row[0], password)
            except (VerificationError, InvalidHashError):
                ok = False
        else:
            _HASHER.hash(password)  # as long as a real check: the answer's time names no account
        with vault.serialized():
            vault.audit.append(via, "sign-in" if ok else "sign-in-failed", None, {"login": login})
        if not ok:
            raise SignInRefused(why="wrong login or password")
