"""The pure parts of storage: path cleaning, naming conventions, content sniffing and link signatures."""
from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from errors import Forbidden
from storage import human_bytes, paths, quota_report, signing, sniff
from storage.backends import content_disposition


@pytest.mark.parametrize("raw", [
    "", "../x", "a/../b", "a/./b", "/abs", "a\\b", "a\x00b", "a\x1fb", "a\x7fb", "a/", "a//b", "C:/x",
    ".sheetbrain-backup/x", "a/" + "x" * 256,
])
def test_unsafe_paths_are_refused(raw):
    with pytest.raises(ValidationError):
        paths.clean_path(raw)


@pytest.mark.parametrize("raw, clean", [
    ("proj_1/source/1700000000_intro.mp4", "proj_1/source/1700000000_intro.mp4"),
    ("Café/naïve résumé.pdf", "Cafe/naive resume.pdf"),
    ("a  b/c<d>|e?.txt", "a b/c_d__e_.txt"),
    ("100%/x.txt", "100_/x.txt"),
    ("..hidden/x", "..hidden/x"),  # a name that starts with dots is not a traversal
])
def test_paths_are_sanitised_into_supabase_safe_keys(raw, clean):
    assert paths.clean_path(raw) == clean


@given(st.text(max_size=80))
def test_a_clean_path_never_leaves_its_folder(raw):
    try:
        cleaned = paths.clean_path(raw)
    except ValidationError:
        return
    segments = cleaned.split("/")
    assert not cleaned.startswith("/") and "\\" not in cleaned
    assert all(s not in ("", ".", "..") for s in segments)
    assert all(ch.isprintable() and ord(ch) < 128 for ch in cleaned)
    assert paths.clean_path(cleaned) == cleaned  # idempotent: a stored path names itself


def test_prefixes_keep_their_folder_slash_and_refuse_traversal():
    assert paths.clean_prefix("proj 1/") == "proj 1/"
    assert paths.clean_prefix("") == paths.clean_prefix("/") == ""
    with pytest.raises(ValidationError):
        paths.clean_prefix("../")


def test_keys_split_back_into_organization_and_path():
    key = paths.object_key("4c1f6a59-83f0-4a39-9f5a-2d7a1b7e0c11", "p/a.mp4")
    assert paths.split_key(key) == (paths.split_key(key)[0], "p/a.mp4")
    for bad in ("not-a-uuid/x", "4c1f6a59-83f0-4a39-9f5a-2d7a1b7e0c11", "4C1F6A59-83F0-4A39-9F5A-2D7A1B7E0C11/x"):
        with pytest.raises(ValueError):
            paths.split_key(bad)


def test_the_seed_naming_conventions():
    assert paths.source_video_path("p1", "../My Clip.mp4", 1700000000000) == "p1/source/1700000000000_My Clip.mp4"
    assert paths.processed_clip_path("p1", "c9", "vertical") == "p1/processed/c9_vertical.mp4"
    assert paths.thumbnail_path("p1", "c9") == "p1/c9_thumb.jpg"
    assert paths.brand_kit_path("fonts", "Inter Bold.ttf") == "fonts/Inter Bold.ttf"
    with pytest.raises(ValidationError):
        paths.brand_kit_path("secrets", "x")
    with pytest.raises(ValidationError):
        paths.thumbnail_path("p1/../p2", "c9")


@pytest.mark.parametrize("name, expected", [
    ("clip.mp4", "clip.mp4"), ("../../etc/passwd", "passwd"), ("a\\b.txt", "b.txt"), ('x"\r\n.mp4', "x_.mp4"),
    ("", "file"), ("...", "file"), ("é" * 300 + ".mp4", "e" * 196 + ".mp4"),
])
def test_download_names_are_made_safe(name, expected):
    assert paths.safe_filename(name) == expected


def test_content_disposition_offers_both_forms():
    assert content_disposition("a b.mp4", attachment=True) == (
        "attachment; filename=\"a b.mp4\"; filename*=UTF-8''a%20b.mp4")


@pytest.mark.parametrize("head, expected", [
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64), "video/mp4"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"),
    (b"\xff\xd8\xff\xe0" + bytes(64), "image/jpeg"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(64), "image/webp"),
    (b"wOFF" + bytes(40), "font/woff"),
    (b"\x00\x01\x00\x00\x00\x10\x01\x00" + bytes(40), "font/ttf"),
    (b"OTTO" + bytes(40), "font/otf"),
    (b'\xef\xbb\xbf  {"a": 1}', "application/json"),
    (b"true", "text/plain"),  # a bare JSON scalar is text; brand-kit JSON is an object or an array
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "text/plain"),
    (b"<!doctype html><script>alert(1)</script>", "text/plain"),
    (b"caf\xc3", "text/plain"),  # a multi-byte character cut off by the end of the head
    (b"\x00\x01\x02\x03", "application/octet-stream"),
])
def test_sniffing(head, expected):
    assert sniff.sniff(head) == expected


@pytest.mark.parametrize("content_type, allowed, ok", [
    ("video/mp4", ["video/*"], True), ("image/png", ["video/*"], False), ("font/woff2", ["font/*"], True),
    ("image/gif", ["image/jpeg", "image/png"], False), ("anything/at-all", None, True),
    ("application/json", ["image/*", "application/json"], True), ("videox/mp4", ["video/*"], False),
])
def test_bucket_type_rules(content_type, allowed, ok):
    assert sniff.is_allowed(content_type, allowed) is ok


@given(bucket=st.sampled_from(["videos", "temp"]), key=st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k),
       other=st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k), ttl=st.integers(1, 10**6))
def test_a_signature_is_bound_to_its_bucket_key_and_expiry(bucket, key, other, ttl):
    expires = int(time.time()) + ttl
    token = signing.token("secret", bucket, key, expires)
    assert signing.verify("secret", bucket, key, str(expires), token) == expires
    forgeries = [("secret", "brand-kits", key, expires), ("secret", bucket, key, expires + 1),
                 ("other-secret", bucket, key, expires)]
    if other != key:
        forgeries.append(("secret", bucket, other, expires))
    for secret, b, k, e in forgeries:
        with pytest.raises(Forbidden):
            signing.verify(secret, b, k, str(e), token)


def test_expired_and_malformed_links_are_refused():
    token = signing.token("s", "videos", "k", 100)
    with pytest.raises(Forbidden, match="expired"):
        signing.verify("s", "videos", "k", "100", token, now=101)
    for expires, signature in ((None, token), ("100", None), ("-5", token), ("1e9", token)):
        with pytest.raises(Forbidden):
            signing.verify("s", "videos", "k", expires, signature, now=0)


def test_quota_reports_warn_from_80_percent():
    assert quota_report(799, 1000)["warning"] is None
    assert "80% full" in quota_report(800, 1000)["warning"]
    assert quota_report(10**12, None) == {"used_bytes": 10**12, "limit_bytes": None, "percent": None,
                                         "warning": None}
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 bytes", "1023 bytes", "1.5 KB", "5 GB"]
