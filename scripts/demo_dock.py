"""The docking demo (run by scripts/demo under umockdev-wrapper).

A recorder is simulated: umockdev tells udev a USB disk appeared, but the
disk is a real FAT32 image on a real loop device, and the daemon, mounts and
vault are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: the simulated recorder
from tests.simulated import SimulatedRecorder  # noqa: E402

SERIAL, BADGE = "BWC0042", "031245"
CLIPS = 5
CLIP_SECONDS = 60
HOLE_SECONDS = 30
HOST_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def host(*command) -> str:
    return subprocess.run(
        [str(c) for c in command], env=HOST_ENV, check=True, capture_output=True, text=True
    ).stdout


def step(*args: str) -> str:
    print(f"\n$ custody {' '.join(args)}", flush=True)
    result = subprocess.run(["custody", *args], capture_output=True, text=True)
    print(result.stdout, end="")
    if result.returncode != 0:
        print(result.stderr, end="", file=sys.stderr)
        raise SystemExit(f"custody {args[0]} failed ({result.returncode})")
    return result.stdout


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="custody-demo."))
    home = work / "vault"
    os.environ["CUSTODY_HOME"] = str(home)
    # The transcript shows tables as the terminal running the demo would (custody's output is
    # captured here, so it would otherwise be the tab-separated layout for scripts).
    os.environ.setdefault("CUSTODY_LAYOUT", "terminal")
    os.environ.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    print("This demo SIMULATES the dock: umockdev plays the USB hotplug of a recorder.")
    print("The recorder's disk is a real FAT32 image on a real loop device; mounting,")
    print("pulling, sealing and verifying are the real thing.")

    say(f"generating {CLIPS} clips of {CLIP_SECONDS} s with ffmpeg (the officer's shift)")
    folder = work / "volume" / "DCIM" / "100BWC"
    folder.mkdir(parents=True)
    # One recording the recorder split into segments, with a 30 s hole before the
    # last one (the kind of interruption a clerk must explain).
    first_start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1, seconds=CLIPS * CLIP_SECONDS)
    for n in range(CLIPS):
        hole = HOLE_SECONDS if n == CLIPS - 1 else 0
        start = (first_start + timedelta(seconds=n * CLIP_SECONDS + hole)).astimezone(
            ZoneInfo("Asia/Shanghai")
        )
        name = f"{SERIAL}_{BADGE}_{start:%Y%m%d%H%M%S}{'_IMP' if n == 2 else ''}.MP4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={CLIP_SECONDS}",
             "-f", "lavfi", "-i", f"sine=frequency={330 + 110 * n}:duration={CLIP_SECONDS}",
             "-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-c:a", "aac", "-shortest", str(folder / name)],
            check=True,
        )  # fmt: skip
        print(f"  {name}  ({(folder / name).stat().st_size / 1e6:.1f} MB)")

    say("writing them into a FAT32 recorder image with mtools")
    image = work / "recorder.img"
    host("truncate", "-s", "1G", image)
    host("mkfs.vfat", "-F", "32", "-n", "BODYCAM", image)
    host("mcopy", "-s", "-m", "-i", image, work / "volume" / "DCIM", "::/")
    image_sha = host("sha256sum", image).split()[0]
    print(f"  recorder.img sha256 {image_sha[:16]}...")

    step("init", "--organisation", "示范县公安局 Demo County Public Security Bureau")
    step("officer", "add", BADGE, "--name", "Wang Li", "--unit", "Traffic 2")
    step("recorder", "add", SERIAL, "--officer", BADGE, "--from", "2026-01-01", "--profile", "bwc-badge")

    testbed = UMockdev.Testbed.new()
    say("starting the docking daemon (custody daemon)")
    env = dict(os.environ, UMOCKDEV_DIR=testbed.get_root_dir())
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    daemon = subprocess.Popen(["custody", "daemon"], env=env, stdout=log, stderr=subprocess.STDOUT)
    device = host("losetup", "--find", "--show", "--read-only", image).strip()
    try:
        while not (home / "run" / "status.json").exists():
            time.sleep(0.1)
        say(f"docking recorder {SERIAL} (simulated USB plug-in of {device})")
        recorder = SimulatedRecorder(SERIAL, device, "vfat")
        recorder.plug(testbed)
        while True:
            status = json.loads(
                subprocess.run(["custody", "status", "--json"], capture_output=True, text=True).stdout
            )
            docked = (status.get("daemon") or {}).get("docked") or []
            for entry in docked:
                if "files_total" in entry:
                    print(
                        f"  status: {entry['state']}: file {entry['files_done']} of {entry['files_total']}, "
                        f"{entry['bytes_done'] / 1e6:.1f} of {entry['bytes_total'] / 1e6:.1f} MB",
                        flush=True,
                    )
            if status["sessions"] and status["sessions"][0]["state"] != "pulling":
                break
            time.sleep(0.4)
        say("the daemon makes playable copies and thumbnails, checks continuity, then decode-checks")
        while True:
            jobs = json.loads(
                subprocess.run(["custody", "status", "--json"], capture_output=True, text=True).stdout
            )["media_jobs"]
            print(f"  media jobs: {jobs}", flush=True)
            if not jobs.get("queued") and not jobs.get("running"):
                break
            time.sleep(1)
        step("status")
        say(f"undocking recorder {SERIAL}")
        recorder.unplug(testbed)
        time.sleep(1)
    finally:
        say("stopping the daemon (SIGTERM: clean stop, nothing left mounted)")
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=120)
        log.close()
        print(f"  daemon exited {code}")
        subprocess.run(["losetup", "-d", device], env=HOST_ENV, check=False)
    after = host("sha256sum", image).split()[0]
    print(
        f"  recorder.img sha256 {after[:16]}... {'unchanged: read-only held' if after == image_sha else 'CHANGED'}"
    )
    # The card and the generated clips are scratch (1.1 GB sparse, ~280 MB used);
    # the footage is in the vault now. Each demo leaving them behind filled /tmp.
    image.unlink()
    shutil.rmtree(work / "volume")

    say("the evidence clerk's steps")
    step("ls")
    step("tag", "EV-000001", "EV-000002", "--case", "2026-0412", "--party", "Zhang Wei")
    step("ls", "--untagged")
    step("show", "EV-000003")
    playable = work / "EV-000003-playable.mp4"
    thumbnail = work / "EV-000003-thumbnail.jpg"
    step("extract", "EV-000003", "--playable", "--out", str(playable))
    step("extract", "EV-000003", "--thumbnail", "--out", str(thumbnail))
    say("continuity: the 30 s hole before the last segment")
    step("report", "gaps", "--open")
    gaps = json.loads(
        subprocess.run(["custody", "report", "gaps", "--json"], capture_output=True, text=True).stdout
    )
    if gaps:
        step("explain", gaps[0]["id"], "--reason", "officer changed the battery during the stop (demo)")
    step("report", "gaps")
    step("report", "window")
    replicate_offsite(home)
    step("verify")
    iso = export_evidence_disc(work)
    case_file(work, thumbnail)
    shutil.copy(work / "daemon.log", home / "daemon.log")
    print(
        f"\nThe demo vault is at {home} (try: CUSTODY_HOME={home} custody ls); daemon log: {home}/daemon.log"
    )
    print(f"Playable copy: {playable} (plays in any player); thumbnail: {thumbnail}")
    print(f"Evidence disc image: {iso}")
    print(f"Its written description: {iso.with_name(iso.stem + '.description.pdf')} (and .txt beside it)")
    print("Check the disc without custody: extract it, then python3 -I verify.py (see README.txt on it)")
    print(f"The archived case file (cover and index, PDF): CUSTODY_HOME={home} custody case show 2026-0412")
    print(
        f"The platform in a browser on this vault: sudo scripts/demo-web {home}  (then http://127.0.0.1:8420/)"
    )
    print(f"When you are done with it: rm -rf {work}")


def export_evidence_disc(work: Path) -> Path:
    """The whole recording becomes evidence in case 2026-0412: export it to an ISO and verify it."""
    say("evidence disc: case 2026-0412 on an ISO image (BagIt bag, description, signed record, verifier)")
    step("tag", "EV-000003", "EV-000004", "EV-000005", "--case", "2026-0412", "--party", "Zhang Wei")
    iso = work / "2026-0412.iso"
    step(
        "export", "disc", "--case", "2026-0412", "--maker", "Wang Li (officer)",
        "--extractor", "Chen Jing (evidence clerk)", "--iso", str(iso),
    )  # fmt: skip
    step("export", "verify", str(iso))
    step("export", "ls")
    return iso


def case_file(work: Path, photo: Path) -> None:
    """Case 2026-0412 through its stages to an archived case file: written records (stand-in scans)
    filed beside the footage, the inquiry linked to its recording, the cover and index sealed."""
    say("case file 2026-0412: written records beside the footage, the rule's stages, the archive")
    step("case", "open", "2026-0412", "--cause", "unlicensed street trading", "--party", "Zhang Wei",
         "--handler", BADGE)  # fmt: skip
    scans = work / "scans"
    scans.mkdir()
    for name in ("filing-form.pdf", "inquiry.pdf", "decision.pdf"):
        (scans / name).write_bytes(b"%PDF-1.4 (a stand-in for a scanned form: " + name.encode() + b")\n")
    step("case", "file", "2026-0412", str(scans / "filing-form.pdf"), "--type", "立案审批表", "--pages", "1")
    step("case", "approve-filing", "2026-0412", "--by", "Director Liu")
    step("case", "stage", "2026-0412", "investigation")
    filed = json.loads(step("case", "file", "2026-0412", str(scans / "inquiry.pdf"), "--type", "询问笔录",
                            "--pages", "3", "--json"))  # fmt: skip
    step("case", "link", filed["documents"][0]["id"], "EV-000003")
    step("case", "stage", "2026-0412", "review")
    step("case", "file", "2026-0412", str(scans / "decision.pdf"), "--type", "行政处罚决定书", "--pages", "2")
    step("case", "stage", "2026-0412", "service")
    step(
        "case",
        "file",
        "2026-0412",
        str(photo),
        "--type",
        "送达回证",
        "--title",
        "signed proof of service (photo)",
    )
    step("case", "close", "2026-0412", "--ended", datetime.now().date().isoformat())
    step("case", "archive", "2026-0412")
    step("case", "show", "2026-0412")
    step("report", "cases", "--all")


def replicate_offsite(home: Path) -> None:
    """Replicate the vault to moto's S3 server on loopback, the stand-in for the agency's object store."""
    import boto3

    from tests.s3 import local_s3_server

    say(
        "off-site replication to a local S3 server (moto's server on 127.0.0.1, standing in for AWS/MinIO/Ceph)"
    )
    with local_s3_server() as endpoint:
        os.environ.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo-secret")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="custody-demo", ObjectLockEnabledForBucket=True
        )
        with open(home / "custody.toml", "a", encoding="utf-8") as config:
            config.write(
                f'\n[targets.offsite]\nendpoint_url = "{endpoint}"\nbucket = "custody-demo"\n'
                'addressing_style = "path"\nverify = "download"\n'
            )
        print(f"  bucket custody-demo at {endpoint}, Object Lock on; [targets.offsite] added to custody.toml")
        step("replicate", "run", "--once")
        step("replicate", "status")
        step("replicate", "check")
    print("  S3 server stopped")


if __name__ == "__main__":
    main()
