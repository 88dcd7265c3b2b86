"""Docking benchmarks: the daemon pulling from loop-mounted FAT32 recorder images.

Run under umockdev-wrapper as root (make bench does): hotplug is simulated,
the images, loop devices, FUSE mounts and the vault are real.

- pull:  the whole image through the daemon vs `cp -r` of the same tree from
         the same read-only FUSE mount plus `sync` (goal >= 0.5x)
- many:  N = 2, 4 and 8 recorders docked at once vs one (issue 18, goal 3):
         aggregate throughput at least 0.9 x N x one recorder's. Recorders read
         at a USB 2.0 mass-storage rate (BENCH_RECORDER_MBPS, 38 MB/s, through a
         blkio cgroup on their loop devices), as docked recorders do, with
         BENCH_MANY_MIB (256) each; `custody status` is timed through the socket
         all along (goal: under a second). The same sweep with unthrottled loop
         devices shows the knee on this machine and which processes take the CPU
- first: from the add event to the first byte read, median of 7 (goal < 2 s)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from tests.conftest import make_clip  # noqa: E402
from tests.simulated import SimulatedRecorder  # noqa: E402

MiB = 1 << 20
HOST_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def host(*command) -> str:
    return subprocess.run(
        [str(c) for c in command], env=HOST_ENV, check=True, capture_output=True, text=True
    ).stdout


def recorder_image(path: Path, total_mib: int, files: int, tag: bytes, fs: str = "vfat") -> int:
    """Write a FAT32 image (or, with ``fs`` "ext4", an ext4 one) with ``files`` distinct files
    totalling ``total_mib``; return the bytes of footage."""
    tree = path.with_suffix(".tree")
    folder = tree / "DCIM" / "100BWC"
    folder.mkdir(parents=True)
    chunk = os.urandom(16 * MiB)
    per_file = total_mib * MiB // files
    # Each file is a real (short) MP4 followed by a 'free' box of random bytes: ffprobe reads its
    # recording time as from a recorder's file (random bytes alone make it search the whole file).
    seed = path.with_suffix(".seed.mp4")
    make_clip(seed, seconds=2)
    header = seed.read_bytes()
    seed.unlink()
    for n in range(files):
        # Sizes differ a little, as recordings' do (a vault holding an item of a file's exact size
        # hashes that file before sealing it, to recognise a duplicate without writing it).
        size = per_file - (sum(tag) % 997) * 4096 - n * 512
        with open(folder / f"CLIP{n:04d}.MP4", "wb") as out:
            out.write(header)
            padding = size - len(header) - 8
            out.write(struct.pack(">I4s", 8 + padding, b"free"))
            out.write(tag + n.to_bytes(8, "big"))  # distinct content, so nothing is a duplicate
            written = len(header) + 8 + len(tag) + 8
            while written < size:
                piece = chunk[: size - written]
                out.write(piece)
                written += len(piece)
    size = total_mib * MiB * 11 // 10 + 96 * MiB
    host("truncate", "-s", str(size), path)
    if fs == "ext4":  # (a filesystem this machine's kernel mounts itself, as a station's does FAT)
        host("mkfs.ext4", "-q", "-d", tree, path)
        footage = tree_bytes(tree)
        shutil.rmtree(tree)
        return footage
    # Clusters as large as FAT32 allows for the size, up to 32 KiB (what the SD
    # Association's formatter gives an SDHC card); 4 KiB clusters would make the
    # FUSE helper, not custody, the thing measured.
    sectors = next(s for s in (64, 32, 16, 8, 4, 2, 1) if size // (s * 512) > 70_000)
    host("mkfs.vfat", "-F", "32", "-s", str(sectors), "-n", "BODYCAM", path)
    host("mcopy", "-s", "-m", "-i", path, tree / "DCIM", "::/")
    footage = tree_bytes(tree)
    shutil.rmtree(tree)
    return footage


def tree_bytes(tree: Path) -> int:
    return sum(path.stat().st_size for path in tree.rglob("*") if path.is_file())


class Station:
    """A fresh vault with recorders registered, and its daemon, seeing one umockdev testbed."""

    def __init__(self, workdir: Path, testbed, serials: list[str], fs: str = "vfat") -> None:
        self.home = workdir / "vault"
        shutil.rmtree(self.home, ignore_errors=True)
        self.custody = [sys.executable, "-m", "custody", "--home", str(self.home)]
        subprocess.run([*self.custody, "init"], check=True, capture_output=True)
        profile = "dcim"
        if fs == "ext4":
            profile = "ext4cam"
            with open(self.home / "custody.toml", "a") as config:
                config.write(
                    f'\n[profiles.{profile}]\ndescription = "bench recorder, ext4"\nfilesystems = ["ext4"]\n'
                )
        for serial in serials:
            subprocess.run(
                [*self.custody, "recorder", "add", serial, "--profile", profile],
                check=True,
                capture_output=True,
            )
        env = dict(os.environ, UMOCKDEV_DIR=testbed.get_root_dir())
        self.log = open(workdir / "daemon.log", "ab")  # noqa: SIM115 - closed in stop()
        self.daemon = subprocess.Popen(
            [*self.custody, "daemon"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        while not (self.home / "run" / "status.json").exists():
            if self.daemon.poll() is not None:
                raise SystemExit(f"the daemon failed to start; see {workdir / 'daemon.log'}")
            time.sleep(0.05)
        subprocess.run(["sync"], check=True)

    def finished_sessions(self) -> int:
        # Read the catalog directly: a `custody status` process per poll would steal CPU from the pull.
        with sqlite3.connect(f"file:{self.home / 'catalog.db'}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT count(*) FROM dock_sessions WHERE state != 'pulling'").fetchone()[0]

    def wait_sessions(self, count: int) -> None:
        while self.finished_sessions() < count:
            time.sleep(0.05)

    def stop(self) -> None:
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(timeout=300)
        self.log.close()
        shutil.rmtree(self.home)


class Recorders:
    """Loop devices for images, plugged into the testbed as simulated recorders."""

    numbers = iter(range(1, 10_000))

    def __init__(self, testbed) -> None:
        self.testbed = testbed
        self.devices: list[str] = []

    def attach(self, image: Path) -> str:
        device = host("losetup", "--find", "--show", "--read-only", image).strip()
        self.devices.append(device)
        return device

    def plug(self, serial: str, device: str, fs: str = "vfat") -> SimulatedRecorder:
        recorder = SimulatedRecorder(serial, device, fs, number=next(Recorders.numbers))
        recorder.plug(self.testbed)
        return recorder

    def close(self) -> None:
        for device in self.devices:
            subprocess.run(["losetup", "-d", device], env=HOST_ENV, check=False)


class UsbRate:
    """Makes loop devices read like USB recorders: a blkio cgroup throttles reads of them.

    Processes put in it (the daemon, and the FUSE helpers it starts) read the
    devices at ``bytes_per_second`` each; nothing else is limited. Reads served
    from the page cache are not throttled, so runs start with cold caches.
    (umockdev redirects /sys for this process: the cgroup files are written by
    host commands.)
    """

    def __init__(self, devices: list[str], bytes_per_second: int) -> None:
        self.path = f"/sys/fs/cgroup/blkio/custody-bench-{os.getpid()}"
        host("mkdir", self.path)
        for device in devices:
            rdev = os.stat(device).st_rdev
            self._write(
                "blkio.throttle.read_bps_device", f"{os.major(rdev)}:{os.minor(rdev)} {bytes_per_second}"
            )

    def _write(self, name: str, value: str) -> None:
        host("sh", "-c", f"echo '{value}' > '{self.path}/{name}'")

    def enter(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def close(self) -> None:
        subprocess.run(["rmdir", self.path], env=HOST_ENV, capture_output=True, check=False)


def cold_caches() -> None:
    """Drop the page cache, so a throttled recorder is really read from its device."""
    subprocess.run(["sync"], check=True)
    host("sh", "-c", "echo 1 > /proc/sys/vm/drop_caches")


def cpu_times() -> list[int]:
    """The machine's CPU time counters (user, nice, system, idle, iowait, ...) from /proc/stat."""
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:]]


def cp_from_mount(device: str, workdir: Path) -> float:
    """`cp -r` of the volume from a read-only fusefat mount (the daemon's helper) plus sync."""
    mountpoint = workdir / "cp-mount"
    target = workdir / "cp-copy"
    mountpoint.mkdir()
    host("fusefat", "-o", "ro", device, mountpoint)
    try:
        started = time.perf_counter()
        subprocess.run(
            ["sh", "-c", f"cp -r '{mountpoint}/DCIM' '{target}' && sync"], check=True, env=HOST_ENV
        )
        elapsed = time.perf_counter() - started
    finally:
        host("umount", mountpoint)
        mountpoint.rmdir()
        shutil.rmtree(target, ignore_errors=True)
    return elapsed


def daemon_pull(
    workdir: Path,
    testbed,
    recorders: Recorders,
    devices: list[tuple[str, str]],
    usb: UsbRate | None = None,
    watch: Watch | None = None,
    fs: str = "vfat",
) -> float:
    """Seconds from plugging ``devices`` (serial, loop device) at once until every session has
    finished; ``watch`` samples status latency and per-process CPU meanwhile."""
    station = Station(workdir, testbed, [serial for serial, _ in devices], fs)
    if usb is not None:
        usb.enter(station.daemon.pid)
        cold_caches()
    try:
        before = cpu_times()
        started = time.perf_counter()
        plugged = [recorders.plug(serial, device, fs) for serial, device in devices]
        if watch is not None:
            watch.start(station)
        try:
            station.wait_sessions(len(devices))
        finally:
            if watch is not None:
                watch.stop()
        elapsed = time.perf_counter() - started
        after = cpu_times()
        busy = [b - a for a, b in zip(before, after, strict=True)]
        idle = busy[3] + busy[4]
        print(
            f"    ({len(devices)} recorder(s): {elapsed:.2f} s, CPU {100 * (sum(busy) - idle) / sum(busy):.0f}% busy)"
        )
        for recorder in plugged:
            recorder.unplug(testbed)
    finally:
        station.stop()
    return elapsed


class Watch:
    """While a pull runs: `custody status --json` through the daemon's socket once a second (its
    wall time, as a clerk waits for it), and the CPU each process name takes (from /proc)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.cpu_by_name: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, station: Station) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._status, args=(station,), daemon=True),
            threading.Thread(target=self._cpu, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _status(self, station: Station) -> None:
        while not self._stop.wait(1.0):
            started = time.perf_counter()
            subprocess.run([*station.custody, "status", "--json"], capture_output=True, check=False)
            self.latencies.append(time.perf_counter() - started)

    def _cpu(self) -> None:
        first: dict[int, tuple[str, int]] = {}
        last: dict[int, int] = {}
        seen_at_start = set(_process_ticks())
        while True:
            for pid, (name, ticks) in _process_ticks().items():
                first.setdefault(pid, (name, 0 if pid not in seen_at_start else ticks))
                last[pid] = ticks
            if self._stop.wait(0.25):
                break
        hertz = os.sysconf("SC_CLK_TCK")
        for pid, (name, start) in first.items():
            self.cpu_by_name[name] = self.cpu_by_name.get(name, 0.0) + (last[pid] - start) / hertz

    def top(self, count: int = 3) -> str:
        ranked = sorted(self.cpu_by_name.items(), key=lambda kv: -kv[1])[:count]
        return ", ".join(f"{name} {seconds:.1f} CPU-s" for name, seconds in ranked)


def _process_ticks() -> dict[int, tuple[str, int]]:
    """Every process's name and user+system CPU ticks so far."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name.startswith("python"):  # the daemon, or a `custody status` of the benchmark's
            with contextlib.suppress(OSError):
                name = (
                    "custody daemon"
                    if b"daemon" in Path(f"/proc/{entry}/cmdline").read_bytes()
                    else "custody status"
                )
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    return found


def many_recorders(
    workdir: Path, testbed, recorders: Recorders, counts: list[int], rate: int, fs: str = "vfat"
) -> bool:
    """Docking N recorders at once vs one, for N in ``counts``: throttled to ``rate`` bytes/s per
    recorder (goal: aggregate >= 0.9 x N x one), then unthrottled (the knee; for information)."""
    each_mib = int(os.environ.get("BENCH_MANY_MIB", "256"))
    most = max(counts)
    images = [workdir / f"many-{n}.img" for n in range(most)]
    sizes = [recorder_image(image, each_mib, 4, f"m{n}".encode(), fs) for n, image in enumerate(images)]
    devices = [(f"MANY{n:04d}", recorders.attach(image)) for n, image in enumerate(images)]
    ok = True
    try:
        for throttled in (True, False) if rate else (False,):
            usb = UsbRate([device for _, device in devices], rate) if throttled else None
            try:
                times: dict[int, float] = {}
                watches: dict[int, Watch] = {}
                for n in [1, *counts]:
                    watches[n] = Watch()
                    times[n] = daemon_pull(workdir, testbed, recorders, devices[:n], usb, watches[n], fs)
            finally:
                if usb is not None:
                    usb.close()
            one = sizes[0] / 1e6 / times[1]
            kind = "FAT32 through fusefat" if fs == "vfat" else f"{fs}, mounted by the kernel"
            if throttled:
                print(
                    f"{most} recorders ({kind}) of {each_mib} MiB at {rate / 1e6:g} MB/s each (USB 2.0): N at once vs one"
                )
            else:
                print(
                    f"the same ({kind}), unthrottled loop devices (the knee on this machine; for information)"
                )
            print(f"  1 recorder                            {times[1]:6.2f} s  {one:6.0f} MB/s")
            for n in counts:
                aggregate = sum(sizes[:n]) / 1e6 / times[n]
                ratio = aggregate / (n * one)
                status = watches[n].latencies
                worst = max(status) if status else float("nan")
                line = f"  {n} recorders, aggregate               {times[n]:6.2f} s  {aggregate:6.0f} MB/s  {ratio:4.2f} x N x one"
                if throttled:
                    line += f" (goal >= 0.9: {'met' if ratio >= 0.9 else 'MISSED'})"
                    ok = ok and ratio >= 0.9 and worst < 1.0
                print(line)
                print(
                    f"      status answered in {statistics.median(status) if status else float('nan'):.2f} s median, "
                    f"{worst:.2f} s worst of {len(status)}"
                    + (f" (goal < 1 s: {'met' if worst < 1.0 else 'MISSED'})" if throttled else "")
                )
                print(f"      CPU by process: {watches[n].top()}")
    finally:
        for image in images:
            image.unlink(missing_ok=True)
    return ok


def first_byte_latency(
    workdir: Path, testbed, recorders: Recorders, device: str, runs: int = 7
) -> list[float]:
    """Seconds from the add event to the first staging file (the first byte being read), per run."""
    station = Station(workdir, testbed, ["LAT0001"])
    staging = station.home / "objects" / "staging"
    latencies = []
    try:
        for run in range(runs):
            started = time.perf_counter()
            recorder = recorders.plug("LAT0001", device)
            while not any(staging.iterdir()):
                time.sleep(0.002)
            latencies.append(time.perf_counter() - started)
            recorder.unplug(testbed)  # cuts the pull off: the next run reads the same file again
            station.wait_sessions(run + 1)
    finally:
        station.stop()
    return latencies


def bench_dock(workdir: Path) -> bool:
    if os.geteuid() != 0:
        print("dock benchmarks need root (loop devices and mounts): skipped, goals NOT shown")
        return False
    testbed = UMockdev.Testbed.new()
    total_mib = int(os.environ.get("BENCH_DOCK_MIB", "4096"))
    recorders = Recorders(testbed)
    try:
        big = workdir / "recorder-big.img"
        nbytes = recorder_image(big, total_mib, 16, b"big")
        big_device = recorders.attach(big)
        cp_times, pull_times = [], []
        for _ in range(2):  # interleaved, best of two: drift on a shared machine hits both alike
            cp_times.append(cp_from_mount(big_device, workdir))
            pull_times.append(daemon_pull(workdir, testbed, recorders, [("BIG0001", big_device)]))
        big.unlink()
        mb = nbytes / 1e6
        best_cp, best_pull = min(cp_times), min(pull_times)
        pull_ratio = best_cp / best_pull
        print(f"pull {total_mib} MiB from a loop-mounted FAT32 recorder image (best of 2)")
        print(f"  cp -r from the fusefat mount && sync  {best_cp:6.2f} s  {mb / best_cp:6.0f} MB/s")
        print(f"  custody daemon, plug to session done  {best_pull:6.2f} s  {mb / best_pull:6.0f} MB/s")
        print(
            f"  ratio                                 {pull_ratio:6.2f}x  (goal >= 0.5x: {'met' if pull_ratio >= 0.5 else 'MISSED'})"
        )

        rate = int(float(os.environ.get("BENCH_RECORDER_MBPS", "38")) * 1e6)
        many_ok = many_recorders(workdir, testbed, recorders, [2, 4, 8], rate)
        # This machine's kernel has no vfat driver; a station's has. ext4 images show the pull with
        # a kernel filesystem (for information: recorders format their cards FAT32 or exFAT).
        many_recorders(workdir, testbed, recorders, [2, 4, 8], rate, fs="ext4")

        latency_image = workdir / "recorder-latency.img"
        recorder_image(latency_image, 64, 2, b"lat")
        a = recorders.attach(latency_image)
        latencies = first_byte_latency(workdir, testbed, recorders, a)
        median = statistics.median(latencies)
        print("add event to first byte read (7 docks)")
        print(
            f"  median {median:.3f} s, max {max(latencies):.3f} s  (goal < 2 s: {'met' if median < 2 else 'MISSED'})"
        )
        latency_image.unlink()
    finally:
        recorders.close()
    return pull_ratio >= 0.5 and many_ok and median < 2
