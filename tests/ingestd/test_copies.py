"""Playable copies and thumbnails: remux or transcode, sealed as derivatives, extracted, verified."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path

from custody.config import load_settings
from custody.vault import Vault
from custody.vault.derivatives import intents
from tests.ingestd.test_jobs import tagged_clip


def generate(path: Path, *arguments: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *arguments, str(path)], check=True)
    return path


def mjpeg_avi(path: Path, seconds: int = 3, tone: int = 330) -> Path:
    return generate(
        path,
        *("-f", "lavfi", "-i", f"testsrc2=size=640x480:rate=15:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency={tone}:duration={seconds}"),
        *("-c:v", "mjpeg", "-c:a", "pcm_s16le", "-shortest"),
    )


def hevc_mov(path: Path, seconds: int = 3) -> Path:
    return generate(
        path,
        *("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=15:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=550:duration={seconds}"),
        *("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"),
        *("-tag:v", "hvc1", "-c:a", "aac", "-shortest"),
    )


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)


def video_packet_hashes(path: Path) -> list[str]:
    """One MD5 per video packet, as stored (framemd5 of a stream copy): equal means not re-encoded."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def top_level_boxes(path: Path) -> list[str]:
    boxes, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        offset += size or len(data)
    return boxes


def show(custody, ref: str) -> dict:
    return json.loads(custody("show", ref, "--json").stdout)


def test_h264_aac_original_gets_a_remux_that_keeps_packets_and_creation_time(tmp_path, custody):
    original = tagged_clip(tmp_path / "TAGGED.MP4")
    custody("init")
    custody("ingest", str(original))
    custody("media", "run", "--once")
    detail = show(custody, "EV-000001")
    facts = detail["media"]
    assert (facts["video_codec"], facts["audio_codec"]) == ("h264", "aac")
    assert abs(facts["duration"] - 2.0) < 0.1 and facts["creation_time"] == "2026-11-01T08:00:00+00:00"
    made = {d["role"]: d for d in detail["derivatives"]}
    assert set(made) == {"playable", "thumbnail"}
    playable = made["playable"]
    assert playable["method"] == "remux" and playable["source_sha256"] == detail["sha256"]
    assert playable["arguments"][:3] == ["ffmpeg", "-i", "INPUT"] and "copy" in playable["arguments"]
    assert playable["tool"].startswith("ffmpeg version ")

    out = tmp_path / "playable.mp4"
    custody("extract", "EV-000001", "--playable", "--out", str(out))
    assert video_packet_hashes(out) == video_packet_hashes(original)  # not re-encoded
    tags = probe(out)["format"]["tags"]
    assert tags["creation_time"].startswith("2026-11-01T08:00:00")
    assert tags.get("location") == "+31.2304+121.4737/"
    boxes = top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: playable while it downloads

    # One audit event per derivative with the whole provenance; extraction audited too.
    events = json.loads(custody("log", "--json").stdout)
    made_events = [e for e in events if e["action"] == "derivative-made"]
    assert len(made_events) == 2
    provenance = next(e["details"] for e in made_events if e["details"]["role"] == "playable")
    for key in ("tool", "arguments", "source_sha256", "sha256", "started_at", "finished_at"):
        assert provenance[key] == playable[key]
    extract = [e for e in events if e["action"] == "extract"][-1]["details"]
    assert extract["derivative"] == "playable" and extract["sha256"] == playable["sha256"]


def test_mjpeg_avi_and_hevc_mov_get_an_h264_aac_transcode_of_the_same_duration(tmp_path, custody):
    custody("init")
    custody("ingest", str(mjpeg_avi(tmp_path / "OLD.AVI")), str(hevc_mov(tmp_path / "NEW.MOV")))
    assert json.loads(custody("media", "run", "--once", "--json").stdout)["failed"] == 0
    for ref, original in (("EV-000001", tmp_path / "OLD.AVI"), ("EV-000002", tmp_path / "NEW.MOV")):
        made = {d["role"]: d for d in show(custody, ref)["derivatives"]}
        assert made["playable"]["method"] == "transcode"
        assert "libx264" in made["playable"]["arguments"]
        out = tmp_path / f"{ref}.mp4"
        custody("extract", ref, "--playable", "--out", str(out))
        copy = probe(out)
        assert "mp4" in copy["format"]["format_name"]
        assert sorted(s["codec_name"] for s in copy["streams"]) == ["aac", "h264"]
        assert abs(float(copy["format"]["duration"]) - float(probe(original)["format"]["duration"])) <= 0.1
        video = next(s for s in copy["streams"] if s["codec_type"] == "video")
        assert video["height"] <= 720 and video["pix_fmt"] == "yuv420p"


def test_thumbnail_is_a_jpeg_of_a_frame_near_ten_percent(tmp_path, custody, home):
    custody("init")
    custody("ingest", str(mjpeg_avi(tmp_path / "TEN.AVI", seconds=10)))
    custody("media", "run", "--once")
    thumbnail = next(d for d in show(custody, "EV-000001")["derivatives"] if d["role"] == "thumbnail")
    position = thumbnail["arguments"][thumbnail["arguments"].index("-ss") + 1]
    assert abs(float(position) - 1.0) < 0.05
    picture = tmp_path / "thumb.jpg"
    custody("extract", "EV-000001", "--thumbnail", "--out", str(picture))
    both = custody(
        "extract", "EV-000001", "--thumbnail", "--playable", "--out", str(tmp_path / "x"), expect=2
    )
    assert "exclude each other" in both.stderr
    stream = probe(picture)["streams"][0]
    assert picture.read_bytes()[:2] == b"\xff\xd8" and stream["codec_name"] == "mjpeg"
    assert stream["width"] == 320


def test_a_photo_gets_exif_time_and_place_and_a_thumbnail_but_no_playable_copy(tmp_path, custody):
    photo = generate(tmp_path / "plain.jpg", "-f", "lavfi", "-i", "testsrc2=size=640x480", "-frames:v", "1")
    with_exif = tmp_path / "IMG0001.JPG"
    with_exif.write_bytes(add_exif(photo.read_bytes(), "2026:11:01 16:30:05", (31, 13, 49), (121, 28, 25)))
    custody("init")
    custody("ingest", str(with_exif))
    custody("media", "run", "--once")
    detail = show(custody, "EV-000001")
    assert detail["media"]["photo"] is True
    assert detail["media"]["capture_time"] == "2026-11-01T16:30:05"
    assert detail["media"]["location"] == "+31.23028+121.47361/"
    assert [d["role"] for d in detail["derivatives"]] == ["thumbnail"]
    result = custody("extract", "EV-000001", "--playable", "--out", str(tmp_path / "x.mp4"), expect=5)
    assert "EV-000001 has no playable copy: it is a photo" in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_derivatives_are_sealed_like_originals_and_checked_by_verify(tmp_path, custody, home):
    custody("init")
    custody("ingest", str(tagged_clip(tmp_path / "CLIP.MP4")))
    custody("media", "run", "--once")
    out = tmp_path / "playable.mp4"
    custody("extract", "EV-000001", "--playable", "--out", str(out))
    playable = next(d for d in show(custody, "EV-000001")["derivatives"] if d["role"] == "playable")
    stored = (
        home / "objects" / "sha256" / playable["sha256"][:2] / playable["sha256"][2:4] / playable["sha256"]
    )
    sealed, plain = stored.read_bytes(), out.read_bytes()
    original_object = next((home / "objects").rglob(show(custody, "EV-000001")["sha256"]))
    assert sealed[:8] == original_object.read_bytes()[:8]  # the same sealed format and header
    assert plain[1000:1064] not in sealed and b"ftyp" not in sealed  # encrypted, not plaintext
    report = json.loads(custody("verify", "--json").stdout)
    assert report["ok"] and report["objects_checked"] == 3  # original, playable, thumbnail

    damaged = bytearray(sealed)
    damaged[len(damaged) // 2] ^= 0xFF
    stored.chmod(0o600)
    stored.write_bytes(bytes(damaged))
    report = json.loads(custody("verify", "--json", expect=1).stdout)
    [problem] = report["object_problems"]
    assert problem["item"] == "EV-000001 playable" and problem["kind"] == "damaged"
    result = custody("extract", "EV-000001", "--playable", "--out", str(tmp_path / "again.mp4"), expect=6)
    assert "failed its integrity check" in result.stderr and not (tmp_path / "again.mp4").exists()


def test_a_derivative_stored_but_not_committed_is_removed_at_the_next_open(tmp_path, custody, home):
    """The state a kill between storing a derivative and committing it leaves, made with the real steps."""
    custody("init")
    custody("ingest", str(tagged_clip(tmp_path / "CLIP.MP4")))
    settings = load_settings(home)
    leftover = tmp_path / "half-made.mp4"
    leftover.write_bytes(b"a playable copy whose job was killed before its commit" * 100)
    with Vault(settings, "custody-daemon", writer=True) as vault:
        claimed = vault.media.claim()
        with open(leftover, "rb") as source:
            staged = vault.objects.stage(source, leftover.stat().st_size)
        with vault.catalog.transaction():
            from custody.vault.derivatives import add_intent

            add_intent(vault.catalog, claimed.item, "playable", staged.sha256, "2026-11-26T00:00:00.000000Z")
        vault.objects.store_staged(staged)
        orphan = vault.objects.path_for(staged.sha256)
        assert orphan.exists()
    with Vault(settings, "custody-daemon", writer=True) as vault:
        assert not orphan.exists() and intents(vault.catalog) == []
        assert vault.media.counts() == {"running": 1}  # requeued by the next runner, then done once
    assert json.loads(custody("media", "run", "--once", "--json").stdout)["done"] == 2
    assert json.loads(custody("verify", "--json").stdout)["ok"]
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert actions.count("derivative-abandoned") == 1 and actions.count("derivative-made") == 2


def add_exif(jpeg: bytes, taken: str, latitude: tuple, longitude: tuple) -> bytes:
    """Insert an EXIF block (capture time, GPS north/east) after a JPEG's SOI marker, as cameras write it."""

    def ifd(entries: list[tuple[int, int, int, bytes]], start: int) -> bytes:
        body, data = struct.pack("<H", len(entries)), b""
        data_at = start + 2 + 12 * len(entries) + 4
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
            else:
                body += struct.pack("<HHII", tag, kind, count, data_at + len(data))
                data += value + b"\0" * (len(value) % 2)
        return body + struct.pack("<I", 0) + data

    def rationals(values: tuple) -> bytes:
        return b"".join(struct.pack("<II", v, 1) for v in values)

    exif_at = 8 + 2 + 12 * 2 + 4
    exif = ifd([(0x9003, 2, 20, taken.encode() + b"\0")], exif_at)
    gps_at = exif_at + len(exif)
    gps = ifd(
        [
            (0x0001, 2, 2, b"N\0"),
            (0x0002, 5, 3, rationals(latitude)),
            (0x0003, 2, 2, b"E\0"),
            (0x0004, 5, 3, rationals(longitude)),
        ],
        gps_at,
    )
    ifd0 = ifd([(0x8769, 4, 1, struct.pack("<I", exif_at)), (0x8825, 4, 1, struct.pack("<I", gps_at))], 8)
    payload = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd0 + exif + gps
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def png_bomb(path: Path, side: int = 16000) -> Path:
    """A small PNG declaring a huge picture (side x side RGB): a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + 3 * side)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def test_a_vault_from_before_derivatives_gets_them_and_keeps_its_decode_verdicts(tmp_path, custody, home):
    custody("init")
    custody("ingest", str(tagged_clip(tmp_path / "CLIP.MP4")))
    custody("media", "run", "--once")
    # Back to the schema before migration 4, as a vault made by the previous release.
    with Vault(load_settings(home), "clerk", writer=True) as vault:
        db = vault.catalog.db
        import re

        from custody.vault.catalog import MIGRATIONS

        later = [name for script in MIGRATIONS[3:] for name in re.findall(r"CREATE TABLE (\w+)", script)]
        for name in reversed(later):  # every table of migration 4 and after
            db.execute(f"DROP TABLE {name}")
        for script in MIGRATIONS[3:]:  # and their indexes on older tables
            for name in re.findall(r"CREATE INDEX (\w+)", script):
                db.execute(f"DROP INDEX IF EXISTS {name}")
        db.execute("PRAGMA user_version = 3")
        db.conn.commit()
    assert json.loads(custody("status", "--json").stdout)["media_jobs"] == {"queued": 1, "done": 1}
    assert json.loads(custody("media", "run", "--once", "--json").stdout)["done"] == 1
    detail = show(custody, "EV-000001")
    assert {d["role"] for d in detail["derivatives"]} == {"playable", "thumbnail"}
    assert detail["media"]["integrity"]["level"] == "full"  # the decode check's verdict stays
    assert json.loads(custody("verify", "--json").stdout)["ok"]


def test_h264_with_pcm_audio_keeps_its_video_packets_and_gets_aac(tmp_path, custody):
    original = generate(
        tmp_path / "PCM.MOV",
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=2"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", "-shortest"),
    )
    custody("init")
    custody("ingest", str(original))
    custody("media", "run", "--once")
    [playable] = [d for d in show(custody, "EV-000001")["derivatives"] if d["role"] == "playable"]
    assert playable["method"] == "transcode-audio"
    out = tmp_path / "playable.mp4"
    custody("extract", "EV-000001", "--playable", "--out", str(out))
    assert video_packet_hashes(out) == video_packet_hashes(original)  # video copied, not re-encoded
    assert sorted(s["codec_name"] for s in probe(out)["streams"]) == ["aac", "h264"]


def test_a_stream_mp4_cannot_hold_is_left_out_of_the_remux_and_the_rest_kept(tmp_path, custody):
    subtitles = tmp_path / "notes.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nofficer's note\n")
    original = generate(
        tmp_path / "SUBS.MKV",
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=2"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=2"),
        *("-i", str(subtitles), "-map", "0", "-map", "1", "-map", "2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "srt", "-shortest"),
    )
    custody("init")
    custody("ingest", str(original))
    assert json.loads(custody("media", "run", "--once", "--json").stdout)["failed"] == 0
    [playable] = [d for d in show(custody, "EV-000001")["derivatives"] if d["role"] == "playable"]
    assert playable["method"] == "remux" and "0:v?" in playable["arguments"]
    out = tmp_path / "playable.mp4"
    custody("extract", "EV-000001", "--playable", "--out", str(out))
    assert sorted(s["codec_name"] for s in probe(out)["streams"]) == ["aac", "h264"]
    assert video_packet_hashes(out) == video_packet_hashes(original)
