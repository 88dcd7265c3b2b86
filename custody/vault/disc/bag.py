"""Writing a BagIt bag (RFC 8493, version 1.0) around files already staged and hashed.

The payload's SHA-256s come from the vault (each staged file was verified
against its object's hash as it was written), so nothing here reads the
payload again; the ``bagit`` package validates our bags in the tests, an
independent reader. Tag files are hashed here, after they are written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
PAYLOAD_MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"


def encode_path(path: str) -> str:
    """A manifest path as RFC 8493 writes it (CR, LF and % percent-encoded)."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def bag_info_text(fields: list[tuple[str, str]]) -> str:
    """bag-info.txt from (label, value) pairs, in order; a value is always one line."""
    lines = []
    for label, value in fields:
        one_line = " ".join(str(value).split())
        lines.append(f"{label}: {one_line}")
    return "\n".join(lines) + "\n"


def payload_oxum(sizes: list[int]) -> str:
    return f"{sum(sizes)}.{len(sizes)}"


def write_bag(root: Path, payload: list[tuple[str, str]], info: list[tuple[str, str]]) -> None:
    """Write the bag's declaration, bag-info, payload manifest and, last, the tag manifest.

    ``payload`` is (path under ``root``, sha256) of every file under data/;
    every other file already under ``root`` is a tag file and is hashed into
    the tag manifest.
    """
    (root / "bagit.txt").write_text(BAGIT_TXT, encoding="utf-8")
    (root / "bag-info.txt").write_text(bag_info_text(info), encoding="utf-8")
    (root / PAYLOAD_MANIFEST).write_text(
        "".join(f"{sha256}  {encode_path(path)}\n" for path, sha256 in sorted(payload)), encoding="utf-8"
    )
    tag_files = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not path.relative_to(root).as_posix().startswith(("data/", "tagmanifest-"))
    )
    (root / TAG_MANIFEST).write_text(
        "".join(f"{_sha256_file(root / name)}  {encode_path(name)}\n" for name in tag_files), encoding="utf-8"
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
