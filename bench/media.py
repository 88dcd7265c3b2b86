"""Media benchmarks: playable copies, the foreground media stage of a shift, the full decode check.

- remux:     playable copy of a 60 s 1080p H.264/AAC clip as custody makes it
             (ffmpeg remux through our limits, then sealed into the vault) vs
             bare `ffmpeg -i F -map 0 -c copy OUT.mp4` (goal <= 1.2x its time)
- transcode: playable copy of a 60 s 1080p MJPEG clip vs the same ffmpeg
             command line run bare (goal <= 1.1x)
- shift:     the foreground stage (decrypted copy, metadata, fast check, remux,
             thumbnail, sealing, continuity) over a shift of H.264 clips with
             the worker pool: realtime factor (goal >= 100x)
- decode:    the full decode check on those clips vs bare ffmpeg decoding the
             same files (goal <= 1.1x), realtime factor shown

BENCH_MEDIA_CLIPS sets the shift's clip count (default 10 x 60 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from custody.config import MediaSettings, Settings
from custody.ingestd.jobs import MediaJobs
from custody.ingestd.media import decode_check, make_playable, probe_facts
from custody.vault import Vault
from custody.vault.media_queue import MEDIA

SECONDS = 60


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *arguments], check=True)


def run_bare(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def h264_clip(path: Path) -> Path:
    """60 s of 1080p30 H.264 at 8 Mbit/s with AAC and a keyframe every second, as body-worn cameras write."""
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-b:v", "8M", "-g", "30", "-c:a", "aac", "-shortest"),
        str(path),
    )
    return path


def mjpeg_clip(path: Path) -> Path:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=330:duration={SECONDS}"),
        *("-c:v", "mjpeg", "-q:v", "6", "-c:a", "pcm_s16le", "-shortest"),
        str(path),
    )
    return path


def new_vault(home: Path) -> tuple[Settings, Vault]:
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home)
    Vault.init(settings, "bench").close()
    return settings, Vault(settings, "bench", writer=True)


def playable_in_vault(vault: Vault, source: Path, work: Path, facts: dict) -> tuple[float, float]:
    """The playable copy as custody makes it: remux or transcode under limits, then sealed and stored.

    Return (seconds for ffmpeg's part, seconds in all).
    """
    target = work / "playable.out"
    started = time.perf_counter()
    made = make_playable(source, target, facts, MediaSettings())
    assert made is not None
    copied = time.perf_counter() - started
    with open(target, "rb") as copy:
        staged = vault.objects.stage(copy, target.stat().st_size)
    vault.objects.store_staged(staged)
    elapsed = time.perf_counter() - started
    target.unlink()
    return copied, elapsed


def bench_copy(workdir: Path, vault: Vault, source: Path, method: str, goal: float, runs: int) -> bool:
    facts = probe_facts(source, "ffprobe", 60, 1 << 30)
    made = make_playable(source, workdir / "probe.out", facts, MediaSettings())
    assert made is not None and made.method == method, made
    (workdir / "probe.out").unlink()
    if method == "remux":
        bare_command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source)]
        bare_command += ["-map", "0", "-c", "copy", str(workdir / "bare.mp4")]
    else:  # the very command custody ran, on the same file
        bare_command = [
            str(source) if a == "INPUT" else str(workdir / "bare.mp4") if a == "OUTPUT" else a
            for a in made.arguments
        ]
    bare, copying, ours = [], [], []
    for _ in range(runs):  # interleaved, so drift on a shared machine hits both alike
        bare.append(run_bare(bare_command))
        copied, elapsed = playable_in_vault(vault, source, workdir, facts)
        copying.append(copied)
        ours.append(elapsed)
    ratio = min(ours) / min(bare)
    label = "-c copy" if method == "remux" else "(same command line)"
    print(f"playable copy, {method} path: 60 s 1080p {facts['video_codec']} (best of {runs})")
    print(f"  bare ffmpeg {label:29}{min(bare):7.2f} s")
    print(
        f"  custody's ffmpeg run (faststart, limits) {min(copying):7.2f} s  {min(copying) / min(bare):5.2f}x"
    )
    print(f"  custody: ffmpeg + sealed in the vault    {min(ours):7.2f} s")
    print(
        f"  ratio                                    {ratio:7.2f}x  (goal <= {goal}x: {verdict(ratio <= goal)})"
    )
    return ratio <= goal


def bench_shift(workdir: Path, clip: Path, count: int) -> tuple[bool, list[Path]]:
    """Ingest ``count`` distinct copies of ``clip``; time the foreground stage over them with the pool."""
    settings, vault = new_vault(workdir / "shift-vault")
    clips = []
    for n in range(count):  # distinct bytes (a tag), same packets: not duplicates of each other
        copy = workdir / f"SHIFT{n:03d}.MP4"
        ffmpeg("-i", str(clip), "-map", "0", "-c", "copy", "-metadata", f"comment=clip {n}", str(copy))
        clips.append(copy)
    from custody.ingestd.pipeline import IngestSession, IngestSource

    IngestSession(vault, IngestSource(paths=clips, source="import"), settings.ingest).run()
    runner = MediaJobs(vault, settings)

    def worker() -> None:
        while (job := vault.media.claim(MEDIA)) is not None:
            runner.run_job(job)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(runner.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert runner.summary.done == count and runner.summary.failed == 0, runner.summary
    vault.close()
    factor = count * SECONDS / elapsed
    print(f"foreground media stage, a shift of {count} x 60 s 1080p H.264 clips, {runner.workers} workers")
    print(f"  wall time                              {elapsed:7.2f} s")
    print(
        f"  realtime factor                        {factor:7.0f}x  (goal >= 100x: {verdict(factor >= 100)})"
    )
    return factor >= 100, clips


def bench_decode(workdir: Path, clips: list[Path]) -> bool:
    settings, vault = new_vault(workdir / "decode-vault")
    from custody.ingestd.pipeline import IngestSession, IngestSource

    IngestSession(vault, IngestSource(paths=clips, source="import"), settings.ingest).run()
    bare_total = ours_total = 0.0
    for number, clip in enumerate(clips, start=1):
        bare_total += run_bare(
            ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(clip), "-map", "0", "-f", "null", "-"]
        )
        started = time.perf_counter()
        with vault.originals.plaintext_copy(number) as original:
            errors = decode_check(original, "ffmpeg", 3600, 1 << 30)
        ours_total += time.perf_counter() - started
        assert errors == [], errors
    vault.close()
    ratio = ours_total / bare_total
    footage = len(clips) * SECONDS
    print(f"full decode check, {len(clips)} x 60 s 1080p H.264 (decrypted copy included)")
    print(
        f"  bare ffmpeg decode                     {bare_total:7.2f} s  {footage / bare_total:5.1f}x realtime"
    )
    print(
        f"  custody decode check                   {ours_total:7.2f} s  {footage / ours_total:5.1f}x realtime"
    )
    print(
        f"  ratio                                    {ratio:7.2f}x  (goal <= 1.1x: {verdict(ratio <= 1.1)})"
    )
    return ratio <= 1.1


def bench_media(workdir: Path) -> bool:
    count = int(os.environ.get("BENCH_MEDIA_CLIPS", "10"))
    print("generating 60 s 1080p clips with ffmpeg (H.264 at 8 Mbit/s, MJPEG)")
    h264 = h264_clip(workdir / "H264.MP4")
    mjpeg = mjpeg_clip(workdir / "MJPEG.AVI")
    _settings, vault = new_vault(workdir / "copy-vault")
    results = [
        bench_copy(workdir, vault, h264, "remux", 1.2, runs=5),
        bench_copy(workdir, vault, mjpeg, "transcode", 1.1, runs=2),
    ]
    vault.close()
    shift_ok, clips = bench_shift(workdir, h264, count)
    results.append(shift_ok)
    results.append(bench_decode(workdir, clips[:3]))
    return all(results)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="custody-bench-", dir=os.environ.get("BENCH_DIR", ".")) as d:
        sys.exit(0 if bench_media(Path(d)) else 1)
