"""Reading originals and their derivatives out of the vault: extract to a file, stream to a client,
a private plaintext copy for media tools, a re-check from the disk; each verified as it is read."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from custody.errors import CustodyError, cannot_write, output_taken
from custody.vault import (
    derivatives,
)
from custody.vault.catalog import Item
from custody.vault.derivatives import Derivative
from custody.vault.items import (
    format_item_id,
)
from custody.vault.new_files import OutputExists, new_file
from custody.vault.sealing import ObjectDamaged
from custody.vault.service import VaultService


class ItemDamaged(CustodyError):
    """item {item} failed its integrity check: {problem}"""

    exit_code = 6


class NoDerivative(CustodyError):
    """{item} has no {role} copy: {why}"""

    exit_code = 5


class Originals(VaultService):
    """Originals and derivatives read out, verified as they are read (``vault.originals``)."""

    def extract(self, ref: str, out: Path, role: str | None = None) -> Item:
        """Write the decrypted original of ``ref`` (or its ``role`` derivative) to ``out``, verified as it goes.

        Never overwrites: raise OutputExists. Raise ItemDamaged when
        the object fails authentication or its hash (no partial file remains),
        NoDerivative when the item has no such derivative.
        """
        self.vault.authorize("extract", ref)
        item = self.vault.resolve(ref)
        sha256 = item.sha256
        if role is not None:
            sha256 = self.derivative_of(item, role).sha256
        out = Path(out)
        if output_taken(out):
            self.vault.record_failure("extract", {"out": str(out), "reason": "output exists"}, item)
            raise OutputExists(path=out)
        try:
            with new_file(out) as sink:
                self._copy_verified(item, sink, sha256=sha256)
        except OutputExists:
            self.vault.record_failure("extract", {"out": str(out), "reason": "output exists"}, item)
            raise
        except ItemDamaged as exc:
            self.vault.record_failure("extract", {"out": str(out), "reason": exc.message}, item)
            raise
        except OSError as exc:  # a missing folder, no permission, a full or read-only disk
            failure = cannot_write(out, exc)
            self.vault.record_failure("extract", {"out": str(out), "reason": failure.message}, item)
            raise failure from exc
        details = {"out": str(out.resolve()), "sha256": sha256}
        if role is not None:
            details["derivative"] = role
        with self.vault.change() as change:
            change.record("extract", item.number, details)
        return item

    def derivative_of(self, item: Item, role: str) -> Derivative:
        """Item's ``role`` derivative (playable, thumbnail); raise NoDerivative saying why there is none."""
        made = {d.role: d for d in self.vault.media.derivatives(item)}
        if role in made:
            return made[role]
        facts = self.vault.media.facts(item)
        if facts is None:
            why = "its media job has not run yet: run 'custody media run --once' or let the daemon work"
        elif role == derivatives.PLAYABLE and facts.get("photo"):
            why = "it is a photo; extract the original"
        elif "unreadable" in facts or (facts.get("playable") or {}).get("error"):
            why = (facts.get("playable") or {}).get(
                "error"
            ) or f"it is not readable media ({facts['unreadable']})"
        else:
            why = "none was made; see 'custody status' for failed media jobs"
        raise NoDerivative(item=item.item_id, role=role, why=why)

    def stream(
        self,
        ref: str,
        sink: BinaryIO,
        destination: str = "stdout",
        role: str | None = None,
        to_file: bool = False,
        byte_range: tuple[int, int] | None = None,
    ) -> Item:
        """Write the decrypted original (or its ``role`` derivative) to ``sink``, verified as it goes.

        Audited as a view, or as an extract when ``to_file`` (a client writing
        ``destination`` on its side of the API socket). Bytes already written
        stay written if the object turns out damaged part way:
        ItemDamaged is raised and the failure audited. With ``byte_range``
        (first, last: a player seeking), only those bytes, each segment
        authenticated (the whole is re-hashed by ``verify``); the view's event names the range.
        """
        action = "extract" if to_file else "cat"
        self.vault.authorize(action, ref)
        item = self.vault.resolve(ref)
        sha256 = self.derivative_of(item, role).sha256 if role else item.sha256
        event = "extract" if to_file else "view"
        try:
            if byte_range is None:
                self._copy_verified(item, sink, sha256=sha256)
            else:
                for chunk in self.vault.objects.read_range(sha256, *byte_range):
                    sink.write(chunk)
            sink.flush()
        except ObjectDamaged as exc:
            self.vault.record_failure(event, {"to": destination, "reason": exc.message}, item)
            raise ItemDamaged(item=item.item_id, problem=exc.message) from exc
        except ItemDamaged as exc:
            self.vault.record_failure(event, {"to": destination, "reason": exc.message}, item)
            raise
        details = {"to": destination, "sha256": sha256}
        if byte_range is not None:
            details["range"] = list(byte_range)
        if role:
            details["derivative"] = role
        with self.vault.change() as change:
            change.record(event, item.number, details)
        return item

    def read_verified(self, item: Item, sink: BinaryIO, sha256: str | None = None) -> None:
        """Write the plaintext of the item's original (or of its derivative ``sha256``) to ``sink``.

        Authenticated and re-hashed as it goes; not audited (the caller records
        what it did with it). Raise ItemDamaged.
        """
        self._copy_verified(item, sink, sha256=sha256)

    def _copy_verified(
        self, item: Item, sink: BinaryIO | None, evict_cache: bool = False, sha256: str | None = None
    ) -> None:
        """Check the item's object, or its derivative ``sha256`` (writing the plaintext to ``sink`` if given).

        Raise ItemDamaged.
        """
        try:
            self.vault.objects.check(sha256 or item.sha256, evict_cache=evict_cache, sink=sink)
        except ObjectDamaged as exc:
            raise ItemDamaged(item=item.item_id, problem=exc.message) from exc
        except FileNotFoundError as exc:
            raise ItemDamaged(item=item.item_id, problem="its object file is missing") from exc

    def check_item(self, item: Item) -> None:
        """Re-hash an item's object from the disk (page cache evicted); raise ItemDamaged if it is wrong."""
        self._copy_verified(item, sink=None, evict_cache=True)

    @contextlib.contextmanager
    def plaintext_copy(self, number: int) -> Iterator[Path]:
        """Yield a private (0600) decrypted copy of item ``number``'s original, verified as written.

        For media tools that need a seekable file; it lives under the vault
        home and is removed on exit. Raise ItemDamaged when the object
        fails its check (nothing is left behind).
        """
        item = self.vault.item_number(number)
        if item is None:
            raise self.vault.ItemNotFound(ref=format_item_id(number))
        work = self.vault.home / "run" / "media"
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        # No file-name extension: media tools then judge the content alone, not a
        # name that random bytes or a renamed file could carry.
        fd, name = tempfile.mkstemp(dir=work, prefix=f"{item.item_id}-")
        path = Path(name)
        try:
            with open(fd, "wb") as sink:
                self._copy_verified(item, sink)
            yield path
        finally:
            path.unlink(missing_ok=True)
