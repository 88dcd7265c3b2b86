"""The media job queue: metadata onto items, retries within limits, nothing lost to a kill."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest

from custody.config import load_settings
from custody.ingestd.jobs import MediaJobs
from custody.vault import Vault
from tests.conftest import not_media


def tagged_clip(path):
    """A real H.264/AAC MP4 with creation time, GPS location and device tags, as recorders write them."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=2",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
            "-metadata", "creation_time=2026-11-01T08:00:00Z", "-metadata", "location=+31.2304+121.4737/",
            "-metadata", "make=ExampleBWC", "-metadata", "model=X1", "-movflags", "+use_metadata_tags",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def show(custody, ref) -> dict:
    return json.loads(custody("show", ref, "--json").stdout)


def test_probe_job_puts_duration_codecs_time_and_place_on_the_item(tmp_path, custody):
    custody("init")
    custody("ingest", str(tagged_clip(tmp_path / "CLIP.MP4")))
    assert json.loads(custody("status", "--json").stdout)["media_jobs"] == {"queued": 1}
    # The foreground stage, then (the file being whole) the full decode check.
    assert json.loads(custody("media", "run", "--once", "--json").stdout)["done"] == 2
    facts = show(custody, "EV-000001")["media"]
    assert facts["integrity"] == {"result": "ok", "level": "full", "errors": []}
    assert abs(facts["duration"] - 2.0) < 0.1
    assert (facts["video_codec"], facts["audio_codec"], facts["width"], facts["height"]) == (
        "h264",
        "aac",
        320,
        240,
    )
    assert facts["creation_time"] == "2026-11-01T08:00:00+00:00"
    assert facts["location"] == "+31.2304+121.4737/"
    assert (facts["make"], facts["model"]) == ("ExampleBWC", "X1")
    text = custody("show", "EV-000001").stdout
    assert "video h264 320x240" in text and "2.00 s" in text
    assert list((tmp_path / "vault" / "run" / "media").iterdir()) == []  # the decrypted copy is gone


def test_a_file_that_is_not_media_is_an_unreadable_result_not_a_failure(tmp_path, custody):
    custody("init")
    (tmp_path / "RANDOM.MP4").write_bytes(not_media(100_000))
    (tmp_path / "EMPTY.MP4").write_bytes(b"")
    custody("ingest", str(tmp_path / "RANDOM.MP4"), str(tmp_path / "EMPTY.MP4"))
    assert json.loads(custody("media", "run", "--once", "--json").stdout) == {
        "done": 2,
        "retried": 0,
        "failed": 0,
        "errors": [],
    }
    for ref in ("EV-000001", "EV-000002"):
        unreadable = show(custody, ref)["media"]["unreadable"]
        assert "Invalid data" in unreadable and "run/media" not in unreadable


def test_a_job_that_keeps_failing_stops_after_max_attempts_and_shows_in_status(
    tmp_path, custody, home, footage
):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"))
    # A real limit, not a fake: no ffprobe finishes in a millisecond.
    (home / "custody.toml").write_text("[media]\nprobe_timeout_seconds = 0.001\nmax_attempts = 2\n")
    first = custody("media", "run", "--once", "--json", expect=1)
    assert json.loads(first.stdout)["failed"] == 1 and json.loads(first.stdout)["retried"] == 1
    status = json.loads(custody("status", "--json").stdout)
    assert status["media_jobs"] == {"failed": 1}
    [job] = status["failed_media_jobs"]
    assert (job["attempts"], job["kind"]) == (2, "media") and "longer than" in job["last_error"]
    assert "failed: job 1 media of EV-000001 after 2 tries" in custody("status").stdout
    events = json.loads(custody("log", "--json").stdout)
    assert [e["action"] for e in events].count("media-job-failed") == 1
    # Failed for good means failed: a later run does not take it again.
    assert json.loads(custody("media", "run", "--once", "--json").stdout)["done"] == 0


def test_jobs_a_killed_runner_left_running_are_run_again_exactly_once(tmp_path, custody, home, footage):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"), str(footage / "CLIP0002.MP4"))
    settings = load_settings(home)
    with Vault(settings, "runner", writer=True) as vault:
        claimed = vault.media.claim()  # then the runner "dies": the job stays running
        assert claimed is not None
    assert json.loads(custody("status", "--json").stdout)["media_jobs"] == {"queued": 1, "running": 1}
    with Vault(settings, "runner", writer=True) as vault:
        summary = MediaJobs(vault, settings).run()
        assert summary.done == 4  # each item's foreground stage and decode check, once
        assert vault.media.counts() == {"done": 4}
        assert vault.media.claim() is None


def test_a_decrypted_copy_left_by_a_killed_job_is_removed_at_the_next_open(tmp_path, custody, home):
    custody("init")
    leftover = home / "run" / "media" / "EV-000001-abc.MP4"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"plaintext footage")
    custody("media", "run", "--once")
    assert not leftover.exists()


def test_no_media_job_starts_while_recorders_are_being_pulled(custody, home, footage):
    import threading

    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"))
    settings = load_settings(home)
    pulling = threading.Event()
    pulling.set()
    with Vault(settings, "daemon", writer=True) as vault:
        runner = MediaJobs(vault, settings)
        thread = threading.Thread(target=runner.run, kwargs={"pause": pulling.is_set})
        thread.start()
        thread.join(timeout=1.5)
        assert thread.is_alive() and vault.media.counts() == {"queued": 1}  # waited, started nothing
        pulling.clear()
        thread.join(timeout=60)
        assert not thread.is_alive() and vault.media.counts() == {"done": 2}


def clip(path, *extra):
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=3",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", *extra, str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def truncated(source, target, fraction=0.6):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_truncated_or_zeroed_mp4s_are_flagged_damaged_and_kept_byte_identical(tmp_path, custody):
    camera = truncated(clip(tmp_path / "camera-full.mp4"), tmp_path / "CAMERA.MP4")  # index at the end
    faststart = truncated(clip(tmp_path / "fast-full.mp4", "-movflags", "+faststart"), tmp_path / "FAST.MP4")
    whole = clip(tmp_path / "WHOLE.MP4")
    data = bytearray(clip(tmp_path / "zero-full.mp4").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 65536] = bytes(65536)  # 64 KiB of zeros inside the streams
    zeros = tmp_path / "ZEROS.MP4"
    zeros.write_bytes(data)
    custody("init")
    custody("ingest", str(camera), str(faststart), str(whole), str(zeros))
    custody("media", "run", "--once")
    verdicts = {
        name: json.loads(custody("show", ref, "--json").stdout)["media"]["integrity"]
        for name, ref in (
            ("camera", "EV-000001"),
            ("fast", "EV-000002"),
            ("whole", "EV-000003"),
            ("zeros", "EV-000004"),
        )
    }
    assert verdicts["zeros"]["result"] == "damaged" and verdicts["zeros"]["errors"]
    assert verdicts["whole"] == {"result": "ok", "level": "full", "errors": []}
    assert (
        verdicts["camera"]["result"] == "damaged" and "moov atom not found" in verdicts["camera"]["errors"][0]
    )
    assert verdicts["fast"]["result"] == "damaged" and verdicts["fast"]["level"] == "fast"
    assert verdicts["fast"]["errors"]  # ffmpeg's own words are kept
    damaged = [i["id"] for i in json.loads(custody("ls", "--damaged", "--json").stdout)]
    assert damaged == ["EV-000001", "EV-000002", "EV-000004"]
    custody("extract", "EV-000002", "--out", str(tmp_path / "back.mp4"))
    assert (
        tmp_path / "back.mp4"
    ).read_bytes() == faststart.read_bytes()  # damaged evidence is kept as it came
    assert "damaged (fast check:" in custody("show", "EV-000002").stdout


def test_random_bytes_are_unreadable_not_damaged(tmp_path, custody):
    custody("init")
    (tmp_path / "NOISE.MP4").write_bytes(not_media(50_000))
    custody("ingest", str(tmp_path / "NOISE.MP4"))
    custody("media", "run", "--once")
    integrity = json.loads(custody("show", "EV-000001", "--json").stdout)["media"]["integrity"]
    assert integrity["result"] == "unreadable"
    assert json.loads(custody("ls", "--damaged", "--json").stdout) == []


def test_damage_inside_a_stream_is_found_by_the_full_decode_check_and_audited(tmp_path, custody):
    import random

    data = bytearray(clip(tmp_path / "full.mp4").read_bytes())
    noise = random.Random(2)
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(noise.randrange(256) for _ in range(200))
    (tmp_path / "NOISY.MP4").write_bytes(data)
    custody("init")
    custody("ingest", str(tmp_path / "NOISY.MP4"))
    custody("media", "run", "--once")
    integrity = json.loads(custody("show", "EV-000001", "--json").stdout)["media"]["integrity"]
    assert integrity["result"] == "damaged" and integrity["level"] == "full"
    assert any("error while decoding" in line or "corrupted" in line for line in integrity["errors"])
    found = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "damage-found"]
    assert len(found) == 1 and found[0]["details"]["level"] == "full"
    assert [i["id"] for i in json.loads(custody("ls", "--damaged", "--json").stdout)] == ["EV-000001"]


def test_a_decode_check_waits_while_any_foreground_job_is_queued(custody, home, footage):
    from custody.vault.media_queue import DECODE, MEDIA

    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"), str(footage / "CLIP0002.MP4"))
    settings = load_settings(home)
    with Vault(settings, "runner", writer=True) as vault:
        runner = MediaJobs(vault, settings)
        runner.run_job(vault.media.claim(MEDIA))  # item 1's foreground stage queues its decode check
        assert vault.media.counts(DECODE) == {"queued": 1}
        assert vault.media.claim(DECODE) is None  # item 2's foreground stage still waits
        runner.run_job(vault.media.claim(MEDIA))
        assert vault.media.claim(DECODE) is not None


def test_a_file_ingested_by_hand_takes_its_recording_time_from_its_container(tmp_path, home, custody):
    """A phone video whose container says 2019-12-20T20:08:34Z showed `recorded: - to -` after
    `custody ingest`, so `ls --since` missed it and retention ran from the ingest."""
    import json
    import subprocess

    clip = tmp_path / "VID_20191220.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2",
         "-c:v", "libx264", "-preset", "ultrafast", "-metadata", "creation_time=2019-12-20T20:08:34Z", str(clip)],
        check=True,
    )  # fmt: skip
    custody("init")
    custody("ingest", str(clip))
    [item] = json.loads(custody("ls", "--json").stdout)
    assert item["recorded_start"] is None
    custody("media", "run", "--once")
    [item] = json.loads(custody("ls", "--json").stdout)
    assert item["recorded_start"] == "2019-12-20T20:08:34.000000Z"
    assert item["recorded_end"] == "2019-12-20T20:08:36.000000Z"
    found = json.loads(custody("ls", "--since", "2019-12-20", "--until", "2019-12-21", "--json").stdout)
    assert [i["id"] for i in found] == [item["id"]]
    events = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "recording-time-read"]
    assert events[0]["details"]["source"] == "container"
    assert "2 years from recording" in custody("show", item["id"]).stdout


@pytest.mark.parametrize("suffix", ["ppm", "bmp", "tiff", "pgm"])
def test_a_still_image_in_any_format_ffmpeg_reads_is_a_photo(tmp_path, home, custody, suffix):
    """PPM, BMP, TIFF... got a one-frame "playable" video; a photo gets a thumbnail and no copy."""
    import json
    import subprocess

    picture = tmp_path / f"IMG0001.{suffix}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-frames:v", "1",
         *(["-pix_fmt", "gray"] if suffix == "pgm" else []), str(picture)],
        check=True,
    )  # fmt: skip
    custody("init")
    custody("ingest", str(picture))
    custody("media", "run", "--once")
    shown = json.loads(custody("show", "EV-000001", "--json").stdout)
    assert shown["media"]["photo"] is True
    assert [d["role"] for d in shown["derivatives"]] == ["thumbnail"]


def jpeg_with_exif(path, make: str, model: str) -> None:
    """A real JPEG (ffmpeg) with an EXIF block naming the camera (Make and Model in IFD0)."""
    import struct

    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-frames:v", "1",
         str(path)],
        check=True,
    )  # fmt: skip
    values = [make.encode() + b"\0", model.encode() + b"\0"]
    entries, data = b"", b""
    offset = 8 + 2 + 12 * len(values) + 4  # TIFF header, count, entries, next-IFD pointer
    for tag, value in zip((0x010F, 0x0110), values, strict=True):
        entries += struct.pack("<HHII", tag, 2, len(value), offset + len(data))
        data += value
    tiff = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(values)) + entries + b"\0\0\0\0" + data
    app1 = b"Exif\0\0" + tiff
    jpeg = path.read_bytes()
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:])


def test_a_photo_records_the_make_and_model_of_its_camera(tmp_path, home, custody):
    picture = tmp_path / "IMG_0001.JPG"
    jpeg_with_exif(picture, "HUAWEI", "ELS-AN00")
    custody("init")
    custody("ingest", str(picture))
    custody("media", "run", "--once")
    media = json.loads(custody("show", "EV-000001", "--json").stdout)["media"]
    assert (media["photo"], media["make"], media["model"]) == (True, "HUAWEI", "ELS-AN00")
    shown = custody("show", "EV-000001").stdout
    assert "HUAWEI" in shown and "ELS-AN00" in shown


def test_an_ogg_with_empty_vorbis_packets_is_whole_and_gets_a_playable_copy(tmp_path, custody):
    """ffmpeg 5.1 called such files "damaged" (EINVAL per empty packet, repeated timestamps after a
    copy); the reference decoder reads them whole, and so must the checks."""
    from tests.conftest import ogg_with_empty_packets

    movie = tmp_path / "INTERVIEW.ogv"
    assert ogg_with_empty_packets(movie) > 0
    reference = subprocess.run(["oggdec", "--quiet", "-o", "/dev/null", str(movie)], capture_output=True)
    assert reference.returncode == 0 and not reference.stderr  # not damaged: the decoder's makers say so
    custody("init")
    custody("ingest", str(movie))
    custody("media", "run", "--once")
    shown = show(custody, "EV-000001")
    assert shown["media"]["integrity"] == {"result": "ok", "level": "full", "errors": []}
    assert [d["role"] for d in shown["derivatives"]] == ["playable", "thumbnail"]
    out = tmp_path / "playable.mp4"
    custody("extract", "EV-000001", "--playable", "--out", str(out))
    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(out)],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    assert abs(float(probe["format"]["duration"]) - 3.0) < 0.2


def test_damage_found_by_the_decode_check_says_what_and_where_not_only_an_exit_status():
    from custody.ingestd.media import ToolRun, _damage

    silent = _damage(ToolRun(1, b"", []))
    assert silent == ["ffmpeg stopped with status 1 without saying why"]
    lines = _damage(
        ToolRun(
            0,
            b"",
            [
                "[null @ 0x55a37fed6f80] Application provided invalid, non monotonically increasing dts "
                "to muxer in stream 1: 44608 >= 44608",
                "[h264 @ 0x5581c0ffee00] error while decoding MB 3 5, bytestream -7",
                "[null @ 0x55a37fed6f80] Application provided invalid, non monotonically increasing dts "
                "to muxer in stream 0: 9000 >= 3000",
            ],
        )
    )
    assert lines == [
        "[h264] error while decoding MB 3 5, bytestream -7",
        "[null] Application provided invalid, non monotonically increasing dts to muxer in stream 0: 9000 >= 3000",
    ]


def test_when_a_tracks_time_and_the_containers_disagree_both_are_shown(tmp_path, custody):
    """A recorder whose track clock (mdhd) says 07:58:30 UTC and container clock (mvhd) 08:00:00."""
    import struct

    data = bytearray(clip(tmp_path / "c.mp4", "-metadata", "creation_time=2026-11-01T08:00:00Z").read_bytes())
    mac_epoch_offset = 2082844800  # seconds from 1904-01-01 to 1970-01-01
    track_time = int(datetime(2026, 11, 1, 7, 58, 30, tzinfo=UTC).timestamp()) + mac_epoch_offset
    at = data.index(b"mdhd")  # the video track's media header (version 0: 32-bit times)
    assert data[at + 4] == 0
    struct.pack_into(">I", data, at + 8, track_time)
    (tmp_path / "TWO-CLOCKS.MP4").write_bytes(data)
    custody("init")
    custody("ingest", str(tmp_path / "TWO-CLOCKS.MP4"))
    custody("media", "run", "--once")
    media = show(custody, "EV-000001")["media"]
    assert media["creation_time"] == "2026-11-01T08:00:00+00:00"
    assert media["streams"][0]["creation_time"] == "2026-11-01T07:58:30+00:00"
    text = custody("--utc", "show", "EV-000001").stdout
    assert "container time" in text and "2026-11-01 08:00:00 UTC" in text
    assert "video 2026-11-01 07:58:30 UTC" in text and "not the container's" in text
    # The audio track keeps the container's time: it is not listed as differing.
    assert "audio 2026" not in text
