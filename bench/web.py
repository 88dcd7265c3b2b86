"""Web platform benchmarks (issue 20): each a ratio against a baseline measured in the same run.

- stream:  a 1-hour 1080p playable copy of about 1 GiB, read whole through the item's player URL
           (the web service asks the daemon, which decrypts and verifies it as it goes) vs the
           same framework (Starlette's FileResponse under uvicorn) serving the plaintext file
           (goal: at least 0.8x its throughput)
- seek:    a player's seek to 90 % of that copy: the time to the first 256 KiB of ``Range:
           bytes=N-`` (goal: at most 2x the plaintext server's)
- footage: the footage page (50 items, newest first) over 1,000,000 items, signed in as a clerk
           vs ``custody ls --json --limit 50 --newest-first`` in-process as the vault's own user
           (goal: at most 2x its time); the ls operation alone, without starting a process, is
           printed for information

Run as root under umockdev-wrapper (make bench): it creates the web service's local user and
removes it after. BENCH_WEB_ITEMS changes the catalog's size (default 1,000,000).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.access import SITE_PACKAGES, SYSTEM_PYTHON, _env, add_items, verdict
from bench.access import timed as bench_timed

REPO = Path(__file__).resolve().parents[1]
WEB_USER = "custody-bench-web"
CLERK = "benchclerk"  # a custody account: no login on this machine
PASSWORD = "bench password 1"
SEEK_BYTES = 256 << 10

PLAIN_SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

path = sys.argv[1]

async def serve(request):
    return FileResponse(path, media_type="video/mp4")

uvicorn.run(Starlette(routes=[Route("/copy", serve)]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                raise SystemExit(f"{url}: the server stopped") from None
            time.sleep(0.2)
    raise SystemExit(f"{url}: not serving after 60 s")


def make_hour_of_1080p(workdir: Path) -> Path:
    """A 1-hour 1080p H.264/AAC MP4 of about 1 GiB: 10 s encoded once, looped by stream copy."""
    clip, hour = workdir / "clip.mp4", workdir / "HOUR0001.MP4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=10",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-c:v", "libx264", "-preset", "ultrafast",
         "-b:v", "2300k", "-g", "50", "-c:a", "aac", "-shortest", str(clip)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", "359", "-i", str(clip), "-c", "copy",
         "-movflags", "+faststart", str(hour)],
        check=True,
    )  # fmt: skip
    clip.unlink()
    return hour


def read_all(client: httpx.Client, url: str) -> tuple[float, int]:
    started, size = time.perf_counter(), 0
    with client.stream("GET", url) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_bytes(1 << 20):
            size += len(chunk)
    return time.perf_counter() - started, size


def seek(client: httpx.Client, url: str, at: int) -> float:
    """The time to the first SEEK_BYTES of a player's ``Range: bytes=at-`` (then it stops reading)."""
    started, got = time.perf_counter(), 0
    with client.stream("GET", url, headers={"Range": f"bytes={at}-"}) as answer:
        if answer.status_code != 206:
            raise SystemExit(f"{url}: a range answered {answer.status_code}")
        for chunk in answer.iter_bytes(64 << 10):
            got += len(chunk)
            if got >= SEEK_BYTES:
                break
    return time.perf_counter() - started


def in_process_page(home: Path) -> float:
    """ls of the footage page's one page in-process, as the vault's own user (best of five)."""
    script = (
        "import sys, time; from pathlib import Path\n"
        "from custody.config import load_settings\n"
        "from custody.operations import items, perform\n"
        "settings = load_settings(Path(sys.argv[1])); best = 1e9\n"
        "for _ in range(5):\n"
        "    t = time.perf_counter()\n"
        "    page = perform(settings, 'ls', items.ListItems(limit=51, newest_first=True), actor='bench')\n"
        "    best = min(best, time.perf_counter() - t)\n"
        "assert len(page) == 51\n"
        "print(best)\n"
    )
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", script, str(home)], env=_env(None), capture_output=True, text=True, cwd="/"
    )
    if result.returncode != 0:
        raise SystemExit(f"in-process ls failed: {result.stderr[-500:]}")
    return float(result.stdout.strip())


def bench_web(workdir: Path) -> bool:
    items = int(os.environ.get("BENCH_WEB_ITEMS", "1000000"))
    subprocess.run(["userdel", "-f", WEB_USER], capture_output=True)
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", WEB_USER], check=True
    )
    workdir = workdir.resolve()
    home = workdir / "web-home"
    shared = Path(tempfile.mkdtemp(prefix="custody-bench-web-", dir=workdir.parent))
    shared.chmod(0o755)
    state = shared / "state"
    state.mkdir()
    shutil.chown(state, WEB_USER, WEB_USER)
    socket_path = shared / "api.sock"
    custody = [SYSTEM_PYTHON, "-m", "custody", "--home", str(home)]
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([*custody, "init"], check=True, capture_output=True, env=_env(None))
        hour = make_hour_of_1080p(workdir)
        subprocess.run([*custody, "ingest", str(hour)], check=True, capture_output=True, env=_env(None))
        subprocess.run([*custody, "media", "run", "--once"], check=True, capture_output=True, env=_env(None))
        plain = workdir / "plain.mp4"
        subprocess.run(
            [*custody, "extract", "EV-000001", "--playable", "--out", str(plain)],
            check=True, capture_output=True, env=_env(None),
        )  # fmt: skip
        hour.unlink()
        add_items(home, items - 1)
        (home / "custody.toml").write_text(
            f'[access]\nsocket = "{socket_path}"\nsocket_group = "{WEB_USER}"\nmax_requests_per_second = 0\n'
            f'[access.roles]\nclerk = ["{CLERK}"]\n[web]\nservice_user = "{WEB_USER}"\n'
        )
        import gi

        gi.require_version("UMockdev", "1.0")
        from gi.repository import UMockdev

        testbed = UMockdev.Testbed.new()
        daemon = subprocess.Popen(
            [*custody, "daemon"], env={**_env(None), "UMOCKDEV_DIR": testbed.get_root_dir()},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(daemon)
        deadline = time.monotonic() + 120
        while not socket_path.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the daemon did not start")
            time.sleep(0.1)
        from custody.ingestd import api

        api.call(socket_path, "account_set", {"login": CLERK, "password": PASSWORD, "new": True})
        web_port, plain_port = free_port(), free_port()
        web_env = {**_env(socket_path), "PYTHONPATH": f"{REPO}:{SITE_PACKAGES}", "HOME": "/"}
        as_web_user = ["setpriv", f"--reuid={WEB_USER}", f"--regid={WEB_USER}", "--init-groups"]
        web_command = [*as_web_user, SYSTEM_PYTHON, "-m", "custody", "web", "--port", str(web_port),
                       "--secret-file", str(state / "session.key")]  # fmt: skip
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        processes.append(subprocess.Popen(web_command, env=web_env, cwd="/", **quiet))
        plain_command = [SYSTEM_PYTHON, "-c", PLAIN_SERVER, str(plain), str(plain_port)]
        processes.append(subprocess.Popen(plain_command, env=_env(None), **quiet))
        web_base, plain_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{plain_port}/copy"
        wait_until_serving(f"{web_base}/sign-in", processes[1])
        wait_until_serving(plain_url.replace("/copy", "/"), processes[2])
        clerk = httpx.Client(base_url=web_base, timeout=600)
        signed = clerk.post("/sign-in", data={"login": CLERK, "password": PASSWORD}, follow_redirects=True)
        if "sign-out" not in signed.text:
            raise SystemExit("the bench clerk could not sign in")
        plain_client = httpx.Client(timeout=600)
        size = plain.stat().st_size
        player = "/items/EV-000001/playable"

        # The whole copy, interleaved, best of three.
        web_reads, plain_reads = [], []
        for _ in range(3):
            elapsed, got = read_all(clerk, player)
            assert got == size, (got, size)
            web_reads.append(elapsed)
            plain_reads.append(read_all(plain_client, plain_url)[0])
        stream_ratio = min(plain_reads) / min(web_reads)  # throughput through the page / plaintext

        # Seeks to 90 %: interleaved, the median of eleven (the first of each warms the path).
        at = int(size * 0.9)
        web_seeks, plain_seeks = [], []
        for _ in range(11):
            web_seeks.append(seek(clerk, player, at))
            plain_seeks.append(seek(plain_client, plain_url, at))
        seek_ratio = statistics.median(web_seeks) / statistics.median(plain_seeks)

        # The footage page over the whole catalog vs one page of ls in-process.
        pages = []
        for _ in range(5):
            started = time.perf_counter()
            page = clerk.get("/footage")
            pages.append(time.perf_counter() - started)
            assert page.status_code == 200 and f"EV-{items:06d}" in page.text
        command = [*custody, "ls", "--json", "--limit", "50", "--newest-first"]
        local_command = min(bench_timed(command, _env(None)) for _ in range(5))
        local_page = in_process_page(home)
        page_ratio = min(pages) / local_command
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        subprocess.run(["userdel", "-f", WEB_USER], capture_output=True)
        subprocess.run(["groupdel", WEB_USER], capture_output=True)
        shutil.rmtree(shared, ignore_errors=True)
    mb = size / 1e6
    print(f"web platform: a 1-hour 1080p playable copy ({mb:,.0f} MB); the footage page over {items:,} items")
    print(
        f"  plaintext file, Starlette FileResponse  {min(plain_reads):6.2f} s  {mb / min(plain_reads):6.0f} MB/s"
    )
    print(
        f"  the item's player URL (decrypting)      {min(web_reads):6.2f} s  {mb / min(web_reads):6.0f} MB/s"
    )
    print(
        f"  throughput ratio                        {stream_ratio:6.2f}x  (goal >= 0.8x: {verdict(stream_ratio >= 0.8)})"
    )
    print(f"  seek to 90 %, plaintext (median)        {1000 * statistics.median(plain_seeks):6.1f} ms")
    print(f"  seek to 90 %, the player URL (median)   {1000 * statistics.median(web_seeks):6.1f} ms")
    print(
        f"  ratio                                   {seek_ratio:6.2f}x  (goal <= 2x: {verdict(seek_ratio <= 2)})"
    )
    print(f"  custody ls --json, one page, in-process {1000 * local_command:6.1f} ms")
    print(f"  the footage page as a clerk (best of 5) {1000 * min(pages):6.1f} ms")
    print(f"  (for information: the ls operation alone, no process start, {1000 * local_page:.1f} ms)")
    print(
        f"  ratio                                   {page_ratio:6.2f}x  (goal <= 2x: {verdict(page_ratio <= 2)})"
    )
    return stream_ratio >= 0.8 and seek_ratio <= 2 and page_ratio <= 2
