"""Replication benchmark: custody's replicate run against boto3's own upload_file, same bytes, same settings.

- 1 GiB as eight 128 MiB objects to moto's S3 server on loopback; boto3
  upload_file of the same sealed object files with the same part size and
  concurrency is the baseline. custody's run includes its checksum
  verification (goal >= 0.8x the baseline's throughput); the download mode's
  ratio is printed beside it. Peak RSS of the custody run (goal < 200 MB).

BENCH_REPLICATION_MIB sets the total (default 1024).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import boto3
from botocore.config import Config

from bench.__main__ import timed, verdict
from tests.s3 import local_s3_server

OBJECTS = 8
PART_MB = 16
CONCURRENCY = 4
RSS_GOAL_MB = 200


def bench_replication(workdir: Path) -> bool:
    total_mib = int(os.environ.get("BENCH_REPLICATION_MIB", "1024"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
    with local_s3_server() as endpoint:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        home = workdir / "replication-vault"
        custody = [sys.executable, "-m", "custody", "--home", str(home)]
        subprocess.run([*custody, "init"], check=True, capture_output=True)
        source = workdir / "replication-footage"
        source.mkdir()
        per_object = total_mib // OBJECTS
        for number in range(OBJECTS):
            with open(source / f"CLIP{number:04d}.MP4", "wb") as out:
                for _ in range(per_object):
                    out.write(os.urandom(1 << 20))
        subprocess.run([*custody, "ingest", str(source)], check=True, capture_output=True)
        shutil.rmtree(source)
        sealed = sorted((home / "objects" / "sha256").rglob("*"))
        sealed = [path for path in sealed if path.is_file()]
        size = sum(path.stat().st_size for path in sealed)

        def boto3_upload(bucket: str) -> float:
            """boto3's upload_file of the same files in its own process, as custody's run is one."""
            client.create_bucket(Bucket=bucket)
            script = (
                "import sys, boto3\n"
                "from boto3.s3.transfer import TransferConfig\n"
                "from botocore.config import Config\n"
                f"c = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1',"
                " config=Config(s3={'addressing_style': 'path'}))\n"
                f"t = TransferConfig(multipart_threshold={PART_MB << 20}, multipart_chunksize={PART_MB << 20},"
                f" max_concurrency={CONCURRENCY})\n"
                "for path in sys.argv[1:]:\n"
                f"    c.upload_file(path, '{bucket}', 'bench/' + path.rsplit('/', 1)[1],"
                " ExtraArgs={'ChecksumAlgorithm': 'SHA256'}, Config=t)\n"
            )
            return timed([sys.executable, "-c", script, *map(str, sealed)])[0]

        def custody_run(bucket: str, verify: str) -> tuple[float, int]:
            client.create_bucket(Bucket=bucket)
            config = home / "custody.toml"
            base = config.read_text().split("\n[targets.")[0]
            config.write_text(
                base + f'\n[targets.bench]\nendpoint_url = "{endpoint}"\nbucket = "{bucket}"\n'
                f'addressing_style = "path"\nverify = "{verify}"\npart_size_mb = {PART_MB}\n'
                f"concurrency = {CONCURRENCY}\n"
            )
            with sqlite3.connect(home / "catalog.db") as db:  # a fresh start for each run
                db.executescript("DELETE FROM replicas; DELETE FROM replica_meta;")
            return timed([*custody, "replicate", "run", "--once"])

        baseline = [boto3_upload("bench-boto3-1")]
        checksum_run = [custody_run("bench-custody-1", "checksum")]
        baseline.append(boto3_upload("bench-boto3-2"))
        checksum_run.append(custody_run("bench-custody-2", "checksum"))
        download_run = custody_run("bench-custody-3", "download")
    best_boto3 = min(baseline)
    best_custody = min(t for t, _ in checksum_run)
    peak_mb = max(rss for _, rss in [*checksum_run, download_run]) / 1024
    mb = size / 1e6
    ratio = best_boto3 / best_custody
    download_ratio = best_boto3 / download_run[0]
    print(f"replicate {OBJECTS} x {per_object} MiB sealed objects to moto's S3 on loopback (best of 2)")
    print(
        f"  boto3 upload_file ({PART_MB} MiB parts, {CONCURRENCY} threads)  {best_boto3:6.2f} s  {mb / best_boto3:6.0f} MB/s"
    )
    print(f"  custody replicate run, checksum verify   {best_custody:6.2f} s  {mb / best_custody:6.0f} MB/s")
    print(
        f"  custody replicate run, download verify   {download_run[0]:6.2f} s  {mb / download_run[0]:6.0f} MB/s"
    )
    print(
        f"  ratio (checksum)                         {ratio:6.2f}x  (goal >= 0.8x: {verdict(ratio >= 0.8)})"
    )
    print(f"  ratio (download, for information)        {download_ratio:6.2f}x")
    print(
        f"  peak RSS                                 {peak_mb:6.1f} MB (goal < {RSS_GOAL_MB} MB: {verdict(peak_mb < RSS_GOAL_MB)})"
    )
    return ratio >= 0.8 and peak_mb < RSS_GOAL_MB


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="custody-bench-", dir=os.environ.get("BENCH_DIR", ".")) as d:
        sys.exit(0 if bench_replication(Path(d)) else 1)
