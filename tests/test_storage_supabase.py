"""The Supabase backend, through the official client, against tests/supabase_standin.py: a local stand-in that
speaks Supabase Storage's HTTP API, because Supabase's cloud is outside the test machine."""
from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from errors import Conflict
from queries import q
from tests import pg
from tests.supabase_standin import SupabaseStandIn
from tests.test_storage import ACME, GLOBEX, mp4_of, org_id, png, running_storage_app, upload
from tests.test_storage_tus import _create, _patch, metadata


@pytest.fixture
def standin():
    server = SupabaseStandIn()
    yield server
    server.close()


@contextmanager
def running_supabase_app(database_url, tmp_path, standin, service_key: str | None = None):
    """An app whose objects live in the stand-in; afterwards its HTTP session is closed and every table emptied."""
    with running_storage_app(database_url, tmp_path, STORAGE_BACKEND="supabase", SUPABASE_URL=standin.url,
                             SUPABASE_SERVICE_ROLE_KEY=service_key or standin.service_key) as app:
        try:
            yield app
        finally:
            app.extensions["storage"].client.session.close()


@pytest.fixture
def supabase_app(database_url, tmp_path, standin):
    with running_supabase_app(database_url, tmp_path, standin) as app:
        assert app.test_cli_runner().invoke(args=["storage", "sync-buckets"]).exit_code == 0
        yield app


@pytest.fixture
def client(supabase_app):
    return supabase_app.test_client()


def test_sync_buckets_creates_then_updates_them_with_our_limits(supabase_app, standin):
    assert standin.buckets["videos"]["file_size_limit"] == 500 * 1024 * 1024
    assert standin.buckets["videos"]["allowed_mime_types"] == ["video/*"]
    assert standin.buckets["thumbnails"]["public"] is True
    assert standin.buckets["temp"]["allowed_mime_types"] is None
    standin.buckets["brand-kits"]["file_size_limit"] = 1
    result = supabase_app.test_cli_runner().invoke(args=["storage", "sync-buckets"])
    assert {tuple(line.split()) for line in result.output.splitlines()} == {
        ("brand-kits", "updated"), ("videos", "unchanged"), ("thumbnails", "unchanged"), ("temp", "unchanged")}
    assert standin.buckets["brand-kits"]["file_size_limit"] == 10 * 1024 * 1024


def test_upload_sends_the_sniffed_type_and_serving_redirects_to_a_signed_url(client, standin, db_conn):
    data = mp4_of(200_000, 3)
    created = upload(client, "videos", "p/source/1_a.mp4", data, content_type="text/plain")
    assert created.status_code == 201, created.json
    key = f"{org_id(db_conn)}/p/source/1_a.mp4"
    stored = standin.objects[("videos", key)]
    assert stored["data"] == data and stored["content_type"] == "video/mp4"

    served = client.get("/api/storage/object/videos/p/source/1_a.mp4?download=a.mp4", headers=ACME)
    assert served.status_code == 302 and served.headers["Cache-Control"] == "private, no-store"
    location = served.headers["Location"]
    assert location.startswith(f"{standin.url}/storage/v1/object/sign/videos/{key}?token=")
    fetched = httpx.get(location)
    assert fetched.content == data and fetched.headers["Content-Disposition"].startswith("attachment")

    link = client.post("/api/storage/object/sign/videos/p/source/1_a.mp4", headers=ACME).json["signed_url"]
    via_ours = client.get(f"{urlsplit(link).path}?{urlsplit(link).query}")
    assert via_ours.status_code == 302 and httpx.get(via_ours.headers["Location"]).content == data
    assert client.get("/api/storage/object/videos/p/source/1_a.mp4", headers=GLOBEX).status_code == 404


def test_public_objects_redirect_to_the_public_url(client, standin):
    created = upload(client, "thumbnails", "p/c_thumb.png", png()).json["object"]
    link = urlsplit(created["public_url"])
    served = client.get(f"{link.path}?{link.query}")
    assert served.status_code == 302
    assert served.headers["Location"] == f"{standin.url}/storage/v1/object/public/thumbnails/{created['key']}"
    assert httpx.get(served.headers["Location"]).content == png()


def test_replacing_and_deleting_reach_supabase(client, standin, db_conn):
    path = "p/x.mp4"
    upload(client, "videos", path, mp4_of(5000, 1))
    key = f"{org_id(db_conn)}/{path}"
    assert upload(client, "videos", path, mp4_of(5000, 2)).status_code == 409
    assert upload(client, "videos", f"{path}?upsert=true", mp4_of(6000, 2)).status_code == 200
    assert standin.object_data("videos", key) == mp4_of(6000, 2)
    assert not [k for (_b, k) in standin.objects if ".sheetbrain-backup" in k]  # the kept version is dropped
    upload(client, "videos", "p/y.mp4", mp4_of(5000, 3))
    many = client.delete("/api/storage/object/videos", json={"prefixes": [path, "p/y.mp4"]}, headers=ACME)
    assert many.json["deleted"] == 2
    assert standin.objects == {}
    assert ("DELETE", "/storage/v1/object/videos") in standin.requests


def test_an_upload_replaces_an_expired_object_in_supabase(client, standin, db_conn):
    upload(client, "temp", "x.bin", b"old")
    db_conn.execute("UPDATE storage_objects SET expires_at = now() - interval '1 second'")
    assert client.get("/api/storage/object/info/temp/x.bin", headers=ACME).status_code == 404
    assert upload(client, "temp", "x.bin", b"new!").status_code == 201
    assert standin.object_data("temp", f"{org_id(db_conn)}/x.bin") == b"new!"
    assert sorted(k for (_b, k) in standin.objects) == [f"{org_id(db_conn)}/x.bin"]  # no backup left
    assert client.get("/api/storage/usage", headers=ACME).json["used_bytes"] == 4


def test_a_failed_commit_restores_the_previous_version_in_supabase(client, standin, db_conn, monkeypatch):
    upload(client, "temp", "keep.bin", b"version one")
    key = f"{org_id(db_conn)}/keep.bin"
    # The commit step fails (whichever status the app gives that): the write must leave nothing behind.
    monkeypatch.setattr(q.storage, "complete_storage_write", "SELECT 1 / 0 AS object_id")
    assert upload(client, "temp", "keep.bin?upsert=true", b"version two").status_code not in (200, 201)
    assert upload(client, "temp", "new.bin", b"new").status_code not in (200, 201)
    assert standin.object_data("temp", key) == b"version one"
    assert sorted(k for (_b, k) in standin.objects) == [key]


def test_a_placement_that_may_not_replace_never_overwrites_in_supabase(supabase_app, standin, tmp_path):
    backend = supabase_app.extensions["storage"]
    key = "4c1f6a59-83f0-4a39-9f5a-2d7a1b7e0c11/a.bin"
    for data in (b"first", b"second"):
        (tmp_path / "body").write_bytes(data)
        if data == b"first":
            backend.place("temp", key, tmp_path / "body", "text/plain", replace=False, token="t1")
        else:
            with pytest.raises(Conflict):
                backend.place("temp", key, tmp_path / "body", "text/plain", replace=False, token="t2")
    assert standin.object_data("temp", key) == b"first"


@pytest.mark.parametrize("first, second", [("a", "a/b"), ("a/b", "a")])
def test_a_path_cannot_be_both_a_file_and_a_folder_in_supabase_either(client, standin, first, second):
    # Supabase would take both keys; the local disk cannot. Both backends refuse the second alike.
    assert upload(client, "temp", first, b"first").status_code == 201
    clash = upload(client, "temp", second, b"second")
    assert clash.status_code == 409 and clash.json["error"]["code"] == "path_clash"
    assert [k.split("/", 1)[1] for (_b, k) in standin.objects] == [first]
    tus = _create(client, 6, metadata("temp", second))
    assert tus.status_code == 409 and tus.json["error"]["code"] == "path_clash"


@pytest.mark.parametrize("status, expected, code", [
    (413, 413, "payload_too_large"), (415, 415, "unsupported_media_type"), (500, 503, "storage_unavailable"),
    (403, 503, "storage_unavailable"),
])
def test_supabase_errors_arrive_as_400_and_are_mapped_to_ours(client, standin, db_conn, status, expected, code):
    standin.fail_next("POST", "object/temp/", status)
    response = upload(client, "temp", "f.bin", b"data")
    assert response.status_code == expected and response.json["error"]["code"] == code
    assert db_conn.execute("SELECT count(*) AS n FROM storage_objects").fetchone()["n"] == 0
    assert db_conn.execute("SELECT count(*) AS n FROM storage_uploads").fetchone()["n"] == 0


def test_a_wrong_service_key_is_a_503_not_a_500(database_url, tmp_path, standin):
    with running_supabase_app(database_url, tmp_path, standin, service_key="wrong") as app:
        assert app.test_cli_runner().invoke(args=["storage", "sync-buckets"]).exit_code != 0
        standin.buckets["temp"] = {"id": "temp", "public": False, "file_size_limit": None, "allowed_mime_types": None}
        response = upload(app.test_client(), "temp", "f.bin", b"data")
        assert response.status_code == 503 and response.json["error"]["code"] == "storage_unavailable"


def test_a_tus_upload_lands_in_supabase(client, standin, db_conn):
    data = mp4_of(50_000, 4)
    created = _create(client, len(data), metadata("videos", "p/source/2_t.mp4"))
    location = created.headers["Location"]
    assert _patch(client, location, 0, data[:20_000]).headers["Upload-Offset"] == "20000"
    assert _patch(client, location, 20_000, data[20_000:]).status_code == 204
    assert standin.object_data("videos", f"{org_id(db_conn)}/p/source/2_t.mp4") == data
    info = client.get("/api/storage/object/info/videos/p/source/2_t.mp4", headers=ACME).json
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_reconcile_and_maintenance_work_against_supabase(client, supabase_app, standin, db_conn, database_url):
    upload(client, "temp", "good.bin", b"good")
    upload(client, "temp", "lost.bin", b"lost")
    upload(client, "temp", "old.bin", b"old")
    organization = org_id(db_conn)
    del standin.objects[("temp", f"{organization}/lost.bin")]
    standin.objects[("temp", f"{organization}/stray/x.bin")] = {
        "id": "stray", "data": b"stray", "content_type": "text/plain", "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z", "mtime": time.time() - 7200}
    result = supabase_app.test_cli_runner().invoke(args=["storage", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "object_without_metadata" in result.output and "metadata_without_object" in result.output
    assert ("temp", f"{organization}/stray/x.bin") not in standin.objects
    assert client.get("/api/storage/object/info/temp/lost.bin", headers=ACME).status_code == 404

    db_conn.execute("UPDATE storage_objects SET expires_at = now() - interval '1 minute' WHERE path = 'old.bin'")
    from storage.maintenance import delete_expired_temp_objects

    with supabase_app.app_context(), pg.connect(database_url) as conn, conn.transaction():
        summary = delete_expired_temp_objects(conn)
    assert summary.startswith("deleted 1 expired objects")
    assert sorted(k for (_b, k) in standin.objects) == [f"{organization}/good.bin"]
    assert not any(Path(supabase_app.config["STORAGE_LOCAL_DIR"], "staging").iterdir())
