"""CDS client authentication: the JWT every CDS Hooks 2.0 call carries.

CDS Hooks 2.0 (Security) has the client sign a short-lived JWT for each call,
discovery included, and send it as ``Authorization: Bearer <JWT>``.  This module
checks it against the issuers the operator trusts (``HER2CDS_TRUSTED_ISSUERS``):

* the issuer file is read once at start-up; a broken file is a ``ConfigError``
  so the service refuses to start instead of rejecting everybody later;
* keys come only from the issuer's configured inline JWK Set or ``jwks_url``
  (one cached ``PyJWKClient`` per URL).  A ``jku`` header is honoured only when
  it is that URL or on the issuer's ``jku_allowlist``; anything else is refused
  *before* any network access, so a token cannot make us fetch arbitrary URLs;
* asymmetric algorithms only (``none`` and HMAC are never accepted: with HMAC
  the "public" key would be the secret);
* ``aud`` must be the exact URL called, ``exp``/``iat`` are checked with a small
  leeway, ``iat`` may not be older than ``jwt_max_age``, and each ``jti`` is
  remembered in the database (shared by all workers and instances) so a
  captured token cannot be replayed.

Every failure is the same 401 for the caller (no hint that helps an attacker
tune a forgery); the specific reason goes to the ``her2cds.auth`` log with the
request id, never with the token.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, current_app, g, request
from jwt import PyJWK, PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWTError

from ..config import ConfigError
from ..errors import ApiError
from ..logs import request_id

log = logging.getLogger("her2cds.auth")

#: Asymmetric signature algorithms a CDS client may use (the spec recommends
#: ES384 and RS384).  Never ``none`` and never ``HS*``.
ALLOWED_ALGORITHMS = (
    "ES256", "ES384", "ES512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
)
_CURVE_FOR_ALG = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}

#: Routes that need a token.  Probes, the SMART app and CORS preflight do not.
PROTECTED_PREFIX = "/cds-services"

REALM = "her2-cds"
WWW_AUTHENTICATE = f'Bearer realm="{REALM}"'
JWKS_FETCH_TIMEOUT = 2.0
MAX_TOKEN_CHARS = 16_384  # a JWT with one signature is far smaller; bounds the work per call
MAX_JTI_CHARS = 256       # the replay table column holds 300
MAX_ISSUER_CHARS = 300    # the replay table column
_ISSUER_MEMBERS = {"jwks_url", "jwks", "tenants", "jku_allowlist", "description"}


class AuthError(Exception):
    """Why a token was refused; logged, never sent to the caller."""


@dataclass
class Issuer:
    """One trusted CDS client as configured in the issuer file."""

    iss: str
    jwks: PyJWKSet | None = None
    jwks_url: str | None = None
    tenants: frozenset[str] | None = None
    jku_allowlist: frozenset[str] = frozenset()


@dataclass
class Authenticator:
    """The loaded issuer table plus the per-URL JWKS clients (thread-safe)."""

    issuers: dict[str, Issuer]
    leeway: int = 30
    max_age: int = 600
    _clients: dict[str, PyJWKClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def jwks_client(self, url: str) -> PyJWKClient:
        """One cached client per URL, so keys are fetched once per 5 minutes, not per call."""
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = PyJWKClient(url, cache_jwk_set=True, lifespan=300, timeout=JWKS_FETCH_TIMEOUT)
                self._clients[url] = client
            return client


# --------------------------------------------------------------------------
# Issuer file
# --------------------------------------------------------------------------

def _is_allowed_url(url: Any) -> bool:
    """https everywhere; plain http only to this machine (local tests, dev tools)."""
    if not isinstance(url, str) or not url:
        return False
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.netloc:
        return True
    return parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1")


def _parse_inline_jwks(where: str, value: Any) -> PyJWKSet:
    """An inline JWK Set: public asymmetric keys only.

    A private key (``d``) or a symmetric key (``oct``) in the issuer file is a
    mistake that must stop start-up, not be silently used.
    """
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise ConfigError(f"{where}.jwks must be a JWK Set: an object with a non-empty \"keys\" list")
    for i, key in enumerate(value["keys"]):
        if not isinstance(key, dict):
            raise ConfigError(f"{where}.jwks.keys[{i}] is not a JSON object")
        if key.get("kty") not in ("EC", "RSA"):
            raise ConfigError(f"{where}.jwks.keys[{i}]: kty must be EC or RSA (asymmetric keys only)")
        if "d" in key or "p" in key:
            raise ConfigError(f"{where}.jwks.keys[{i}] contains PRIVATE key material; "
                              "the issuer file must hold public keys only")
        if not key.get("kid"):
            raise ConfigError(f"{where}.jwks.keys[{i}] has no \"kid\"; CDS Hooks tokens name their key by kid")
        if "alg" in key and key["alg"] not in ALLOWED_ALGORITHMS:
            raise ConfigError(f"{where}.jwks.keys[{i}]: alg {key['alg']!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}")
        try:
            PyJWK(key)
        except PyJWTError as exc:
            raise ConfigError(f"{where}.jwks.keys[{i}] is not a usable key: {exc}") from None
    return PyJWKSet.from_dict(value)


def _parse_issuer(where: str, iss: str, entry: Any) -> Issuer:
    """Check one issuer entry member by member so a typo (``jwks_uri``) is reported, not ignored."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object with \"jwks_url\" or \"jwks\"")
    unknown = sorted(set(entry) - _ISSUER_MEMBERS)
    if unknown:
        raise ConfigError(f"{where} has unknown member(s) {unknown}; allowed: {sorted(_ISSUER_MEMBERS)}")
    if "jwks_url" not in entry and "jwks" not in entry:
        raise ConfigError(f"{where} needs \"jwks_url\" or an inline \"jwks\"")
    issuer = Issuer(iss=iss)
    if "jwks_url" in entry:
        if not _is_allowed_url(entry["jwks_url"]):
            raise ConfigError(f"{where}.jwks_url must be an https URL (http only for localhost)")
        issuer.jwks_url = entry["jwks_url"]
    if "jwks" in entry:
        issuer.jwks = _parse_inline_jwks(where, entry["jwks"])
    if "tenants" in entry:
        tenants = entry["tenants"]
        if not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) and t for t in tenants):
            raise ConfigError(f"{where}.tenants must be a non-empty list of strings")
        issuer.tenants = frozenset(tenants)
    if "jku_allowlist" in entry:
        urls = entry["jku_allowlist"]
        if not isinstance(urls, list) or not all(_is_allowed_url(u) for u in urls):
            raise ConfigError(f"{where}.jku_allowlist must be a list of https URLs")
        issuer.jku_allowlist = frozenset(urls)
    return issuer


def load_issuer_file(path: str | Path) -> dict[str, Issuer]:
    """Read one issuer file: ``{"<iss>": {"jwks_url": …} | {"jwks": {…}}, …}``.

    A top-level ``"$comment"`` member is ignored so example files can explain themselves.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"HER2CDS_TRUSTED_ISSUERS: file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"HER2CDS_TRUSTED_ISSUERS: cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"HER2CDS_TRUSTED_ISSUERS: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"HER2CDS_TRUSTED_ISSUERS: {path} must hold a JSON object mapping issuer -> keys")
    issuers: dict[str, Issuer] = {}
    for iss, entry in data.items():
        if iss == "$comment":
            continue
        where = f"{path}: issuer {iss!r}"
        if not iss or len(iss) > MAX_ISSUER_CHARS:
            raise ConfigError(f"{where}: an issuer must be 1–{MAX_ISSUER_CHARS} characters")
        issuers[iss] = _parse_issuer(where, iss, entry)
    if not issuers:
        raise ConfigError(f"HER2CDS_TRUSTED_ISSUERS: {path} lists no issuers")
    return issuers


def load_trusted_issuers(spec: str) -> dict[str, Issuer]:
    """Load every file named in ``spec`` (several joined by ``os.pathsep``).

    Several files let an operator add the opt-in sandbox file next to their own
    without copying keys around.  The same issuer in two files is ambiguous
    and therefore an error.
    """
    issuers: dict[str, Issuer] = {}
    for part in (p.strip() for p in spec.split(os.pathsep)):
        if not part:
            continue
        for iss, issuer in load_issuer_file(part).items():
            if iss in issuers:
                raise ConfigError(f"HER2CDS_TRUSTED_ISSUERS: issuer {iss!r} is configured in more than one file")
            issuers[iss] = issuer
    return issuers


# --------------------------------------------------------------------------
# Token verification (no Flask in here, so it is testable on its own)
# --------------------------------------------------------------------------

def _bearer_token(header_value: str | None) -> str:
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


def _select_key(auth: Authenticator, issuer: Issuer, header: dict) -> PyJWK:
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
        return auth.jwks_client(url).get_signing_key(kid)
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


def verify_token(auth: Authenticator, token: str, audience: str, now: float | None = None) -> dict:
    """Verify one CDS client JWT and return its claims, or raise ``AuthError``.

    The replay check is *not* done here (it needs the database); the caller
    does it after this succeeded, so unverified tokens never reach the table.
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
    if not isinstance(iss, str) or iss not in auth.issuers:
        raise AuthError("unknown issuer")
    issuer = auth.issuers[iss]
    key = _select_key(auth, issuer, header)
    _check_alg_matches_key(alg, key)
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=audience,
            issuer=iss,
            leeway=auth.leeway,
            options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_sub": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("token iat/nbf is in the future") from None
    except jwt.InvalidAudienceError:
        raise AuthError(f"aud does not match {audience}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"missing claim {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad signature") from None
    except (PyJWTError, ValueError, TypeError) as exc:
        raise AuthError(f"token rejected ({type(exc).__name__})") from None
    _check_times(auth, claims, now)
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise AuthError(f"jti must be a string of 1–{MAX_JTI_CHARS} characters")
    tenant = claims.get("tenant")
    if issuer.tenants is not None and tenant not in issuer.tenants:
        raise AuthError("tenant not allowed for this issuer")
    return claims


def _check_times(auth: Authenticator, claims: dict, now: float) -> None:
    """``iat`` not in the future and not older than ``max_age``; both numbers.

    PyJWT checks ``exp`` and a future ``iat``; the age limit is ours, because a
    token with a far ``exp`` would otherwise stay usable (and in the replay
    table) for as long as the client chose.
    """
    if not _is_number(claims["exp"]) or not _is_number(claims["iat"]):
        raise AuthError("exp/iat are not numbers")
    if claims["iat"] > now + auth.leeway:
        raise AuthError("iat is in the future")
    if claims["iat"] < now - auth.max_age - auth.leeway:
        raise AuthError(f"iat is older than {auth.max_age} s")


def replay_expiry(auth: Authenticator, claims: dict) -> int:
    """Until when the ``jti`` must be remembered: as long as the token could still pass."""
    usable_until = min(claims["exp"], claims["iat"] + auth.max_age)
    return int(math.ceil(usable_until)) + auth.leeway + 1


# --------------------------------------------------------------------------
# Flask wiring
# --------------------------------------------------------------------------

def expected_audience(settings) -> str:
    """The ``aud`` a token must carry: the exact URL called (CDS Hooks 2.0).

    Behind a proxy the service cannot see its public URL, so
    ``HER2CDS_PUBLIC_URL`` supplies the base; otherwise the request's own URL.
    """
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.path
    return request.url_root.rstrip("/") + request.path


def _needs_auth(path: str, method: str) -> bool:
    if method == "OPTIONS":
        return False
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def _unauthorized() -> ApiError:
    return ApiError(401, "Authentication required", code="login",
                    headers={"WWW-Authenticate": WWW_AUTHENTICATE})


def _request_id() -> str:
    return request_id()


def _reject(reason: str, claims_hint: dict | None = None) -> ApiError:
    """Log why (without the token) and build the uniform 401."""
    extra = {"request_id": _request_id(), "path": request.path, "reason": reason}
    if claims_hint:
        extra.update(claims_hint)
    log.warning("client JWT rejected: %s", reason, extra=extra)
    return _unauthorized()


def _unverified_hint(token: str) -> dict:
    """Issuer and kid of a refused token, truncated, to help the operator; never the token."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        kid = jwt.get_unverified_header(token).get("kid")
    except Exception:  # a hint only; any garbage just means no hint
        return {}
    return {"claimed_iss": str(iss)[:200] if iss is not None else None,
            "kid": str(kid)[:100] if kid is not None else None}


def check_request() -> None:
    """``before_request``: authenticate calls to ``/cds-services…``; store the client on ``g.client``.

    ``g.client`` is ``{"iss", "tenant", "sub"}`` for an authenticated call and
    ``None`` when authentication is disabled or the route is public.
    """
    g.client = None
    settings = current_app.config["SETTINGS"]
    if not settings.auth_enabled or not _needs_auth(request.path, request.method):
        return
    authenticator: Authenticator = current_app.extensions["her2cds.auth"]
    try:
        token = _bearer_token(request.headers.get("Authorization"))
    except AuthError as exc:
        raise _reject(str(exc)) from None
    try:
        claims = verify_token(authenticator, token, expected_audience(settings))
    except AuthError as exc:
        raise _reject(str(exc), _unverified_hint(token)) from None
    store = current_app.extensions["her2cds.store"]
    try:
        fresh = store.remember_jti(claims["iss"], claims["jti"], replay_expiry(authenticator, claims), int(time.time()))
    except Exception:
        log.exception("replay cache unavailable", extra={"request_id": _request_id()})
        raise ApiError(503, "Authentication is temporarily unavailable; try again.", code="transient") from None
    if not fresh:
        raise _reject("jti replayed", {"claimed_iss": claims["iss"][:200]})
    g.client = {"iss": claims["iss"], "tenant": claims.get("tenant"), "sub": claims.get("sub")}


def init_auth(app: Flask) -> None:
    """Load the trusted issuers once and install the check on the CDS Hooks routes.

    Called by ``create_app``.  A broken issuer file raises ``ConfigError``
    (start-up fails loudly).  With ``HER2CDS_AUTH=disabled`` a warning is
    logged on every start and discovery says so in ``usageRequirements``.
    """
    settings = app.config["SETTINGS"]
    if settings.auth_enabled:
        issuers = load_trusted_issuers(settings.trusted_issuers) if settings.trusted_issuers else {}
        if not issuers:
            log.error("No trusted JWT issuers configured (HER2CDS_TRUSTED_ISSUERS is unset): every call to "
                      "/cds-services will get 401. Configure an issuer file, or run `her2-cds dev-keys init` "
                      "for local use.")
        else:
            log.info("JWT authentication required; trusted issuers: %s", ", ".join(sorted(issuers)))
        app.extensions["her2cds.auth"] = Authenticator(
            issuers=issuers, leeway=settings.jwt_leeway, max_age=settings.jwt_max_age)
    else:
        log.warning("AUTHENTICATION DISABLED (HER2CDS_AUTH=disabled): any caller can invoke this service. "
                    "Use only on a workstation with synthetic data.")
    app.before_request(check_request)


def auth_notice(settings) -> str:
    """The sentence discovery's ``usageRequirements`` carries about authentication."""
    if settings.auth_enabled:
        return ("Every call, discovery included, must carry a CDS Hooks client JWT "
                "(Authorization: Bearer <JWT>, ES384 or RS384) from a trusted issuer.")
    return ("WARNING: authentication is DISABLED on this instance (HER2CDS_AUTH=disabled); "
            "for local testing with synthetic data only.")
