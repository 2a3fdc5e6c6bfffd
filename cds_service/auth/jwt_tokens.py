"""Client-side helpers: make key pairs and mint CDS Hooks client JWTs.

The service itself only *verifies* tokens (``auth/tokens.py``).  These helpers exist
so that a developer (``her2-cds dev-keys``), the test suite and the
``her2-cds invoke`` command can call a secured instance exactly the way an
EHR does: one short-lived, single-use token per call, ``aud`` = the URL called.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def generate_private_key(alg: str = "ES384"):
    """A fresh private key fitting ``alg`` (P-384 for ES384, RSA-2048 for RS*/PS*)."""
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg]())
    if alg[:2] in ("RS", "PS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported algorithm {alg!r}")


def private_key_pem(private_key) -> bytes:
    """PKCS#8 PEM without a passphrase (local development and tests only)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_jwk(private_key, kid: str, alg: str) -> dict:
    """The public half as a JWK with ``kid``, ``alg`` and ``use: sig`` (what a JWK Set publishes)."""
    algo = jwt.get_algorithm_by_name(alg)
    jwk = json.loads(algo.to_jwk(private_key.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def mint_token(private_key_pem: bytes | str, kid: str, iss: str, aud: str | list[str], alg: str = "ES384",
               ttl: int = 300, jku: str | None = None, *, tenant: str | None = None,
               jti: str | None = None, now: float | None = None, extra_claims: dict | None = None) -> str:
    """A signed CDS Hooks 2.0 client JWT.

    ``aud`` must be the exact URL the token is sent to (``…/cds-services`` for
    discovery, ``…/cds-services/<id>`` for a hook call).  Each token carries a
    fresh ``jti`` and can be used once.  ``now``, ``jti`` and ``extra_claims``
    let tests craft expired, future-dated or replayed tokens.
    """
    issued = int(time.time() if now is None else now)
    claims = {"iss": iss, "aud": aud, "exp": issued + ttl, "iat": issued, "jti": jti or uuid.uuid4().hex}
    if tenant is not None:
        claims["tenant"] = tenant
    if extra_claims:
        claims.update(extra_claims)
    headers = {"kid": kid, "typ": "JWT"}
    if jku:
        headers["jku"] = jku
    key = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    return jwt.encode(claims, key, algorithm=alg, headers=headers)
