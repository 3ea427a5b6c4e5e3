"""File storage on the local backend, end to end through the API: uploads, serving, signed and public links,
quotas, isolation, thumbnails, failures, maintenance and reconcile."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from flask.testing import FlaskClient
from PIL import Image
from psycopg import sql

import storage
from errors import Conflict
from maintenance import Job, run_jobs
from queries import q
from storage import signing
from storage.maintenance import delete_expired_temp_objects
from tests import pg
from tests.clerk_keys import ISSUER
from tests.conftest import CLERK_KEY, running_app, signed_in

ACME = {"x-user-id": "user_acme", "x-user-org": "org_acme"}
GLOBEX = {"x-user-id": "user_globex", "x-user-org": "org_globex"}
MIGRATION = Path(__file__).resolve().parent.parent / "sql" / "migrations" / "0008_storage.sql"


def seed_buckets(database_url: str) -> None:
    """Put the buckets back as the migration seeds them: tests here lower limits, and the rows outlive a test."""
    insert = re.search(r"INSERT INTO storage_buckets .*?;", MIGRATION.read_text(), re.S).group(0).rstrip(";")
    with pg.connect(database_url) as conn:
        conn.execute(insert + " ON CONFLICT (id) DO UPDATE SET public = excluded.public,"
                     " file_size_limit = excluded.file_size_limit, allowed_mime_types = excluded.allowed_mime_types,"
                     " object_ttl = excluded.object_ttl")


class BufferedClient(FlaskClient):
    """A test client that reads each response whole and closes it, as a WSGI server would close a file response."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@contextmanager
def running_storage_app(database_url: str, tmp_path: Path, **config):
    """An app storing under `tmp_path`, with the seeded buckets; afterwards every table is emptied."""
    seed_buckets(database_url)
    settings = {"AUTH_DEV_HEADERS": True, "RATE_LIMIT_ENABLED": False, "STORAGE_LOCAL_DIR": str(tmp_path / "storage")}
    with running_app(database_url, **{**settings, **config}) as app:
        app.test_client_class = BufferedClient
        yield app


@pytest.fixture
def storage_app(database_url, tmp_path):
    with running_storage_app(database_url, tmp_path) as app:
        yield app


@pytest.fixture
def client(storage_app):
    return storage_app.test_client()


def mp4(size: int = 4096, seed: int = 0) -> bytes:
    header = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return header + hashlib.sha256(str(seed).encode()).digest() * ((size - len(header)) // 32 + 1)


def mp4_of(size: int, seed: int = 0) -> bytes:
    return mp4(size, seed)[:size]


def png(width: int = 40, height: int = 30, color=(200, 30, 30, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def webp_with_corrupt_exif() -> bytes:
    """A WebP whose EXIF block is not TIFF data: Pillow reads the pixels, then raises SyntaxError on the EXIF."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buffer, "WEBP", exif=b"Exif\x00\x00garbage")
    return buffer.getvalue()


def upload(client, bucket: str, path: str, data: bytes, headers=ACME, **kwargs):
    return client.post(f"/api/storage/object/{bucket}/{path}", data=data, headers=headers,
                       content_type=kwargs.pop("content_type", "application/octet-stream"), **kwargs)


def org_id(db_conn, clerk_org: str = "org_acme"):
    return db_conn.execute("SELECT id FROM organizations WHERE clerk_id = %s", (clerk_org,)).fetchone()["id"]


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_upload_streams_to_disk_and_downloads_the_same_bytes(client, storage_app, db_conn):
    data = mp4_of(300_000)
    # The client's type is ignored: the bytes say what they are.
    response = upload(client, "videos", "proj_1/source/1700000000_intro.mp4", data, content_type="text/html")
    assert response.status_code == 201, response.json
    body = response.json["object"]
    organization = str(org_id(db_conn))
    assert body["content_type"] == "video/mp4"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["size"] == len(data)
    assert body["key"] == f"{organization}/proj_1/source/1700000000_intro.mp4"
    assert body["metadata"] == {"client_content_type": "text/html"}
    root = Path(storage_app.config["STORAGE_LOCAL_DIR"])
    assert files_under(root) == [f"buckets/videos/{organization}/proj_1/source/1700000000_intro.mp4"]

    download = client.get("/api/storage/object/videos/proj_1/source/1700000000_intro.mp4", headers=ACME)
    assert download.status_code == 200 and download.data == data
    assert download.headers["Content-Type"] == "video/mp4"
    assert download.headers["ETag"] == f'"{body["sha256"]}"'
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    info = client.get("/api/storage/object/info/videos/proj_1/source/1700000000_intro.mp4", headers=ACME).json
    assert info == client.get(f"/api/storage/objects/{body['id']}", headers=ACME).json
    assert info["size"] == len(data)


def test_serving_supports_ranges_conditional_requests_and_download_names(client):
    data = mp4_of(10_000)
    upload(client, "videos", "p/clip.mp4", data)
    url = "/api/storage/object/videos/p/clip.mp4"
    part = client.get(url, headers={**ACME, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(url, headers={**ACME, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    outside = client.get(url, headers={**ACME, "Range": f"bytes={len(data)}-"})
    assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{len(data)}"
    etag = client.get(url, headers=ACME).headers["ETag"]
    assert client.get(url, headers={**ACME, "If-None-Match": etag}).status_code == 304

    named = client.get(f"{url}?download=My%20clip.mp4", headers=ACME)
    assert named.headers["Content-Disposition"].startswith('attachment; filename="My clip.mp4"')
    bare = client.get(f"{url}?download", headers=ACME)
    assert bare.headers["Content-Disposition"].startswith('attachment; filename="clip.mp4"')
    hostile = client.get(f"{url}?download=..%2F..%2Fevil%22%0D%0ASet-Cookie:x.mp4", headers=ACME)
    disposition = hostile.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition.split(";")[1]
    assert client.get(url, headers=ACME).headers["Content-Disposition"].startswith("inline")


def test_an_existing_path_is_409_unless_upsert_is_asked(client):
    path = "p/source/1_a.mp4"
    assert upload(client, "videos", path, mp4_of(5000, 1)).status_code == 201
    conflict = upload(client, "videos", path, mp4_of(5000, 2))
    assert conflict.status_code == 409 and conflict.json["error"]["code"] == "object_exists"
    assert client.get(f"/api/storage/object/videos/{path}", headers=ACME).data == mp4_of(5000, 1)

    replaced = upload(client, "videos", path, mp4_of(6000, 3), headers={**ACME, "x-upsert": "true"})
    assert replaced.status_code == 200 and replaced.json["object"]["size"] == 6000
    assert upload(client, "videos", f"{path}?upsert=true", mp4_of(7000, 4)).status_code == 200
    put = client.put(f"/api/storage/object/videos/{path}", data=mp4_of(8000, 5), headers=ACME)
    assert put.status_code == 200
    assert client.get(f"/api/storage/object/videos/{path}", headers=ACME).data == mp4_of(8000, 5)
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 8000


@pytest.mark.parametrize("first, second", [("a", "a/b"), ("a/b", "a"), ("x/y/z.bin", "x"), ("x", "x/y/z.bin")])
def test_a_path_cannot_be_both_a_file_and_a_folder(client, first, second):
    assert upload(client, "temp", first, b"first").status_code == 201
    for headers in (ACME, {**ACME, "x-upsert": "true"}):
        clash = upload(client, "temp", second, b"second", headers=headers)
        assert clash.status_code == 409 and clash.json["error"]["code"] == "path_clash", clash.json
        assert clash.json["error"]["details"]["clashes_with"] == first and "Retry-After" not in clash.headers
    assert client.get(f"/api/storage/object/temp/{first}", headers=ACME).data == b"first"
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == len(b"first")
    assert upload(client, "temp", f"{first}.other", b"elsewhere").status_code == 201  # a sibling is fine


class EndlessBody(io.RawIOBase):
    """A request body that never ends, counting what the server read of it."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk, self.read_bytes = chunk, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), len(self.chunk))
        buffer[:n] = self.chunk[:n]
        self.read_bytes += n
        return n


def test_the_size_limit_is_enforced_while_streaming_and_nothing_is_kept(client, storage_app, db_conn):
    db_conn.execute("UPDATE storage_buckets SET file_size_limit = 3000000 WHERE id = 'temp'")
    declared = upload(client, "temp", "big.bin", b"x" * 3_000_001)
    assert declared.status_code == 413 and declared.json["error"]["code"] == "payload_too_large"

    # No Content-Length (chunked): refused as soon as the limit is crossed, not after reading everything.
    body = EndlessBody(b"y" * 65536)
    response = client.post("/api/storage/object/temp/endless.bin", headers=ACME, environ_overrides={
        "wsgi.input": io.BufferedReader(body), "wsgi.input_terminated": True})
    assert response.status_code == 413
    assert 3_000_000 < body.read_bytes <= 3_000_000 + 2 * storage.CHUNK_BYTES
    root = Path(storage_app.config["STORAGE_LOCAL_DIR"])
    assert files_under(root) == []
    assert db_conn.execute("SELECT count(*) AS n FROM storage_objects").fetchone()["n"] == 0
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0


@pytest.mark.parametrize("bucket, data, expected", [
    ("videos", png(), 415),
    ("videos", b"just some text", 415),
    ("brand-kits", b"plain words, not an image", 415),
    ("brand-kits", b'{"colors": ["#fff"', 415),  # starts like JSON, is not
    ("brand-kits", b'{"colors": ["#ffffff"]}', 201),
    ("brand-kits", b"[" * 200_000 + b"]" * 200_000, 415),  # too deep for the parser
    ("brand-kits", b"wOF2" + bytes(60), 201),
    ("thumbnails", b"GIF89a" + bytes(40), 415),  # an image, but not one the thumbnails bucket takes
    ("temp", b"\x00\x01anything at all", 201),
])
def test_types_are_decided_by_sniffing_the_content(client, bucket, data, expected):
    response = upload(client, bucket, "kit/item", data, content_type="image/png")
    assert response.status_code == expected, response.json
    if expected == 415:
        assert response.json["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("path", [
    "a/%2E%2E/%2E%2E/etc/passwd", "%2E%2E/x", "a/./b", "a%5Cb.txt", "a%00b.txt", "a%07b.txt", "a%0Ab.txt",
    "C:%5Cwindows", "a//b", "folder/",
])
def test_traversal_and_unsafe_paths_are_refused(client, path):
    response = upload(client, "temp", path, b"data")
    # 308: werkzeug merges the double slash (the path then fails elsewhere); 404: routing refuses a newline.
    assert response.status_code in (422, 308, 404), response.json
    if response.status_code == 422:
        assert response.json["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("prefix", ["/etc/passwd", "../x", "a\\b", "a\x00b"])
def test_paths_in_json_bodies_are_checked_too(client, prefix):
    response = client.delete("/api/storage/object/temp", json={"prefixes": [prefix]}, headers=ACME)
    assert response.status_code == 422


def test_names_are_sanitised_into_a_safe_key(client):
    response = upload(client, "temp", "Résumé (final)*.txt", b"text")
    assert response.status_code == 201
    assert response.json["object"]["path"] == "Resume (final)_.txt"


def _tiny_plan(db_conn, clerk_org: str, quota: int) -> None:
    db_conn.execute("INSERT INTO plans (id, name, requests_per_minute, storage_quota_bytes) VALUES"
                    " ('test_storage_tiny', 'Tiny', 60, %s) ON CONFLICT (id) DO UPDATE"
                    " SET storage_quota_bytes = excluded.storage_quota_bytes", (quota,))
    db_conn.execute("UPDATE subscriptions SET plan_id = 'test_storage_tiny' WHERE organization_id = %s",
                    (org_id(db_conn, clerk_org),))


def test_the_plan_quota_refuses_uploads_and_warns_from_80_percent(client, db_conn):
    client.get("/api/storage/usage", headers=ACME)  # signs in: creates the organization
    _tiny_plan(db_conn, "org_acme", 10_000)
    first = upload(client, "temp", "a.bin", b"a" * 7000)
    assert first.status_code == 201 and first.json["quota"]["warning"] is None
    assert "X-Storage-Quota-Warning" not in first.headers
    second = upload(client, "temp", "b.bin", b"b" * 1500)
    assert second.status_code == 201
    assert second.json["quota"] == {"used_bytes": 8500, "limit_bytes": 10_000, "percent": 85.0,
                                    "warning": second.headers["X-Storage-Quota-Warning"]}
    assert "85% full" in second.json["quota"]["warning"]
    refused = upload(client, "temp", "c.bin", b"c" * 2000)
    assert refused.status_code == 402 and refused.json["error"]["code"] == "storage_quota_exceeded"
    assert "1.5 KB" in refused.json["error"]["message"] and "upgrade" in refused.json["error"]["message"]
    # Without a Content-Length the early check cannot help; the reservation still refuses.
    chunked = client.post("/api/storage/object/temp/d.bin", headers=ACME, environ_overrides={
        "wsgi.input": io.BytesIO(b"d" * 2000), "wsgi.input_terminated": True})
    assert chunked.status_code == 402
    # Replacing an object only needs the growth.
    assert upload(client, "temp", "a.bin?upsert=true", b"A" * 8000).status_code == 200
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 9500


def test_the_quota_holds_under_concurrent_uploads(storage_app, db_conn):
    client = storage_app.test_client()
    client.get("/api/storage/usage", headers=ACME)
    _tiny_plan(db_conn, "org_acme", 10_000)
    barrier = threading.Barrier(8)

    def send(n: int) -> int:
        barrier.wait()
        return upload(storage_app.test_client(), "temp", f"race/{n}.bin", bytes([n]) * 3000).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(8)))
    assert sorted(statuses) == [201] * 3 + [402] * 5
    usage = db_conn.execute("SELECT object_bytes, reserved_bytes FROM storage_usage").fetchone()
    assert usage == {"object_bytes": 9000, "reserved_bytes": 0}
    assert db_conn.execute("SELECT sum(size_bytes) AS s FROM storage_objects").fetchone()["s"] == 9000


def test_racing_plain_uploads_to_one_path_never_destroy_the_committed_object(storage_app, db_conn):
    # Writers start together and finish at slightly different times, over and over: one wins each path, the others
    # get 409, and the winner's bytes are whole (once, a loser overwrote them and then removed them).
    for round_ in range(30):
        path = f"race/{round_}.bin"
        barrier = threading.Barrier(4)

        def send(n: int, path=path, barrier=barrier) -> int:
            barrier.wait()
            return upload(storage_app.test_client(), "temp", path, bytes([n]) * (2000 + n)).status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(send, range(4)))
        assert sorted(statuses) == [201, 409, 409, 409], statuses
        client = storage_app.test_client()
        info = client.get(f"/api/storage/object/info/temp/{path}", headers=ACME).json
        stored = client.get(f"/api/storage/object/temp/{path}", headers=ACME)
        assert stored.status_code == 200, round_
        assert hashlib.sha256(stored.data).hexdigest() == info["sha256"] and len(stored.data) == info["size"]
    usage = db_conn.execute("SELECT object_bytes, reserved_bytes FROM storage_usage").fetchone()
    assert usage["reserved_bytes"] == 0
    assert usage["object_bytes"] == db_conn.execute("SELECT sum(size_bytes) AS s FROM storage_objects").fetchone()["s"]


def _wait_until_blocked(conn, statement: str) -> None:
    """Until a backend of this database running `statement` waits for a lock. By its query, not its pid: behind a
    transaction-mode pooler each statement may run on another backend."""
    for _ in range(200):
        if conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND strpos(query, %s) > 0", (statement,)).fetchone():
            return
        time.sleep(0.02)
    raise AssertionError("the writer never waited for the lock")


def test_begin_storage_write_sees_an_object_committed_while_it_waited_for_the_lock(client, db_conn, database_url):
    # The interleaving behind the race above, made certain: our writer looks at the path (free), then waits for the
    # usage row lock while another writer commits an object there.
    assert upload(client, "temp", "first.bin", b"x").status_code == 201
    organization = org_id(db_conn)
    with pg.connect(database_url) as holder, pg.connect(database_url) as writer:
        result = {}
        with holder.transaction():
            holder.execute("SELECT 1 FROM storage_usage WHERE organization_id = %s FOR UPDATE", (organization,))
            thread = threading.Thread(target=lambda: result.update(writer.execute(
                "SELECT outcome FROM begin_storage_write(%s, 'temp', 'late.bin', 'direct', 5, false, NULL, NULL,"
                " '{}', now() + interval '1 hour')", (organization,)).fetchone()))
            thread.start()
            _wait_until_blocked(db_conn, "begin_storage_write(")
            holder.execute("INSERT INTO storage_objects (organization_id, bucket_id, path, size_bytes, content_type,"
                           " sha256) VALUES (%s, 'temp', 'late.bin', 5, 'text/plain', repeat('0', 64))",
                           (organization,))
        thread.join(10)
    assert result == {"outcome": "exists"}
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0
    for path in ("first.bin", "late.bin"):  # and without any race, of course
        assert db_conn.execute(
            "SELECT outcome FROM begin_storage_write(%s, 'temp', %s, 'direct', 5, false, NULL, NULL, '{}',"
            " now() + interval '1 hour')", (organization, path)).fetchone()["outcome"] == "exists"


def test_a_placement_that_may_not_replace_never_overwrites_and_rolls_back_only_its_own_bytes(storage_app):
    backend = storage_app.extensions["storage"]
    key = "4c1f6a59-83f0-4a39-9f5a-2d7a1b7e0c11/a.bin"

    def staged(data: bytes) -> Path:
        path = backend.staging_dir / f"body-{hashlib.sha256(data).hexdigest()[:8]}"
        path.write_bytes(data)
        return path

    first = backend.place("temp", key, staged(b"first"), "text/plain", replace=False, token="t1")
    with pytest.raises(Conflict):
        backend.place("temp", key, staged(b"second"), "text/plain", replace=False, token="t2")
    assert backend.path_of("temp", key).read_bytes() == b"first"
    # Another write's bytes took the path meanwhile: rolling back the first placement leaves them alone.
    os.replace(staged(b"other"), backend.path_of("temp", key))
    first.rollback()
    assert backend.path_of("temp", key).read_bytes() == b"other"


def test_listing_by_prefix_pages_with_a_keyset_cursor(client):
    for name in ("e", "a", "c", "b", "d"):
        upload(client, "temp", f"proj1/{name}.txt", name.encode())
    upload(client, "temp", "proj10/x.txt", b"x")
    upload(client, "temp", "proj2/y.txt", b"y")
    seen, cursor = [], None
    while True:
        query = "prefix=proj1/&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/api/storage/buckets/temp/objects?{query}", headers=ACME).json
        seen.append([item["path"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [["proj1/a.txt", "proj1/b.txt"], ["proj1/c.txt", "proj1/d.txt"], ["proj1/e.txt"]]
    everything = client.get("/api/storage/buckets/temp/objects?prefix=proj1", headers=ACME).json["items"]
    assert len(everything) == 6  # proj1/... and proj10/...
    bad = client.get("/api/storage/buckets/temp/objects?cursor=garbage", headers=ACME)
    assert bad.status_code == 422


def test_delete_one_by_path_or_id_and_many_at_once(client, storage_app):
    ids = {name: upload(client, "temp", f"d/{name}", name.encode()).json["object"]["id"] for name in "abcd"}
    assert client.delete("/api/storage/object/temp/d/a", headers=ACME).json["deleted"] is True
    assert client.delete("/api/storage/object/temp/d/a", headers=ACME).status_code == 404
    assert client.delete(f"/api/storage/objects/{ids['b']}", headers=ACME).status_code == 200
    many = client.delete("/api/storage/object/temp", json={"prefixes": ["d/c", "d/d", "d/missing"]}, headers=ACME)
    assert many.json["deleted"] == 2
    assert {r["path"]: r["outcome"] for r in many.json["results"]} == {
        "d/c": "deleted", "d/d": "deleted", "d/missing": "not_found"}
    assert files_under(Path(storage_app.config["STORAGE_LOCAL_DIR"]) / "buckets") == []
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 0


def test_another_organization_sees_nothing_and_touches_nothing(client, storage_app):
    created = upload(client, "videos", "p/secret.mp4", mp4_of(5000)).json["object"]
    path_url = "/api/storage/object/videos/p/secret.mp4"
    assert client.get(path_url, headers=GLOBEX).status_code == 404
    assert client.get("/api/storage/object/info/videos/p/secret.mp4", headers=GLOBEX).status_code == 404
    assert client.get(f"/api/storage/objects/{created['id']}", headers=GLOBEX).status_code == 404
    assert client.delete(f"/api/storage/objects/{created['id']}", headers=GLOBEX).status_code == 404
    assert client.delete(path_url, headers=GLOBEX).status_code == 404
    assert client.post("/api/storage/object/sign/videos/p/secret.mp4", headers=GLOBEX).status_code == 404
    assert client.get("/api/storage/buckets/videos/objects", headers=GLOBEX).json["items"] == []
    # The same relative path is a different object in the other organization's folder.
    assert upload(client, "videos", "p/secret.mp4", mp4_of(6000, 9), headers=GLOBEX).status_code == 201
    assert client.get(path_url, headers=ACME).data == mp4_of(5000)

    # A signed link cannot be bent to another bucket or another organization's key.
    signed = client.post("/api/storage/object/sign/videos/p/secret.mp4", headers=ACME).json["signed_url"]
    parts = urlsplit(signed)
    globex_key = client.get("/api/storage/object/info/videos/p/secret.mp4", headers=GLOBEX).json["key"]
    for forged in (parts.path.replace("/signed/videos/", "/signed/temp/"),
                   parts.path.replace(created["key"], globex_key)):
        assert client.get(f"{forged}?{parts.query}").status_code == 403


def test_signed_links_expire_and_cannot_be_tampered_with(client, storage_app):
    data = mp4_of(5000)
    created = upload(client, "videos", "p/v.mp4", data).json["object"]
    response = client.post("/api/storage/object/sign/videos/p/v.mp4", headers=ACME, json={"download": "v.mp4"})
    assert response.status_code == 200
    assert response.json["expires_at"]
    link = urlsplit(response.json["signed_url"])
    assert link.path == f"/api/storage/signed/videos/{created['key']}"
    fetched = client.get(f"{link.path}?{link.query}")  # no session needed
    assert fetched.status_code == 200 and fetched.data == data
    assert fetched.headers["Content-Disposition"].startswith("attachment")
    ranged = client.get(f"{link.path}?{link.query}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.data == data[:10]

    query = dict(pair.split("=", 1) for pair in link.query.split("&"))
    expires, token = int(query["expires"]), query["token"]
    assert abs(expires - time.time() - 3600) < 30
    tampered = client.get(f"{link.path}?expires={expires + 3600}&token={token}")
    assert tampered.status_code == 403 and tampered.json["error"]["code"] == "invalid_signature"
    assert client.get(f"{link.path}?expires={expires}&token={token[:-2]}AA").status_code == 403
    assert client.get(f"{link.path}?expires={expires}").status_code == 403
    old, _expires = signing.signed_path("test-secret-key", "videos", created["key"], 60, now=time.time() - 120)
    expired = client.get(old)
    assert expired.status_code == 403 and expired.json["error"]["code"] == "link_expired"

    client.delete("/api/storage/object/videos/p/v.mp4", headers=ACME)
    assert client.get(f"{link.path}?{link.query}").status_code == 404


@pytest.mark.parametrize("expires", ["%C2%B2", "9" * 5000, "-1", "1e9", "%EF%BC%91"])
def test_a_signed_link_with_an_expiry_that_is_not_plain_digits_is_403(client, expires):
    key = upload(client, "temp", "f.txt", b"x").json["object"]["key"]
    response = client.get(f"/api/storage/signed/temp/{key}?expires={expires}&token=abc")
    assert response.status_code == 403 and response.json["error"]["code"] == "invalid_signature"


def test_signed_link_lifetime_is_validated(client):
    upload(client, "temp", "f.txt", b"x")
    assert client.post("/api/storage/object/sign/temp/f.txt", json={"expires_in": 0}, headers=ACME).status_code == 422
    ok = client.post("/api/storage/object/sign/temp/f.txt", json={"expires_in": 120}, headers=ACME)
    assert abs(int(re.search(r"expires=(\d+)", ok.json["signed_url"]).group(1)) - time.time() - 120) < 5


def test_public_buckets_get_stable_cacheable_links(client):
    created = upload(client, "thumbnails", "p/c1_thumb.png", png()).json["object"]
    link = urlsplit(created["public_url"])
    assert link.query == f"v={created['sha256'][:16]}"
    fetched = client.get(f"{link.path}?{link.query}")
    assert fetched.status_code == 200 and fetched.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(link.path).headers["Cache-Control"] == "public, max-age=300"
    private = upload(client, "temp", "p/x.txt", b"x").json["object"]
    assert "public_url" not in private
    assert client.get(f"/api/storage/public/temp/{private['key']}").status_code == 404
    assert client.get("/api/storage/public/thumbnails/not-an-org/x.png").status_code == 404


def test_images_for_a_brand_kit_or_a_project_get_a_thumbnail(client):
    response = upload(client, "brand-kits", "logos/acme.png", png(1200, 800))
    assert response.status_code == 201, response.json
    thumb = response.json["thumbnail"]["object"]
    assert (thumb["bucket"], thumb["path"], thumb["content_type"]) == (
        "thumbnails", "brand-kits/logos/acme_thumb.jpg", "image/jpeg")
    assert response.json["object"]["metadata"]["thumbnail"] == {"bucket": "thumbnails",
                                                                "path": "brand-kits/logos/acme_thumb.jpg"}
    image = Image.open(io.BytesIO(client.get(urlsplit(thumb["public_url"]).path).data))
    assert image.format == "JPEG" and image.size == (320, 213)

    project = upload(client, "temp", "intro.png?project_id=proj_9", png(100, 400))
    assert project.json["thumbnail"]["object"]["path"] == "proj_9/intro_thumb.jpg"  # the seed's convention
    # Folders are part of the name: an image of the same name elsewhere gets its own thumbnail.
    nested = upload(client, "temp", "frames/intro.png?project_id=proj_9", png(100, 400))
    assert nested.json["thumbnail"]["object"]["path"] == "proj_9/frames/intro_thumb.jpg"
    assert upload(client, "temp", "loose.png", png()).json["thumbnail"] is None


def test_a_thumbnail_never_replaces_a_file_it_did_not_make(client):
    mine = png(10, 10, (0, 255, 0, 255))
    assert upload(client, "thumbnails", "p1/intro_thumb.jpg", mine).status_code == 201
    response = upload(client, "temp", "intro.png?project_id=p1", png())
    assert response.status_code == 201
    assert "thumbnails/p1/intro_thumb.jpg" in response.json["thumbnail"]["error"]
    assert client.get("/api/storage/object/thumbnails/p1/intro_thumb.jpg", headers=ACME).data == mine
    # A thumbnail of another image is not replaced either; the image's own earlier thumbnail is.
    brand = upload(client, "brand-kits", "logos/a.png", png()).json["thumbnail"]["object"]
    again = upload(client, "brand-kits", "logos/a.png?upsert=true", png(50, 50, (0, 0, 255, 255)))
    assert again.status_code == 200 and again.json["thumbnail"]["object"]["sha256"] != brand["sha256"]


def test_thumbnails_go_with_their_source(client, storage_app, db_conn, database_url):
    logo = upload(client, "brand-kits", "logos/acme.png", png(1200, 800)).json
    assert client.delete("/api/storage/object/brand-kits/logos/acme.png", headers=ACME).status_code == 200
    assert client.get(f"/api/storage/objects/{logo['thumbnail']['object']['id']}", headers=ACME).status_code == 404
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 0
    assert files_under(Path(storage_app.config["STORAGE_LOCAL_DIR"]) / "buckets") == []

    # A temporary image's thumbnail expires with it.
    temp = upload(client, "temp", "x.png?project_id=p1", png()).json
    thumb = temp["thumbnail"]["object"]
    assert thumb["expires_at"] is not None and thumb["expires_at"] == temp["object"]["expires_at"]
    db_conn.execute("UPDATE storage_objects SET expires_at = now() - interval '1 minute'"
                    " WHERE expires_at IS NOT NULL")
    with storage_app.app_context(), pg.connect(database_url) as conn:
        run_jobs(conn, [Job("storage-expired-objects", delete_expired_temp_objects)])
    assert client.get(f"/api/storage/objects/{thumb['id']}", headers=ACME).status_code == 404
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 0
    assert files_under(Path(storage_app.config["STORAGE_LOCAL_DIR"]) / "buckets") == []


def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(png(2, 2))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_a_decompression_bomb_is_stored_but_gets_no_thumbnail(client):
    response = upload(client, "brand-kits", "logos/bomb.png", _png_claiming(100_000, 100_000))
    assert response.status_code == 201
    assert "error" in response.json["thumbnail"]
    assert client.get("/api/storage/buckets/thumbnails/objects", headers=ACME).json["items"] == []


def test_an_image_pillow_chokes_on_is_stored_without_a_thumbnail(client):
    data = webp_with_corrupt_exif()
    response = upload(client, "brand-kits", "logos/odd.webp", data)
    assert response.status_code == 201, response.json
    assert response.json["thumbnail"] == {"error": "unreadable image: SyntaxError"}
    assert client.get("/api/storage/object/brand-kits/logos/odd.webp", headers=ACME).data == data
    assert client.get("/api/storage/buckets/thumbnails/objects", headers=ACME).json["items"] == []


def test_an_image_whose_thumbnail_path_would_be_too_long_is_stored_without_one(client):
    path = "/".join(["d" * 250] * 4) + "/x.png"  # 1009 bytes: fine for the image, too long with _thumb.jpg
    response = upload(client, "brand-kits", path, png())
    assert response.status_code == 201, response.json
    assert "1024 bytes" in response.json["thumbnail"]["error"]
    assert client.get(f"/api/storage/object/info/brand-kits/{path}", headers=ACME).status_code == 200
    assert client.get("/api/storage/buckets/thumbnails/objects", headers=ACME).json["items"] == []


def test_a_thumbnail_that_fails_unexpectedly_never_fails_its_upload(client, monkeypatch):
    original = storage.begin_write

    def begin_write(organization_id, user_id, bucket, path, **kwargs):
        if bucket.id == "thumbnails":
            raise RuntimeError("a bug, or anything else nobody foresaw")
        return original(organization_id, user_id, bucket, path, **kwargs)

    monkeypatch.setattr(storage, "begin_write", begin_write)
    response = upload(client, "brand-kits", "logos/a.png", png())
    monkeypatch.undo()
    assert response.status_code == 201, response.json
    assert response.json["thumbnail"] == {"error": "The thumbnail could not be stored."}
    assert client.get("/api/storage/object/info/brand-kits/logos/a.png", headers=ACME).status_code == 200


def test_a_failed_placement_leaves_neither_bytes_nor_metadata(client, storage_app, db_conn, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)  # what turns the staged body into the object: a rename
    monkeypatch.setattr(os, "link", disk_full)  # or, when nothing may be replaced, a hard link
    response = upload(client, "temp", "x.bin", b"x" * 100)
    monkeypatch.undo()
    assert response.status_code == 503 and response.json["error"]["code"] == "storage_unavailable"
    assert db_conn.execute("SELECT count(*) AS n FROM storage_objects").fetchone()["n"] == 0
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0
    assert db_conn.execute("SELECT coalesce(sum(object_bytes + reserved_bytes), 0) AS n"
                           " FROM storage_usage").fetchone()["n"] == 0
    assert files_under(Path(storage_app.config["STORAGE_LOCAL_DIR"])) == []


def test_a_failed_commit_rolls_the_bytes_back(client, storage_app, db_conn, monkeypatch):
    assert upload(client, "temp", "keep.bin", b"version one").status_code == 201
    # The commit step fails (whichever status the app gives that): the write must leave nothing behind.
    monkeypatch.setattr(q.storage, "complete_storage_write", "SELECT 1 / 0 AS object_id")
    assert upload(client, "temp", "new.bin", b"never").status_code not in (200, 201)
    assert upload(client, "temp", "keep.bin?upsert=true", b"version two").status_code not in (200, 201)
    monkeypatch.undo()
    assert client.get("/api/storage/object/temp/keep.bin", headers=ACME).data == b"version one"
    root = Path(storage_app.config["STORAGE_LOCAL_DIR"])
    organization = org_id(db_conn)
    assert files_under(root) == [f"buckets/temp/{organization}/keep.bin"]
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == len(b"version one")


def test_org_stats_count_stored_bytes(client, db_conn):
    upload(client, "temp", "a", b"a" * 10)
    upload(client, "temp", "b", b"b" * 32)
    stats = db_conn.execute("SELECT get_org_stats(%s) AS s", (org_id(db_conn),)).fetchone()["s"]
    assert stats["storage_bytes"] == 42


def test_maintenance_removes_expired_temp_objects_and_undoes_abandoned_uploads(client, storage_app, db_conn,
                                                                               database_url):
    upload(client, "temp", "old.bin", b"old")
    upload(client, "temp", "fresh.bin", b"fresh")
    assert upload(client, "videos", "p/kept.mp4", mp4_of(3000, 1)).status_code == 201
    organization = org_id(db_conn)
    root = Path(storage_app.config["STORAGE_LOCAL_DIR"])
    assert client.get("/api/storage/object/info/temp/old.bin", headers=ACME).json["expires_at"]
    db_conn.execute("UPDATE storage_objects SET expires_at = now() - interval '1 minute' WHERE path = 'old.bin'")

    # A process died after placing bytes: one write replaced p/kept.mp4 (its old version kept aside), another
    # placed a new object; neither committed.
    backend = storage_app.extensions["storage"]
    crashed = {}
    for path, upsert in (("p/kept.mp4", True), ("p/never.mp4", False)):
        crashed[path] = db_conn.execute(
            "INSERT INTO storage_uploads (organization_id, bucket_id, path, kind, upload_length, upsert, expires_at)"
            " VALUES (%s, 'videos', %s, 'direct', 3000, %s, now() - interval '1 second') RETURNING id",
            (organization, path, upsert)).fetchone()["id"]
        staged = root / "staging" / f"crash-{path.replace('/', '_')}"
        staged.write_bytes(mp4_of(3000, 7))
        backend.place("videos", f"{organization}/{path}", staged, "video/mp4", replace=upsert, token=str(crashed[path]))
    tus_part = backend.upload_part_path("00000000-0000-0000-0000-000000000001")
    tus_part.write_bytes(b"partial")
    db_conn.execute("INSERT INTO storage_uploads (organization_id, id, bucket_id, path, kind, upload_length,"
                    " expires_at) VALUES (%s, '00000000-0000-0000-0000-000000000001', 'temp', 'tus.bin', 'tus', 99,"
                    " now() - interval '1 second')", (organization,))

    with storage_app.app_context(), pg.connect(database_url) as conn:
        results = run_jobs(conn, [Job("storage-expired-objects", delete_expired_temp_objects)])
    [(name, outcome, summary)] = results
    assert outcome == "done", summary
    assert summary.startswith("deleted 1 expired objects (3 bytes) and 3 abandoned uploads")
    assert "restored 1 replaced objects, removed 1 orphans" in summary
    assert client.get("/api/storage/object/info/temp/old.bin", headers=ACME).status_code == 404
    assert client.get("/api/storage/object/videos/p/kept.mp4", headers=ACME).data == mp4_of(3000, 1)
    assert files_under(root) == sorted([f"buckets/temp/{organization}/fresh.bin",
                                        f"buckets/videos/{organization}/p/kept.mp4"])
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0
    assert db_conn.execute("SELECT reserved_bytes FROM storage_usage").fetchone()["reserved_bytes"] == 0


def test_an_expired_object_is_gone_at_once_and_its_path_free(client, storage_app, db_conn):
    old = upload(client, "temp", "p/old.txt", b"old bytes").json["object"]
    link = urlsplit(client.post("/api/storage/object/sign/temp/p/old.txt", headers=ACME).json["signed_url"])
    upload(client, "temp", "p/kept.txt", b"kept")
    db_conn.execute("UPDATE storage_objects SET expires_at = now() - interval '1 second' WHERE path = 'p/old.txt'")

    # Maintenance has not run: the row and bytes are still there, yet no route shows them.
    assert client.get("/api/storage/object/temp/p/old.txt", headers=ACME).status_code == 404
    assert client.get("/api/storage/object/info/temp/p/old.txt", headers=ACME).status_code == 404
    assert client.get(f"/api/storage/objects/{old['id']}", headers=ACME).status_code == 404
    assert client.get(f"{link.path}?{link.query}").status_code == 404
    assert client.post("/api/storage/object/sign/temp/p/old.txt", headers=ACME).status_code == 404
    listed = client.get("/api/storage/buckets/temp/objects?prefix=p/", headers=ACME).json["items"]
    assert [item["path"] for item in listed] == ["p/kept.txt"]
    assert client.delete(f"/api/storage/objects/{old['id']}", headers=ACME).status_code == 404
    assert client.delete("/api/storage/object/temp/p/old.txt", headers=ACME).status_code == 404

    # A plain upload to its path stores a new object in its place, and the old bytes stop counting.
    new = upload(client, "temp", "p/old.txt", b"new")
    assert new.status_code == 201, new.json
    assert new.json["object"]["id"] != old["id"]
    assert client.get("/api/storage/object/temp/p/old.txt", headers=ACME).data == b"new"
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == len(b"new") + len(b"kept")
    usage = db_conn.execute("SELECT object_bytes, reserved_bytes FROM storage_usage").fetchone()
    assert usage == {"object_bytes": len(b"new") + len(b"kept"), "reserved_bytes": 0}
    organization = org_id(db_conn)
    assert files_under(Path(storage_app.config["STORAGE_LOCAL_DIR"])) == [
        f"buckets/temp/{organization}/p/kept.txt", f"buckets/temp/{organization}/p/old.txt"]


def test_reconcile_finds_and_repairs_orphans_on_both_sides(client, storage_app, db_conn):
    upload(client, "temp", "good.bin", b"good")
    upload(client, "temp", "lost.bin", b"lost")
    upload(client, "temp", "grown.bin", b"grown")
    organization = org_id(db_conn)
    root = Path(storage_app.config["STORAGE_LOCAL_DIR"])
    objects = root / "buckets" / "temp" / str(organization)
    (objects / "lost.bin").unlink()
    (objects / "grown.bin").write_bytes(b"grown a lot")
    (objects / "stray.bin").write_bytes(b"no metadata")
    (root / "staging" / "body-dead").write_bytes(b"from a crashed request")
    runner = storage_app.test_cli_runner()

    dry = runner.invoke(args=["storage", "reconcile", "--dry-run", "--grace-minutes", "0"])
    assert dry.exit_code == 0, dry.output
    assert re.search(r"temp\s+object_without_metadata\s+would repair\s+\S+/stray.bin", dry.output)
    assert re.search(r"temp\s+metadata_without_object\s+would repair\s+\S+/lost.bin", dry.output)
    assert re.search(r"temp\s+size_mismatch\s+left alone\s+\S+/grown.bin", dry.output)
    assert "stale_work_file" in dry.output and "(dry run: nothing changed)" in dry.output
    assert (objects / "stray.bin").exists()

    fixed = runner.invoke(args=["storage", "reconcile", "--grace-minutes", "0"])
    assert fixed.exit_code == 0, fixed.output
    assert not (objects / "stray.bin").exists() and not (root / "staging" / "body-dead").exists()
    assert client.get("/api/storage/object/info/temp/lost.bin", headers=ACME).status_code == 404
    assert client.get("/api/storage/object/temp/good.bin", headers=ACME).data == b"good"
    again = runner.invoke(args=["storage", "reconcile", "--grace-minutes", "0"])
    assert again.output.splitlines()[-1] == "1 findings"  # only the size mismatch, which needs a person

    (objects / "young.bin").write_bytes(b"just placed")
    young = runner.invoke(args=["storage", "reconcile"])
    assert "young.bin" not in young.output and (objects / "young.bin").exists()


def test_reconcile_passes_over_files_that_vanish_while_it_looks(client, storage_app, monkeypatch):
    upload(client, "temp", "good.bin", b"good")
    backend = storage_app.extensions["storage"]
    (backend.staging_dir / "body-old").write_bytes(b"from a crashed request")
    os.utime(backend.staging_dir / "body-old", (0, 0))

    class Vanished(type(Path())):
        """A file that was there when its directory was listed, and is gone when looked at: its request finished."""

        def is_file(self) -> bool:
            return True

    listing = Path.iterdir

    def iterdir(self):
        yield from listing(self)
        if self in (backend.staging_dir, backend.uploads_dir, backend.backups_dir):
            yield Vanished(self / "just-finished")

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = storage_app.test_cli_runner().invoke(args=["storage", "reconcile", "--grace-minutes", "1"])
    assert result.exit_code == 0, result.output
    assert "stale_work_file" in result.output and "just-finished" not in result.output
    assert not (backend.staging_dir / "body-old").exists()


def test_sync_buckets_on_the_local_backend_makes_their_folders(storage_app):
    result = storage_app.test_cli_runner().invoke(args=["storage", "sync-buckets"])
    assert result.exit_code == 0, result.output
    assert {line.split()[0] for line in result.output.splitlines()} == {"brand-kits", "temp", "thumbnails", "videos"}
    assert (Path(storage_app.config["STORAGE_LOCAL_DIR"]) / "buckets" / "videos").is_dir()


def test_buckets_are_listed_with_their_rules(client):
    buckets = {b["id"]: b for b in client.get("/api/storage/buckets", headers=ACME).json["buckets"]}
    assert buckets["videos"] == {"id": "videos", "public": False, "file_size_limit": 500 * 1024 * 1024,
                                 "allowed_mime_types": ["video/*"], "object_ttl_seconds": None}
    assert buckets["thumbnails"]["public"] is True
    assert buckets["thumbnails"]["allowed_mime_types"] == ["image/jpeg", "image/png", "image/webp"]
    assert buckets["brand-kits"]["allowed_mime_types"] == ["image/*", "font/*", "application/json"]
    assert buckets["temp"]["object_ttl_seconds"] == 24 * 3600
    assert client.get("/api/storage/object/nope/x", headers=ACME).status_code == 404


def test_storage_needs_a_session_except_for_links(database_url, tmp_path):
    with running_storage_app(database_url, tmp_path, CLERK_JWT_KEY=CLERK_KEY.public_pem, CLERK_ISSUER=ISSUER,
                             AUTH_DEV_HEADERS=False) as app:
        client = app.test_client()
        assert client.post("/api/storage/object/temp/a.txt", data=b"x").status_code == 401
        assert client.get("/api/storage/buckets").status_code == 401
        created = client.post("/api/storage/object/temp/a.txt", data=b"x", headers=signed_in()).json["object"]
        link = client.post("/api/storage/object/sign/temp/a.txt", headers=signed_in()).json["signed_url"]
        assert client.get(urlsplit(link).path + "?" + urlsplit(link).query).data == b"x"
        assert created["uploaded_by"]


def test_no_staging_files_outlive_a_request(client, storage_app):
    upload(client, "temp", "a.bin", os.urandom(2_500_000))
    upload(client, "videos", "p/x.mp4", png())
    assert list((Path(storage_app.config["STORAGE_LOCAL_DIR"]) / "staging").iterdir()) == []


def test_row_level_security_confines_the_storage_tables(client, storage_app, db_conn):
    upload(client, "temp", "a.txt", b"acme")
    upload(client, "temp", "b.txt", b"globex", headers=GLOBEX)
    acme, globex = org_id(db_conn), org_id(db_conn, "org_globex")
    db = storage_app.extensions["db"]
    with db.connection() as conn:
        with db.tenant_transaction(acme, conn) as tx:
            for table in ("storage_objects", "storage_usage"):
                query = sql.SQL("SELECT organization_id FROM {}").format(sql.Identifier(table))
                seen = {r["organization_id"] for r in tx.execute(query)}
                assert seen == {acme}, table
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant_transaction(acme, conn) as tx:
            tx.execute("INSERT INTO storage_objects (organization_id, bucket_id, path, size_bytes, content_type,"
                       " sha256) VALUES (%s, 'temp', 'sneaky', 1, 'text/plain', repeat('0', 64))", (globex,))


def test_a_project_id_is_one_path_segment(client, db_conn):
    traversal = upload(client, "thumbnails", "logo.png", png(), query_string={"project_id": "p1/../p2"})
    assert traversal.status_code == 422 and "project_id" in traversal.json["error"]["details"]
    nested = upload(client, "thumbnails", "logo.png", png(), query_string={"project_id": "p1/p2"})
    assert nested.status_code == 422
    assert nested.json["error"]["details"]["project_id"] == ["Must be a single path segment."]
    assert db_conn.execute("SELECT count(*) AS n FROM storage_objects").fetchone()["n"] == 0
