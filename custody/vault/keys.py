"""The vault's two secrets: the master key that wraps every object's data key,
and the Ed25519 key that signs audit checkpoints.

The master key comes from a systemd credential when one is present
($CREDENTIALS_DIRECTORY/<name>), else from the key file created by
``custody init`` (mode 0600). Each master key has a key id derived from it, so
objects record which key wrapped them and keys can rotate later.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody.errors import CustodyError, Said

MASTER_KEY_BYTES = 32

# Beside the keys folder's signing key: its public half, which discs and replicas carry.
PUBLIC_KEY_NAME = "keys/signing.pub"


class KeyFileMissing(CustodyError):
    """key file {path} is missing: restore it from the key backup (without it the vault cannot be read)"""

    exit_code = 4


class KeyFileInvalid(CustodyError):
    """key file {path} is not usable: {problem}"""

    exit_code = 4


@dataclass(frozen=True)
class MasterKey:
    """A master key and the id objects record it by."""

    key: bytes
    source: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"custody master key id\0" + self.key).hexdigest()[:16]


def create_master_key(path: Path) -> MasterKey:
    """Write a new random master key to ``path`` (mode 0600, must not exist) and return it."""
    key = os.urandom(MASTER_KEY_BYTES)
    _write_secret(path, key.hex().encode() + b"\n")
    return MasterKey(key=key, source=str(path))


def load_master_key(path: Path, credential_name: str) -> MasterKey:
    """Return the master key from the systemd credential when present, else from ``path``.

    Raise KeyFileMissing when neither exists, KeyFileInvalid when the content is
    not a 32-byte key (raw or hex) or the key file is readable by others.
    """
    credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials_dir:
        credential = Path(credentials_dir) / credential_name
        if credential.exists():
            return MasterKey(key=_parse_key(credential.read_bytes(), credential), source=str(credential))
    _check_private(path)
    return MasterKey(key=_parse_key(path.read_bytes(), path), source=str(path))


def read_master_key_file(path: Path) -> MasterKey:
    """Return the master key in ``path`` (a backup handed to ``custody restore``); raise KeyFile errors."""
    try:
        content = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileMissing(path=path) from exc
    return MasterKey(key=_parse_key(content, path), source=str(path))


def write_master_key(path: Path, master: MasterKey) -> None:
    """Write ``master`` to a new key file (mode 0600)."""
    _write_secret(path, master.key.hex().encode() + b"\n")


def write_signing_key(path: Path, public_path: Path, private: Ed25519PrivateKey) -> None:
    """Write an existing signing key (0600) and its public half (a restored vault keeps its key)."""
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_secret(path, pem)
    public_path.write_bytes(public_key_pem(private.public_key()))


@dataclass(frozen=True)
class RotatedKey:
    """A signing key handed over: the fingerprints before and after."""

    old_fingerprint: str
    new_fingerprint: str


def pending_signing_key_path(path: Path) -> Path:
    """Where a new signing key waits while its rotation event commits (see vault.integrity.rotate_signing_key)."""
    return path.with_name(f".{path.name}.new")


def stage_signing_key(path: Path, private: Ed25519PrivateKey) -> Path:
    """Write ``private`` beside the signing key at ``path`` (0600, fsynced); return where."""
    pending = pending_signing_key_path(path)
    pending.unlink(missing_ok=True)
    _write_secret(pending, signing_key_pem(private).encode())
    return pending


def install_signing_key(pending: Path, path: Path, public_path: Path) -> Ed25519PrivateKey:
    """Rename the staged key over the signing key and write its public half; return it. Raise OSError."""
    private = load_signing_key(pending)
    public_partial = public_path.with_name(f".{public_path.name}.new")
    public_partial.unlink(missing_ok=True)
    public_partial.write_bytes(public_key_pem(private.public_key()))
    os.replace(public_partial, public_path)
    os.replace(pending, path)
    return private


def signing_key_pem(private: Ed25519PrivateKey) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _parse_key(content: bytes, path: Path) -> bytes:
    if len(content) == MASTER_KEY_BYTES:
        return content
    try:
        key = bytes.fromhex(content.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise KeyFileInvalid(path=path, problem="expected 32 bytes, raw or as 64 hex digits")
    return key


def create_signing_key(path: Path, public_path: Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 signing key to ``path`` (0600) and its public half to ``public_path``."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_secret(path, pem)
    public_path.write_bytes(public_key_pem(private.public_key()))
    return private


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Return the checkpoint signing key; raise KeyFileMissing / KeyFileInvalid."""
    _check_private(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise KeyFileInvalid(path=path, problem=Said("not a PEM private key ({error})", error=exc)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileInvalid(path=path, problem="not an Ed25519 key")
    return key


def public_key_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_is_valid(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _check_private(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileMissing(path=path) from exc
    if stat.S_IMODE(mode) & 0o077:
        raise KeyFileInvalid(
            path=path,
            problem=Said(
                "mode {mode:04o} lets others read it; run: chmod 600 {path}",
                mode=stat.S_IMODE(mode),
                path=path,
            ),
        )


def _write_secret(path: Path, content: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
