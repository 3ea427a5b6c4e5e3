"""Session tokens signed the way Clerk signs them, with the tests' own RSA keys.

Clerk's cloud is outside our machine, so the tests stand in for it: they hold the private key, mint RS256 tokens with
Clerk's claims, and (for JWKS) serve the public keys from a local HTTP server shaped like Clerk's
`/.well-known/jwks.json`.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://clerk.example.test"
AUTHORIZED_PARTY = "https://app.example.test"


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def jwk(self) -> dict:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def token(self, user_id: str = "user_2abc", *, lifetime: int = 60, issued_ago: int = 0, **claims) -> str:
        """A v1-style Clerk session token for `user_id`; keyword claims are added or override (None removes)."""
        now = int(time.time()) - issued_ago
        payload = {"sub": user_id, "iss": ISSUER, "azp": AUTHORIZED_PARTY, "sid": "sess_2xyz", "iat": now,
                   "nbf": now - 5, "exp": now + lifetime}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})


class JwksServer:
    """A stand-in for Clerk's JWKS endpoint on 127.0.0.1; counts how often it is fetched."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.fetches += 1
                body = json.dumps({"keys": [k.jwk for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
