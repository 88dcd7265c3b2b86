"""ISO images and optical drives: xorriso writes and checks them, pycdlib reads them back.

The kernel may not mount ISO 9660 (it cannot on our stations), so a disc is
read back through pycdlib, straight from the image file or the drive. A drive
is a device such as ``/dev/sr0``; ``stdio:/path`` is xorriso's file-backed
drive, which behaves like a burner (the tests use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import subprocess
from pathlib import Path

import pycdlib
import pycdlib.pycdlibexception

from custody.errors import CustodyError, Said

CHUNK = 1 << 20
SECTOR = 2048

# Usable bytes per medium (single-session data discs).
MEDIA_CAPACITY = {
    "cd": 700 * 1024 * 1024,
    "dvd": 4_700_372_992,
    "dvd-dl": 8_543_666_176,
    "bd": 25_025_314_816,
    "bd-dl": 50_050_629_632,
}


class DiscToolFailed(CustodyError):
    """{tool} failed ({what}): {detail}"""

    exit_code = 8


class NotReadable(CustodyError):
    """{target} cannot be read as an ISO 9660 disc or image: {detail}"""

    exit_code = 6


def volume_id(text: str, fallback: str) -> str:
    """An ISO 9660 volume id (A-Z, 0-9, _; at most 32) made from ``text``, else ``fallback``."""
    cleaned = re.sub(r"[^A-Z0-9_]+", "_", text.upper()).strip("_")
    if not re.search(r"[A-Z0-9]", cleaned):
        cleaned = re.sub(r"[^A-Z0-9_]+", "_", fallback.upper()).strip("_")
    return cleaned[:32]


def drive_spec(target: str) -> str:
    """xorriso's name for a drive or image: ``stdio:`` paths and devices as given, files as stdio:."""
    if target.startswith("stdio:") or target.startswith("/dev/"):
        return target
    return f"stdio:{Path(target).resolve()}"


def drive_path(target: str) -> Path:
    """The file or device to read for ``target`` (a device, an image, or a stdio: drive)."""
    return Path(target.removeprefix("stdio:"))


def _run(xorriso: str, arguments: list[str], what: str) -> str:
    try:
        result = subprocess.run(
            [xorriso, *arguments], stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
        )
    except FileNotFoundError as exc:
        raise DiscToolFailed(
            tool=xorriso, what=what, detail="not installed: apt-get install xorriso (or set [export] xorriso)"
        ) from exc
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        important = [line for line in lines if "FAILURE" in line or "SORRY" in line or "MISMATCH" in line]
        raise DiscToolFailed(
            tool="xorriso", what=what, detail="; ".join((important or lines)[-3:]) or "no output"
        )
    return result.stdout + result.stderr


def make_iso(xorriso: str, root: Path, out: Path, volume: str) -> None:
    """Write ``root`` as an ISO 9660 image with Rock Ridge, Joliet and MD5 tags to ``out``.

    ISO level 3 lets files over 4 GiB in. Raise DiscToolFailed with xorriso's
    own message when it fails (a full disk, for one).
    """
    _run(
        xorriso,
        [
            "-as",
            "mkisofs",
            "-r",  # Rock Ridge with every file readable by anyone (-R kept 0700 staging modes)
            "-J",
            "-joliet-long",
            "-iso-level",
            "3",
            "--md5",
            "-V",
            volume,
            "-o",
            str(out),
            str(root),
        ],
        Said("writing {out}", out=out),
    )


def burn(xorriso: str, image: Path, device: str) -> None:
    """Write an ISO image onto the medium in ``device`` (or a stdio: drive); raise DiscToolFailed."""
    _run(
        xorriso,
        ["-as", "cdrecord", "-v", f"dev={device}", str(image)],
        Said("burning to {device}", device=device),
    )


def check_md5(xorriso: str, target: str) -> None:
    """Have xorriso read the whole session back and compare it with the MD5s it recorded.

    ``-md5 on`` must come before ``-indev``, or the check passes without
    checking. Raise DiscToolFailed naming the mismatch.
    """
    _run(
        xorriso,
        [
            "-abort_on", "FAILURE", "-md5", "on", "-indev", drive_spec(target),
            "-check_md5", "FAILURE", "--", "-check_md5_r", "FAILURE", "/", "--",
        ],
        Said("checking the MD5 tags of {target}", target=target),
    )  # fmt: skip


class IsoFiles:
    """The files of an ISO image or disc by their Rock Ridge names, read through pycdlib.

    Offers what the standalone verifier needs (``names()``, ``open(name)``,
    ``hash_file(name)``). Files are read by their ISO 9660 paths: pycdlib
    reads a file over 4 GiB (several extents, ISO level 3) whole only that
    way. Use as a context manager. Raise NotReadable when it is not ISO 9660.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._stream = None
        self._iso = pycdlib.PyCdlib()
        try:
            self._stream = open(drive_path(target), "rb")  # noqa: SIM115 (closed by close())
            self._iso.open_fp(self._stream)
            self._paths = self._index()
        except (OSError, pycdlib.pycdlibexception.PyCdlibException) as exc:
            self.close()
            raise NotReadable(target=target, detail=str(exc)) from exc
        self.image_bytes = self._iso.pvd.space_size * SECTOR
        self.volume_id = self._iso.pvd.volume_identifier.decode("ascii", "replace").strip()

    def _index(self) -> dict[str, str]:
        """{Rock Ridge path: ISO 9660 path} of every file."""
        index: dict[str, str] = {}
        folders = [("/", "")]
        while folders:
            iso_folder, rr_folder = folders.pop()
            for child in self._iso.list_children(iso_path=iso_folder):
                identifier = child.file_identifier()
                if identifier in (b".", b".."):
                    continue
                name = child.rock_ridge.name() if child.rock_ridge else identifier.split(b";")[0]
                iso_path = f"{iso_folder.rstrip('/')}/{identifier.decode('ascii', 'replace')}"
                rr_path = f"{rr_folder}/{name.decode('utf-8', 'replace')}".lstrip("/")
                if child.is_dir():
                    folders.append((iso_path, rr_path))
                else:
                    index[rr_path] = iso_path
        return index

    def names(self) -> list[str]:
        return sorted(self._paths)

    def copy(self, name: str, sink) -> None:
        """Write file ``name``'s bytes to ``sink`` (anything with ``write``)."""
        self._iso.get_file_from_iso_fp(sink, iso_path=self._paths[name], blocksize=CHUNK)

    def open(self, name: str) -> io.BytesIO:
        """File ``name`` in memory: for the small tag files (hash_file reads payload)."""
        buffer = io.BytesIO()
        self.copy(name, buffer)
        buffer.seek(0)
        return buffer

    def hash_file(self, name: str) -> tuple[str, int]:
        """(SHA-256, size) of file ``name``, read straight from the image."""
        digest = _HashingSink()
        self.copy(name, digest)
        return digest.sha256.hexdigest(), digest.size

    def extract_to(self, folder: Path) -> None:
        """Copy every file to ``folder`` (for people, and for other tools to check)."""
        for name in self.names():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as sink:
                self.copy(name, sink)

    def close(self) -> None:
        with contextlib.suppress(pycdlib.pycdlibexception.PyCdlibException):
            self._iso.close()
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> IsoFiles:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _HashingSink:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


def image_sha256(target: str, length: int) -> str:
    """SHA-256 of the first ``length`` bytes of an image or medium (a burned disc is padded after)."""
    digest = hashlib.sha256()
    remaining = length
    with open(drive_path(target), "rb") as stream:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                raise NotReadable(
                    target=target,
                    detail=Said("ends {remaining} bytes before the image's end", remaining=remaining),
                )
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()
