"""Upload throughput and server memory for large files through the storage API, under gunicorn.

    .venv/bin/python bench/bench_storage.py

Creates a scratch database on TEST_DATABASE_URL / DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
and drops it after; the files live in a scratch directory under instance/ (the project's disk) and go too. It
measures:

- a 500 MB upload through POST /api/storage/object/videos/... (one gunicorn worker, local backend), against copying
  the same file on the same disk (with fsync, as the upload syncs before it commits the metadata);
- the worker's resident memory (VmRSS from /proc, sampled every 10 ms) before and during 100 MB and 500 MB uploads:
  the body is streamed in 1 MiB chunks, so it must stay flat and under 100 MB.

Runs in well under two minutes.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, scratch_database  # noqa: E402
from tests.servers import gunicorn_servers  # noqa: E402

MB = 1024 * 1024
HEADERS = {"x-user-id": "user_bench", "x-user-org": "org_bench"}
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def make_video(path: Path, size: int) -> str:
    """A file of `size` bytes that sniffs as MP4; returns its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(8 * MB)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            if written == 0:
                chunk = MP4_HEADER + chunk[len(MP4_HEADER):]
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def copy_seconds(source: Path, dest: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(source, dest)
    with open(dest, "rb+") as handle:
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    dest.unlink()
    return elapsed


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def worker_pid() -> int:
    """The gunicorn worker: the child of the gunicorn master this process started."""
    for master in children(os.getpid()):
        if b"gunicorn" in Path(f"/proc/{master}/cmdline").read_bytes():
            workers = children(master)
            if workers:
                return workers[0]
    raise RuntimeError("no gunicorn worker found")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakRss:
    """Samples a process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def upload(base_url: str, path: str, source: Path) -> tuple[float, dict]:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120, blocksize=MB)
    started = time.perf_counter()
    with open(source, "rb") as body:
        conn.request("POST", path, body=body, headers={**HEADERS, "Content-Type": "video/mp4",
                                                       "Content-Length": str(source.stat().st_size)})
        response = conn.getresponse()
        payload = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"upload answered {response.status}: {payload[:300]!r}")
    return elapsed, json.loads(payload)["object"]


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=ROOT / "instance"))
    try:
        small, large = scratch / "video-100.mp4", scratch / "video-500.mp4"
        small_sha, large_sha = make_video(small, 100 * MB), make_video(large, 500 * MB)
        copy = min(copy_seconds(large, scratch / "copy.mp4") for _ in range(2))
        with scratch_database() as url, gunicorn_servers(1, {
                "DATABASE_URL": url, "AUTH_DEV_HEADERS": "1", "RATE_LIMIT_ENABLED": "0",
                "STORAGE_LOCAL_DIR": str(scratch / "storage"), "GUNICORN_TIMEOUT": "120"}, workers=1,
                threads=4) as [base]:
            conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
            conn.request("GET", "/api/storage/usage", headers=HEADERS)  # signs in, warms the worker up
            conn.getresponse().read()
            conn.close()
            with psycopg.connect(url, autocommit=True) as db:  # room for every upload below
                db.execute("UPDATE subscriptions SET plan_id = 'enterprise' WHERE organization_id ="
                           " (SELECT id FROM organizations WHERE clerk_id = 'org_bench')")
            pid = worker_pid()
            idle = rss_mb(pid)
            results = {}
            for label, source, sha, name in (("100 MB", small, small_sha, "a.mp4"), ("500 MB", large, large_sha, "b.mp4"),
                                             ("500 MB again", large, large_sha, "c.mp4")):
                with PeakRss(pid) as sampler:
                    seconds, stored = upload(base, f"/api/storage/object/videos/bench/source/{name}", source)
                if stored["sha256"] != sha:
                    raise RuntimeError(f"{label}: stored sha256 differs")
                results[label] = (seconds, sampler.peak)

        size = 500 * MB
        best = min(results["500 MB"][0], results["500 MB again"][0])
        print(f"copy 500 MB on the same disk (fsync)   {copy:6.2f} s   {size / MB / copy:7.0f} MB/s")
        print(f"upload 500 MB through the API          {best:6.2f} s   {size / MB / best:7.0f} MB/s   "
              f"= {copy / best:.2f} of copy throughput ({best / copy:.1f}x the copy time)")
        print(f"upload 100 MB through the API          {results['100 MB'][0]:6.2f} s")
        print(f"worker RSS idle {idle:.1f} MB; peak during 100 MB upload {results['100 MB'][1]:.1f} MB; "
              f"during 500 MB uploads {max(results['500 MB'][1], results['500 MB again'][1]):.1f} MB")
        peak = max(r[1] for r in results.values())
        verdict = "flat" if peak - idle < 20 and peak < 100 else "NOT flat"
        print(f"memory: {verdict} (growth {peak - idle:+.1f} MB, limit 100 MB)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
