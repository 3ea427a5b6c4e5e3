"""Signed download links: an HMAC over the bucket, the object key and the expiry time.

The token is HMAC-SHA256, keyed with a key derived from SECRET_KEY for this purpose only, over
`bucket NUL key NUL expires`. Keys never contain NUL (paths refuse control characters), so no two different links
sign the same message: a token is useless for another bucket, another key or another expiry. The `download` file
name is not signed; changing it only changes the name the browser saves under.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from urllib.parse import quote, urlencode

from errors import Forbidden

MAX_TTL_SECONDS = 7 * 24 * 3600
_EXPIRES = re.compile(r"[0-9]{1,19}")
_PURPOSE = b"sheetbrain storage signed urls v1"


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def token(secret: str, bucket: str, key: str, expires: int) -> str:
    """The signature of a link to `bucket`/`key` valid until the Unix time `expires`."""
    message = b"\x00".join([bucket.encode(), key.encode(), str(int(expires)).encode()])
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(secret: str, bucket: str, key: str, ttl_seconds: int, *, download: str | None = None,
                now: float | None = None) -> tuple[str, int]:
    """(path and query of the signed link, its expiry as a Unix time) for `ttl_seconds` from now."""
    expires = int(now if now is not None else time.time()) + int(ttl_seconds)
    query = {"expires": expires, "token": token(secret, bucket, key, expires)}
    if download is not None:
        query["download"] = download
    return f"/api/storage/signed/{quote(bucket)}/{quote(key)}?{urlencode(query)}", expires


def verify(secret: str, bucket: str, key: str, expires: str | None, signature: str | None,
           now: float | None = None) -> int:
    """The expiry of a valid link. Raises Forbidden (403) when the link is malformed, tampered with or expired."""
    # ASCII digits only, and few enough for int(): str.isdigit() also passes '²' and 5000-digit strings.
    if not expires or not signature or not _EXPIRES.fullmatch(expires):
        raise Forbidden("This link is not valid.", code="invalid_signature")
    expected = token(secret, bucket, key, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Forbidden("This link is not valid.", code="invalid_signature")
    if int(expires) < (now if now is not None else time.time()):
        raise Forbidden("This link has expired; ask for a new one.", code="link_expired")
    return int(expires)
