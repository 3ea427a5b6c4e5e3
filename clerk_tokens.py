"""Clerk session tokens: verification and the claims this backend uses. No Flask here.

Clerk signs session tokens with RS256. The key is either the PEM public key from the dashboard (CLERK_JWT_KEY:
verification needs no network) or the JWKS published under the instance's issuer, fetched once, cached, and
fetched again only when a token names a key id the cache does not know (key rotation).
"""
from __future__ import annotations

from dataclasses import dataclass

import jwt

ALGORITHMS = ["RS256"]  # RS256 only: never "none", never an HMAC keyed with the public key


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (safe to show: it never contains the token)."""


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user_id: str  # Clerk's user id, "user_..."
    session_id: str | None
    org_id: str | None  # Clerk's organization id, "org_...", when the session has an active organization
    org_slug: str | None
    org_role: str | None  # normalized: "admin", "member" or a custom "org:<key>"
    email: str | None


def normalize_role(role: str | None) -> str | None:
    """Clerk roles as we store them: org:admin / admin → admin; org:member / basic_member / member → member;
    a custom org:<key> is kept, and a custom key without the prefix (session token v2) gets it."""
    if not role:
        return None
    bare = role.removeprefix("org:")
    if bare == "admin":
        return "admin"
    if bare in ("member", "basic_member"):
        return "member"
    return f"org:{bare}"


class SessionTokenVerifier:
    """Verifies Clerk session tokens: signature, exp/nbf/iat with `leeway` seconds of skew, iss, azp, sts."""

    def __init__(self, *, jwt_key: str | None, issuer: str | None, jwks_url: str | None,
                 authorized_parties: tuple[str, ...] = (), leeway: float = 5,
                 jwks_refresh_cooldown: float = 30) -> None:
        if not jwt_key and not jwks_url:
            raise ValueError("set CLERK_JWT_KEY or CLERK_ISSUER to verify Clerk session tokens")
        self.issuer = issuer
        self.authorized_parties = authorized_parties
        self.leeway = leeway
        self._static_key = jwt.PyJWK.from_dict(_pem_to_jwk(jwt_key)).key if jwt_key else None
        # PyJWKClient caches the key set and refetches it once when asked for an unknown kid, at most once per
        # cooldown period, so tokens with made-up kids cannot make us hammer Clerk.
        self._jwks = None if jwt_key else jwt.PyJWKClient(
            jwks_url, cache_keys=True, lifespan=3600, timeout=5, cooldown_duration=jwks_refresh_cooldown)

    def verify(self, token: str) -> SessionClaims:
        """Return the claims of a valid token. Raises InvalidToken for anything else."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise InvalidToken("token algorithm must be RS256")
            key = self._static_key if self._static_key is not None else self._jwks.get_signing_key(header.get("kid")).key
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, issuer=self.issuer, leeway=self.leeway,
                options={"require": ["exp", "iat", "sub"], "verify_aud": False, "verify_iss": self.issuer is not None},
            )
        except InvalidToken:
            raise
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer is not trusted") from None
        except jwt.PyJWKClientError:
            raise InvalidToken("token signing key is unknown") from None
        except jwt.PyJWTError:
            raise InvalidToken("token is malformed or its signature is invalid") from None
        azp = claims.get("azp")
        if self.authorized_parties and azp is not None and azp not in self.authorized_parties:
            raise InvalidToken("token was issued for another origin")
        if claims.get("sts") == "pending":
            raise InvalidToken("session is pending; finish sign-in first")
        return _claims(claims)


def _claims(claims: dict) -> SessionClaims:
    # Session token v2 nests the organization under "o" (role without the "org:" prefix); v1 uses flat claims.
    org = claims.get("o") if isinstance(claims.get("o"), dict) else {}
    org_id = org.get("id") or claims.get("org_id")
    return SessionClaims(
        user_id=claims["sub"],
        session_id=claims.get("sid"),
        org_id=org_id,
        org_slug=(org.get("slg") or claims.get("org_slug")) if org_id else None,
        org_role=normalize_role(org.get("rol") or claims.get("org_role")) if org_id else None,
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
    )


def _pem_to_jwk(pem: str) -> dict:
    """Clerk's dashboard shows the key as PEM, sometimes pasted with literal \\n; PyJWK wants a JWK."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    public_key = load_pem_public_key(pem.replace("\\n", "\n").strip().encode())
    return {**jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True), "alg": "RS256"}
