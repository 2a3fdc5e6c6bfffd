"""Verifying one CDS client JWT: header, token, issuer registry, accepted audiences, replay store → claims.

CDS Hooks 2.0 (Security) has the client sign a short-lived JWT for each call,
discovery included, and send it as ``Authorization: Bearer <JWT>``.  No Flask
in here, so every rule is testable on its own:

* asymmetric algorithms only (``none`` and HMAC are never accepted: with HMAC
  the "public" key would be the secret), and the ``alg`` must fit the key;
* keys only from the issuer's inline JWK Set or ``jwks_url``; a ``jku`` header
  is honoured only when it is that URL or on the issuer's ``jku_allowlist``,
  and anything else is refused *before* any network access;
* ``aud`` must be one of the accepted audiences (the exact URL called, on one
  of the service's configured base URLs — never derived from the request's
  ``Host``, see ``flask_hook.accepted_audiences``); ``exp``/``iat`` are checked
  with a small leeway and ``iat`` may not be older than ``max_age``;
* claims the service reads (``jti``, ``tenant``) must have the right type, so a
  validly signed but odd token is a refusal, never a 500;
* the ``jti`` is remembered in the replay store (the database, shared by all
  workers and instances) only after everything else passed, so unverified
  tokens never reach the table.

Every refusal is an ``AuthError`` whose text is for the log only; the caller
gets one uniform 401 (``flask_hook``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWTError

from .issuers import ALLOWED_ALGORITHMS, Issuer, IssuerRegistry

_CURVE_FOR_ALG = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
MAX_TOKEN_CHARS = 16_384  # a JWT with one signature is far smaller; bounds the work per call
MAX_JTI_CHARS = 256       # the replay table column holds 300
MAX_TENANT_CHARS = 256


class AuthError(Exception):
    """Why a token was refused; logged, never sent to the caller.

    ``hint`` carries the claimed issuer and kid (truncated) for the operator's log.
    """

    def __init__(self, reason: str, hint: dict | None = None):
        super().__init__(reason)
        self.hint = hint or {}


class ReplayUnavailable(Exception):
    """The replay store could not record the ``jti``: the call cannot be authenticated now."""


class ReplayStore(Protocol):
    def remember_jti(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a token id; False when it was seen before (a replay)."""


def bearer_token(header_value: str | None) -> str:
    """The token from ``Authorization: Bearer <token>``."""
    if not header_value:
        raise AuthError("no Authorization header")
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthError("Authorization header is not 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(f"token longer than {MAX_TOKEN_CHARS} characters")
    return token


def _select_key(registry: IssuerRegistry, issuer: Issuer, header: dict) -> PyJWK:
    """Find the verification key, honouring ``jku`` only when allowlisted.

    Order: the inline JWK Set, then the allowlisted ``jku`` (or the configured
    ``jwks_url`` when there is no ``jku``).  An unlisted ``jku`` fails here,
    before anything is fetched.
    """
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("token header has no kid")
    jku = header.get("jku")
    if jku is not None:
        if not isinstance(jku, str) or (jku != issuer.jwks_url and jku not in issuer.jku_allowlist):
            raise AuthError("jku is not on the issuer's allowlist (not fetched)")
    if issuer.jwks is not None:
        for key in issuer.jwks.keys:
            if key.key_id == kid:
                return key
    url = jku or issuer.jwks_url
    if url is None:
        raise AuthError("unknown kid for this issuer")
    try:
        return registry.jwks_client(url).get_signing_key(kid)
    except PyJWKClientConnectionError as exc:
        raise AuthError(f"could not fetch the issuer's JWK Set: {type(exc).__name__}") from None
    except (PyJWKClientError, PyJWTError) as exc:
        raise AuthError(f"unknown kid for this issuer ({type(exc).__name__})") from None


def _check_alg_matches_key(alg: str, key: PyJWK) -> None:
    """The header's ``alg`` must fit the key: its type, its curve, and its own ``alg`` if declared.

    PyJWK guesses RS256 for an RSA key without ``alg``; we verify with the raw
    key instead, so an RS384 client whose JWK Set omits ``alg`` still works,
    and do the fitting checks here.
    """
    jwk_data = getattr(key, "_jwk_data", None) or {}
    declared = jwk_data.get("alg")
    if declared and declared != alg:
        raise AuthError("alg does not match the key's alg")
    public = key.key
    if alg.startswith("ES"):
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != _CURVE_FOR_ALG[alg]:
            raise AuthError("alg does not fit the key (EC curve)")
    elif not isinstance(public, rsa.RSAPublicKey):
        raise AuthError("alg does not fit the key type (RSA expected)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def verify_token(registry: IssuerRegistry, token: str, audiences: Sequence[str], now: float | None = None) -> dict:
    """Verify one CDS client JWT and return its claims, or raise ``AuthError``.

    The replay check is *not* done here (see ``authenticate``).
    """
    now = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except PyJWTError as exc:
        raise AuthError(f"malformed token ({type(exc).__name__})") from None
    if not isinstance(unverified, dict):
        raise AuthError("token payload is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise AuthError(f"alg {str(alg)[:20]!r} is not allowed")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise AuthError("typ is not JWT")
    iss = unverified.get("iss")
    if not isinstance(iss, str) or iss not in registry.issuers:
        raise AuthError("unknown issuer")
    issuer = registry.issuers[iss]
    key = _select_key(registry, issuer, header)
    _check_alg_matches_key(alg, key)
    if not audiences:
        raise AuthError("this service has no accepted audience configured")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=list(audiences),
            issuer=iss,
            leeway=registry.leeway,
            options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_sub": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("token iat/nbf is in the future") from None
    except jwt.InvalidAudienceError:
        raise AuthError(f"aud does not match any accepted audience ({', '.join(audiences)}); "
                        "behind a proxy set HER2CDS_PUBLIC_URL, else HER2CDS_ACCEPTED_AUDIENCES") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"missing claim {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad signature") from None
    except (PyJWTError, ValueError, TypeError) as exc:
        raise AuthError(f"token rejected ({type(exc).__name__})") from None
    _check_times(registry, claims, now)
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise AuthError(f"jti must be a string of 1–{MAX_JTI_CHARS} characters")
    _check_tenant(issuer, claims.get("tenant", None), "tenant" in claims)
    return claims


def _check_tenant(issuer: Issuer, tenant: Any, present: bool) -> None:
    """A ``tenant``, when sent, is a short string; with a ``tenants`` list it must be on it.

    A list or object would otherwise reach a set lookup (unhashable → 500) or the audit.
    """
    if present and (not isinstance(tenant, str) or not tenant or len(tenant) > MAX_TENANT_CHARS):
        raise AuthError(f"tenant claim must be a string of 1–{MAX_TENANT_CHARS} characters, "
                        f"not {type(tenant).__name__}")
    if issuer.tenants is not None and tenant not in issuer.tenants:
        raise AuthError("tenant not allowed for this issuer")


def _check_times(registry: IssuerRegistry, claims: dict, now: float) -> None:
    """``iat`` not in the future and not older than ``max_age``; both numbers.

    PyJWT checks ``exp`` and a future ``iat``; the age limit is ours, because a
    token with a far ``exp`` would otherwise stay usable (and in the replay
    table) for as long as the client chose.
    """
    if not _is_number(claims["exp"]) or not _is_number(claims["iat"]):
        raise AuthError("exp/iat are not numbers")
    if claims["iat"] > now + registry.leeway:
        raise AuthError("iat is in the future")
    if claims["iat"] < now - registry.max_age - registry.leeway:
        raise AuthError(f"iat is older than {registry.max_age} s")


def replay_expiry(registry: IssuerRegistry, claims: dict) -> int:
    """Until when the ``jti`` must be remembered: as long as the token could still pass."""
    usable_until = min(claims["exp"], claims["iat"] + registry.max_age)
    return int(math.ceil(usable_until)) + registry.leeway + 1


def unverified_hint(token: str) -> dict:
    """Issuer and kid of a refused token, truncated, to help the operator; never the token."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        kid = jwt.get_unverified_header(token).get("kid")
    except Exception:  # a hint only; any garbage just means no hint
        return {}
    return {"claimed_iss": str(iss)[:200] if iss is not None else None,
            "kid": str(kid)[:100] if kid is not None else None}


def authenticate(authorization: str | None, registry: IssuerRegistry, audiences: Sequence[str],
                 replay: ReplayStore, now: float | None = None) -> dict:
    """The whole check for one call: the claims of a fresh, valid token.

    Raises ``AuthError`` (refuse with 401) or ``ReplayUnavailable`` (the
    replay store failed: the token cannot be proven fresh, so refuse with 503
    rather than let replay protection silently lapse).
    """
    token = bearer_token(authorization)
    try:
        claims = verify_token(registry, token, audiences, now)
    except AuthError as exc:
        raise AuthError(str(exc), unverified_hint(token)) from None
    try:
        fresh = replay.remember_jti(claims["iss"], claims["jti"], replay_expiry(registry, claims),
                                    int(time.time() if now is None else now))
    except Exception as exc:
        raise ReplayUnavailable(type(exc).__name__) from exc
    if not fresh:
        raise AuthError("jti replayed", {"claimed_iss": claims["iss"][:200]})
    return claims
