"""Deliberately broken builds: a copy of custody with one mistake each, to show that the soak's
invariants can fail (``python -m soak --break NAME``; tests/test_soak.py). Each mistake is a text
replacement that must match the code exactly once, so a change to the code that moves it fails
loudly here instead of testing nothing."""

from __future__ import annotations

from pathlib import Path

# name -> (file under custody/, the code, the mistake, the invariant that must then fail)
BREAKS: dict[str, tuple[str, str, str, str]] = {
    "credit-nobody": (
        "ingestd/dock.py",
        "            credited_officer=officer,\n",
        "            credited_officer=None,\n",
        "credited-to-the-right-officer",
    ),
    "forget-denials": (
        "vault/vault.py",
        '            self.audit.append(self.caller.actor, "denied", item.number if item else None, details)\n',
        "            pass\n",
        "every-denial-audited",
    ),
    "leak-staging": (
        "vault/objects.py",
        '        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")\n',
        '        tempfile.mkstemp(dir=self.staging, prefix="seal-leak-", suffix=".part")\n'
        '        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")\n',
        "no-staging-files-or-mounts",
    ),
}


def apply(copy: Path, names: list[str]) -> list[str]:
    """Make each named mistake in the copy of custody at ``copy``; return the invariants that
    must fail. Raise KeyError for an unknown name, ValueError when the code no longer matches."""
    expected = []
    for name in names:
        relative, code, mistake, invariant = BREAKS[name]
        path = copy / relative
        text = path.read_text(encoding="utf-8")
        if text.count(code) != 1:
            raise ValueError(f"break {name}: the code it changes is not found once in custody/{relative}")
        path.write_text(text.replace(code, mistake), encoding="utf-8")
        expected.append(invariant)
    return expected
