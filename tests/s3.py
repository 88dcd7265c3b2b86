"""A real S3 server on loopback for the replication tests: moto's server as a process.

It enforces credentials (IAM on, after the set-up calls that create the
test's user), Object Lock and legal holds; it does not validate checksums
(the platform notes), which is why the vault verifies replicas itself.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from botocore.config import Config

_buckets = itertools.count(1)


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self, object_lock: bool = False) -> str:
        name = f"custody-test-{next(_buckets)}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def target_toml(self, bucket: str, verify: str = "checksum", name: str = "offsite", **extra) -> str:
        lines = [
            f"[targets.{name}]",
            f'endpoint_url = "{self.endpoint}"',
            f'bucket = "{bucket}"',
            'addressing_style = "path"',
            f'verify = "{verify}"',
        ]
        for key, value in extra.items():
            lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def local_s3_server(free_calls: int | None = None) -> Iterator[str]:
    """Run moto's S3 server on a free loopback port; yield its endpoint URL (the tests, the demo, bench).

    With ``free_calls``, only that many calls go unauthenticated (to create a
    user); every later one must carry that user's keys.
    """
    port = _free_port()
    env = dict(os.environ)
    if free_calls is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(free_calls)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture(scope="session")
def s3_server():
    """moto's server with credentials enforced; yields an S3Server holding a user's working keys."""
    # The first three calls (user, key, policy) are allowed unauthenticated; every later one is checked.
    with local_s3_server(free_calls=3) as endpoint:
        yield _with_user(endpoint)


def _with_user(endpoint: str) -> S3Server:
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="custody")
    key = iam.create_access_key(UserName="custody")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="custody", PolicyName="s3", PolicyDocument=json.dumps(policy))
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3Server:
    """The server, with its user's keys in the standard AWS chain (the environment) for custody."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return s3_server


class FaultyProxy:
    """A loopback HTTP proxy in front of the S3 server that misbehaves on request.

    ``plan`` maps a request kind to the faults to inject, one per matching
    request, in order: "put" (a whole-object PUT), "part" (an UploadPart),
    "object" (a whole-object PUT of a vault object, not an audit segment),
    "any". Faults: "500", "503", "drop" (close the connection half-way
    through the body), "stall" (wait ``stall_seconds`` before forwarding),
    "corrupt" (flip one byte of the body and forward it). Each request goes
    upstream on a fresh connection, so every byte is the real server's answer.
    """

    def __init__(self, upstream: str, stall_seconds: float = 3.0) -> None:
        import threading

        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.stall_seconds = stall_seconds
        self.plan: dict[str, list[str]] = {}
        self.injected: list[tuple[str, str]] = []
        self.down_until = 0.0  # until then (time.monotonic()), every connection is cut at once
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._running = False
        self._server.close()

    def down_for(self, seconds: float) -> None:
        """A partition: every connection for ``seconds`` from now is reset without an answer."""
        self.down_until = time.monotonic() + seconds

    def _accept(self) -> None:
        import threading

        while self._running:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _fault_for(self, method: str, path: str) -> str | None:
        kind = "part" if method == "PUT" and "partNumber=" in path else "put" if method == "PUT" else "other"
        whole_object = (
            method == "PUT"
            and "/objects/sha256/" in path
            and not any(q in path for q in ("?retention", "?legal-hold"))
        ) and "partNumber=" not in path  # (an object's bytes, not its lock settings)
        with self._lock:
            for key in (kind, "object" if whole_object else "", "any"):
                if self.plan.get(key):
                    fault = self.plan[key].pop(0)
                    self.injected.append((kind, fault))
                    return fault
        return None

    def _serve(self, client: socket.socket) -> None:
        # OSError: the client gave up (a time-out it was meant to hit) or the server closed.
        with contextlib.suppress(OSError):
            if time.monotonic() < self.down_until:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()  # (a reset: the network is down)
                return
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        with client:
            reader = client.makefile("rb")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline()
                if not line:
                    return
                head += line
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _version = request_line.split(" ", 2)
            length, expects_continue = 0, False
            kept = []
            for header in header_lines:
                if not header:
                    continue
                name, _, value = header.partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
                if name.lower() == "expect":
                    expects_continue = True
                if name.lower() in ("connection", "expect"):
                    continue
                kept.append(header)
            if expects_continue:
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            fault = self._fault_for(method, path)
            if fault == "drop":
                reader.read(length // 2)
                return  # the connection ends half-way through the body
            body = reader.read(length)
            if fault in ("500", "503"):
                message = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                if fault == "503":
                    message = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                client.sendall(
                    f"HTTP/1.1 {fault} Injected\r\nContent-Type: application/xml\r\n"
                    f"Content-Length: {len(message)}\r\nConnection: close\r\n\r\n".encode()
                    + message
                )
                return
            if fault == "stall":
                time.sleep(self.stall_seconds)
            if fault == "corrupt" and body:
                changed = bytearray(body)
                changed[len(changed) // 2] ^= 0x01
                body = bytes(changed)
            upstream = socket.create_connection(self.upstream)
            with upstream:
                request = "\r\n".join([request_line, *kept, "Connection: close", "", ""]).encode("latin-1")
                upstream.sendall(request + body)
                while chunk := upstream.recv(1 << 16):
                    client.sendall(chunk)
