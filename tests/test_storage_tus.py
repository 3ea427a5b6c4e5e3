"""Resumable uploads over tus 1.0: the real tuspy client against a live server, and the protocol's edges."""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import socket
import threading
from urllib.parse import urlsplit

import pytest
from tusclient.client import TusClient
from tusclient.storage.interface import Storage
from werkzeug.serving import make_server

import storage
from storage import tus
from tests.test_storage import ACME, GLOBEX, mp4_of, png, running_storage_app, webp_with_corrupt_exif

ENDPOINT = "/api/storage/upload/resumable"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def storage_app(database_url, tmp_path):
    with running_storage_app(database_url, tmp_path) as app:
        yield app


@pytest.fixture
def client(storage_app):
    return storage_app.test_client()


@pytest.fixture
def live_url(storage_app):
    """The app served over real HTTP on a free localhost port, in a thread."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, storage_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class MemoryUrlStorage(Storage):
    """Where tuspy remembers upload URLs between runs (its own FileStorage needs tinydb)."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}

    def get_item(self, key):
        return self.urls.get(key)

    def set_item(self, key, value):
        self.urls[key] = value

    def remove_item(self, key):
        self.urls.pop(key, None)


class KeptOpen(io.BytesIO):
    """The file to upload. tuspy opens files by path without closing them, and closes a stream it fingerprints;
    the test owns this one."""

    def close(self) -> None:
        pass


def metadata(bucket: str, name: str, **extra) -> str:
    pairs = {"bucketName": bucket, "objectName": name, **extra}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def test_tuspy_uploads_a_video_in_chunks(live_url, client):
    data = mp4_of(700_000, 5)
    tus = TusClient(f"{live_url}{ENDPOINT}", headers=ACME)
    uploader = tus.uploader(file_stream=KeptOpen(data), chunk_size=128 * 1024, metadata={
        "bucketName": "videos", "objectName": "proj_1/source/1700000000_video.mp4", "contentType": "video/mp4"})
    uploader.upload()
    assert uploader.offset == len(data)
    info = client.get("/api/storage/object/info/videos/proj_1/source/1700000000_video.mp4", headers=ACME).json
    assert (info["size"], info["sha256"], info["content_type"]) == (
        len(data), hashlib.sha256(data).hexdigest(), "video/mp4")
    assert info["metadata"]["client_content_type"] == "video/mp4"
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == len(data)


def _broken_patch(live_url: str, upload_url: str, offset: int, body: bytes, send: int) -> dict:
    """A PATCH announcing len(body) bytes that sends only `send` of them, then hangs up; returns the response
    headers the server still managed to send."""
    address = urlsplit(live_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        head = (f"PATCH {urlsplit(upload_url).path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Upload-Offset: {offset}\r\nContent-Length: {len(body)}\r\n"
                f"x-user-id: {ACME['x-user-id']}\r\nx-user-org: {ACME['x-user-org']}\r\n\r\n")
        sock.sendall(head.encode() + body[:send])
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    lines = reply.decode("latin-1").split("\r\n\r\n")[0].split("\r\n")
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


def test_an_upload_resumes_after_a_broken_transfer(live_url, client):
    data = mp4_of(600_000, 8)
    urls = MemoryUrlStorage()
    tus = TusClient(f"{live_url}{ENDPOINT}", headers=ACME)
    meta = {"bucketName": "videos", "objectName": "p/source/1_clip.mp4"}

    first = tus.uploader(file_stream=KeptOpen(data), chunk_size=100_000, metadata=meta, store_url=True, url_storage=urls)
    first.upload(stop_at=200_000)  # the client stops here (closed laptop, lost network)
    assert first.offset == 200_000
    # The next PATCH breaks off mid-body: what arrived is kept.
    reply = _broken_patch(live_url, first.url, 200_000, data[200_000:400_000], send=50_000)
    assert reply["upload-offset"] == "250000"

    # A new uploader (another process) finds the stored URL, asks the offset and sends the rest.
    second = tus.uploader(file_stream=KeptOpen(data), chunk_size=100_000, metadata=meta, store_url=True, url_storage=urls)
    assert (second.url, second.offset) == (first.url, 250_000)
    second.upload()
    info = client.get("/api/storage/object/info/videos/p/source/1_clip.mp4", headers=ACME).json
    assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["size"] == len(data)
    assert client.head(urlsplit(first.url).path, headers={**ACME, **TUS}).status_code == 404  # finished


def _create(client, length: int, meta: str, headers=ACME, **extra):
    return client.post(ENDPOINT, headers={**headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": meta,
                                          **extra})


def _patch(client, location: str, offset: int, body: bytes, headers=ACME, **extra):
    return client.patch(urlsplit(location).path, data=body, headers={
        **headers, **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream", **extra})


class GatedBody(io.RawIOBase):
    """A request body that sends `head`, then waits for `gate` before sending `tail`: a slow client."""

    def __init__(self, head: bytes, tail: bytes, gate: threading.Event) -> None:
        self.parts, self.gate, self.started = [head, tail], gate, threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.parts:
            return 0
        if len(self.parts) == 1:
            self.started.set()
            assert self.gate.wait(30)
        part = self.parts.pop(0)
        buffer[:len(part)] = part
        return len(part)


def test_slow_uploads_hold_no_pooled_connection_while_their_bodies_stream(database_url, tmp_path):
    with running_storage_app(database_url, tmp_path, DB_POOL_MIN_SIZE=1, DB_POOL_MAX_SIZE=2, DB_POOL_TIMEOUT=2) as app:
        client = app.test_client()
        data = mp4_of(300_000, 6)
        location = _create(client, len(data), metadata("videos", "p/slow-tus.mp4")).headers["Location"]
        gate = threading.Event()
        direct = GatedBody(data[:100_000], data[100_000:], gate)
        resumable = GatedBody(data[:100_000], data[100_000:], gate)
        results = {}

        def send_direct():
            results["direct"] = app.test_client().post(
                "/api/storage/object/videos/p/slow-direct.mp4", headers=ACME, environ_overrides={
                    "wsgi.input": io.BufferedReader(direct, 64), "CONTENT_LENGTH": str(len(data))}).status_code

        def send_resumable():
            results["tus"] = app.test_client().patch(urlsplit(location).path, headers={
                **ACME, **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
                environ_overrides={"wsgi.input": io.BufferedReader(resumable, 64),
                                   "CONTENT_LENGTH": str(len(data))}).status_code

        threads = [threading.Thread(target=send_direct), threading.Thread(target=send_resumable)]
        for thread in threads:
            thread.start()
        try:
            assert direct.started.wait(10), results
            assert resumable.started.wait(10), results
            # Both pooled connections would be checked out by the two uploads; another request still gets one.
            assert client.get("/api/storage/usage", headers=ACME).status_code == 200
        finally:
            gate.set()
            for thread in threads:
                thread.join(30)
        assert results == {"direct": 201, "tus": 204}
        assert client.get("/api/storage/object/videos/p/slow-tus.mp4", headers=ACME).data == data


def test_a_patch_that_stalled_past_its_lease_stops_without_writing(client, db_conn, monkeypatch):
    monkeypatch.setattr(tus, "PROGRESS_EVERY_SECONDS", 0)  # renew before every chunk, as after a long stall
    data = mp4_of(50_000, 9)
    location = _create(client, len(data), metadata("videos", "p/stalled.mp4")).headers["Location"]
    gate = threading.Event()
    stalled = GatedBody(data[:20_000], b"X" * 30_000, gate)  # its late bytes are not the file's
    result = {}

    def send_stalled():
        result["response"] = client.application.test_client().patch(urlsplit(location).path, headers={
            **ACME, **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            environ_overrides={"wsgi.input": stalled, "CONTENT_LENGTH": str(len(data))})

    thread = threading.Thread(target=send_stalled)
    thread.start()
    try:
        assert stalled.started.wait(10)
        # The stall outlasts the lease: another PATCH takes the upload over and finishes it.
        db_conn.execute("UPDATE storage_uploads SET lease_expires_at = now() - interval '1 second'")
        offset = int(client.head(urlsplit(location).path, headers={**ACME, **TUS}).headers["Upload-Offset"])
        assert _patch(client, location, offset, data[offset:]).status_code == 204
    finally:
        gate.set()
        thread.join(30)
    response = result["response"]
    assert response.status_code == 409 and response.json["error"]["code"] == "lease_lost"
    stored = client.get("/api/storage/object/videos/p/stalled.mp4", headers=ACME)
    assert stored.data == data
    info = client.get("/api/storage/object/info/videos/p/stalled.mp4", headers=ACME).json
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_options_describes_the_server_without_a_session(client):
    response = client.options(ENDPOINT)
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {"creation", "termination", "expiration"}
    assert int(response.headers["Tus-Max-Size"]) == 500 * 1024 * 1024


def test_creation_head_patch_and_termination(client, db_conn):
    assert client.post(ENDPOINT, headers={**ACME, "Upload-Length": "10"}).status_code == 412
    assert _create(client, 10, metadata("temp", "a.bin"), **{"Upload-Length": "ten"}).status_code == 400
    assert _create(client, 10, "bucketName !!!").status_code == 400
    assert _create(client, 10, metadata("temp", "")).status_code == 422
    assert _create(client, 10, metadata("temp", "../escape")).status_code == 422
    assert _create(client, 10, metadata("nope", "a.bin")).status_code == 404
    assert _create(client, 600 * 1024 * 1024, metadata("videos", "huge.mp4")).status_code == 413

    data = b"0123456789" * 1000
    created = _create(client, len(data), metadata("temp", "t/file.bin"))
    assert created.status_code == 201 and created.headers["Tus-Resumable"] == "1.0.0"
    location, expires = created.headers["Location"], created.headers["Upload-Expires"]
    assert location.startswith("http://localhost/api/storage/upload/resumable/") and expires.endswith("GMT")
    # The bytes are reserved against the quota from the start.
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == len(data)

    head = client.head(urlsplit(location).path, headers={**ACME, **TUS})
    assert (head.status_code, head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (200, "0", "10000")
    assert head.headers["Cache-Control"] == "no-store"
    assert client.head(urlsplit(location).path, headers={**GLOBEX, **TUS}).status_code == 404
    assert _patch(client, location, 0, data[:10], headers=GLOBEX).status_code == 404

    wrong_type = _patch(client, location, 0, data[:10], **{"Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415
    assert _patch(client, location, 0, data[:4000]).headers["Upload-Offset"] == "4000"
    mismatch = _patch(client, location, 0, data[:10])
    assert mismatch.status_code == 409 and mismatch.headers["Upload-Offset"] == "4000"
    assert _patch(client, location, 4000, data[4000:] + b"extra").status_code == 413
    assert client.head(urlsplit(location).path, headers={**ACME, **TUS}).headers["Upload-Offset"] == "4000"

    assert client.delete(urlsplit(location).path, headers={**ACME, **TUS}).status_code == 204
    assert client.head(urlsplit(location).path, headers={**ACME, **TUS}).status_code == 404
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 0


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "-1", "1.0", " 1", ""])
def test_tus_integer_headers_that_are_not_plain_digits_are_400(client, value):
    created = _create(client, 10, metadata("temp", "n.bin"))
    assert created.status_code == 201
    refused = _create(client, 10, metadata("temp", "m.bin"), **{"Upload-Length": value})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "bad_tus_header"
    mismatched = _patch(client, created.headers["Location"], 0, b"x", **{"Upload-Offset": value})
    assert mismatched.status_code == 400 and mismatched.json["error"]["code"] == "bad_tus_header"
    assert client.head(urlsplit(created.headers["Location"]).path, headers={**ACME, **TUS}).headers[
        "Upload-Offset"] == "0"


def test_a_finished_upload_is_an_object_and_answers_with_its_id(client):
    data = png(64, 64)
    created = _create(client, len(data), metadata("brand-kits", "logos/mark.png"))
    done = _patch(client, created.headers["Location"], 0, data)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
    info = client.get(f"/api/storage/objects/{done.headers['X-Storage-Object-Id']}", headers=ACME).json
    assert (info["path"], info["content_type"]) == ("logos/mark.png", "image/png")
    assert info["metadata"]["thumbnail"]["path"] == "brand-kits/logos/mark_thumb.jpg"


def test_a_finished_upload_of_an_image_pillow_chokes_on_is_stored_without_a_thumbnail(client):
    data = webp_with_corrupt_exif()
    created = _create(client, len(data), metadata("brand-kits", "logos/odd.webp"))
    done = _patch(client, created.headers["Location"], 0, data)
    assert done.status_code == 204, done.json
    info = client.get(f"/api/storage/objects/{done.headers['X-Storage-Object-Id']}", headers=ACME).json
    assert info["size"] == len(data) and "thumbnail" not in info["metadata"]
    assert client.get("/api/storage/object/brand-kits/logos/odd.webp", headers=ACME).data == data


def test_an_unexpected_error_while_storing_a_finished_upload_ends_it(client, monkeypatch):
    data = b"some text"
    created = _create(client, len(data), metadata("temp", "doomed.txt"))
    monkeypatch.setattr(storage, "hash_file", lambda path: 1 / 0)
    failed = _patch(client, created.headers["Location"], 0, data)
    monkeypatch.undo()
    assert failed.status_code == 500
    # Not stuck behind the finalize lease: the upload is over, its bytes released, and the path free again.
    assert client.head(urlsplit(created.headers["Location"]).path, headers={**ACME, **TUS}).status_code == 404
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 0
    again = _create(client, len(data), metadata("temp", "doomed.txt"))
    assert again.status_code == 201
    assert _patch(client, again.headers["Location"], 0, data).status_code == 204


@pytest.mark.parametrize("bucket, data", [
    ("videos", png(200, 200) + bytes(20_000)),
    ("brand-kits", b"[" * 200_000 + b"]" * 200_000),  # JSON too deep to parse, refused only at the last byte
])
def test_content_the_bucket_refuses_ends_the_upload(client, db_conn, bucket, data):
    created = _create(client, len(data), metadata(bucket, "p/refused"))
    refused = _patch(client, created.headers["Location"], 0, data)
    assert refused.status_code == 415 and refused.json["error"]["code"] == "unsupported_media_type"
    assert client.head(urlsplit(created.headers["Location"]).path, headers={**ACME, **TUS}).status_code == 404
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 0


def test_an_existing_object_needs_upsert_and_a_busy_path_is_409(client):
    client.post("/api/storage/object/temp/x.bin", data=b"first", headers=ACME)
    conflict = _create(client, 6, metadata("temp", "x.bin"))
    assert conflict.status_code == 409 and conflict.json["error"]["code"] == "object_exists"
    replacing = _create(client, 6, metadata("temp", "x.bin"), **{"x-upsert": "true"})
    assert replacing.status_code == 201
    busy = _create(client, 6, metadata("temp", "x.bin", upsert="true"))
    assert busy.status_code == 409 and busy.json["error"]["code"] == "upload_in_progress"
    assert client.delete("/api/storage/object/temp/x.bin", headers=ACME).status_code == 409
    assert _patch(client, replacing.headers["Location"], 0, b"second").status_code == 204
    assert client.get("/api/storage/object/temp/x.bin", headers=ACME).data == b"second"


def test_a_resumable_upload_may_take_the_path_of_an_expired_object(client, db_conn):
    client.post("/api/storage/object/temp/x.bin", data=b"first", headers=ACME)
    db_conn.execute("UPDATE storage_objects SET expires_at = now() - interval '1 second'")
    created = _create(client, 6, metadata("temp", "x.bin"))
    assert created.status_code == 201, created.json
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 6  # first's 5, and 1 more
    assert _patch(client, created.headers["Location"], 0, b"second").status_code == 204
    assert client.get("/api/storage/object/temp/x.bin", headers=ACME).data == b"second"
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 6


def test_expired_and_locked_uploads(client, db_conn):
    created = _create(client, 100, metadata("temp", "slow.bin"))
    path = urlsplit(created.headers["Location"]).path
    db_conn.execute("UPDATE storage_uploads SET lease_expires_at = now() + interval '1 minute'")
    assert _patch(client, created.headers["Location"], 0, b"x").status_code == 423
    db_conn.execute("UPDATE storage_uploads SET lease_expires_at = NULL, expires_at = now() - interval '1 second'")
    assert client.head(path, headers={**ACME, **TUS}).status_code == 410
    assert _patch(client, created.headers["Location"], 0, b"x").status_code == 410


def test_an_empty_file_is_stored_at_creation(client):
    created = _create(client, 0, metadata("temp", "empty.txt"))
    assert created.status_code == 201
    info = client.get("/api/storage/object/info/temp/empty.txt", headers=ACME).json
    assert (info["size"], info["sha256"]) == (0, hashlib.sha256(b"").hexdigest())
    assert _create(client, 0, metadata("videos", "empty.mp4")).status_code == 415


def test_chunks_of_an_admitted_upload_do_not_spend_the_request_rate(database_url, tmp_path, db_conn):
    with running_storage_app(database_url, tmp_path, RATE_LIMIT_ENABLED=True) as app:
        client = app.test_client()
        client.get("/api/storage/usage", headers=ACME)
        db_conn.execute("INSERT INTO plans (id, name, requests_per_minute) VALUES ('test_storage_slow', 'Slow', 3)"
                        " ON CONFLICT (id) DO NOTHING")
        db_conn.execute("UPDATE subscriptions SET plan_id = 'test_storage_slow'")
        created = _create(client, 10, metadata("temp", "slow.bin"))
        assert created.status_code == 201
        statuses = [_patch(client, created.headers["Location"], n, b"x").status_code for n in range(10)]
        assert statuses == [204] * 10
        limited = [client.get("/api/storage/usage", headers=ACME).status_code for _ in range(3)]
        assert 429 in limited


def test_a_project_id_in_the_metadata_is_one_path_segment(client, db_conn):
    created = _create(client, 10, metadata("temp", "a.bin", projectId="p1/p2"))
    assert created.status_code == 422
    assert created.json["error"]["details"]["projectId"] == ["Must be a single path segment."]
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0
