"""The Flask side of authentication: which routes need a token, which audiences count, what the caller sees.

``init_auth`` loads the trusted issuers once and installs ``check_request``
before every request; ``check_request`` hands the ``Authorization`` header to
``tokens.authenticate`` and turns its verdict into ``g.client`` or an HTTP
error.  Every refusal is the same bare 401 (no hint that helps an attacker
tune a forgery); the specific reason goes to the ``her2cds.auth`` log with the
request id, never with the token.

**Audiences are configuration, not the request.**  The ``aud`` a token must
carry is the exact URL called; the service's base URL comes from
``HER2CDS_PUBLIC_URL`` (behind a proxy), ``HER2CDS_ACCEPTED_AUDIENCES`` and the
address ``her2-cds serve`` binds to — never from the request's ``Host`` header,
which the caller controls (a token minted for another vendor's service would
otherwise be accepted here when sent with that vendor's ``Host``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request

from ..config import ConfigError
from ..errors import ApiError
from ..fhir.egress import EgressPolicy, comma_list
from ..logs import request_id
from .issuers import IssuerRegistry, load_trusted_issuers
from .tokens import AuthError, ReplayUnavailable, authenticate

log = logging.getLogger("her2cds.auth")

#: Routes that need a token.  Probes, the SMART app and CORS preflight do not.
PROTECTED_PREFIX = "/cds-services"

REALM = "her2-cds"
WWW_AUTHENTICATE = f'Bearer realm="{REALM}"'
_LOOPBACK_NAMES = ("localhost", "127.0.0.1")
_ANY_INTERFACE = ("0.0.0.0", "::", "")


def _bind_bases(bind: str) -> list[str]:
    """Base URLs a client on this machine uses for the address ``serve`` binds to.

    Without a bind address (the app embedded elsewhere, the test client) only
    ``http://localhost`` and ``http://127.0.0.1`` count.  Binding all
    interfaces names no host, so remote clients then need HER2CDS_PUBLIC_URL
    or HER2CDS_ACCEPTED_AUDIENCES.
    """
    if not bind:
        return [f"http://{name}" for name in _LOOPBACK_NAMES]
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    suffix = "" if port in ("", "80") else f":{port}"
    if host in _ANY_INTERFACE or host in _LOOPBACK_NAMES:
        return [f"http://{name}{suffix}" for name in _LOOPBACK_NAMES]
    if host == "::1" or ":" in host:
        return [f"http://[{host}]{suffix}"]
    return [f"http://{host}{suffix}"]


def audience_bases(settings) -> tuple[str, ...]:
    """Every base URL a token's ``aud`` may start with (then the exact path called)."""
    configured = comma_list(settings.accepted_audiences)
    for value in configured:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"HER2CDS_ACCEPTED_AUDIENCES: {value!r} is not a base URL such as https://cds.example.org")
    bases = [settings.public_url] if settings.public_url else _bind_bases(settings.bind)
    out: list[str] = []
    for base in bases + configured:
        base = base.rstrip("/")
        if base not in out:
            out.append(base)
    return tuple(out)


def accepted_audiences(bases: tuple[str, ...], path: str) -> list[str]:
    return [base + path for base in bases]


def _needs_auth(path: str, method: str) -> bool:
    if method == "OPTIONS":
        return False
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def _reject(reason: str, hint: dict | None = None) -> ApiError:
    """Log why (without the token) and build the uniform 401."""
    extra = {"request_id": request_id(), "path": request.path, "reason": reason, **(hint or {})}
    log.warning("client JWT rejected: %s", reason, extra=extra)
    return ApiError(401, "Authentication required", code="login",
                    headers={"WWW-Authenticate": WWW_AUTHENTICATE})


def check_request() -> None:
    """``before_request``: authenticate calls to ``/cds-services…``; store the client on ``g.client``.

    ``g.client`` is ``{"iss", "tenant", "sub"}`` for an authenticated call and
    ``None`` when authentication is disabled or the route is public.
    """
    g.client = None
    settings = current_app.config["SETTINGS"]
    if not settings.auth_enabled or not _needs_auth(request.path, request.method):
        return
    registry: IssuerRegistry = current_app.extensions["her2cds.auth"]
    audiences = accepted_audiences(current_app.extensions["her2cds.audiences"], request.path)
    try:
        claims = authenticate(request.headers.get("Authorization"), registry, audiences,
                              current_app.extensions["her2cds.store"])
    except AuthError as exc:
        raise _reject(str(exc), exc.hint) from None
    except ReplayUnavailable as exc:
        log.error("replay cache unavailable", exc_info=exc.__cause__, extra={"request_id": request_id()})
        raise ApiError(503, "Authentication is temporarily unavailable; try again.", code="transient") from None
    g.client = {"iss": claims["iss"], "tenant": claims.get("tenant"), "sub": claims.get("sub")}


def fhir_egress() -> EgressPolicy:
    """Where this request's FHIR reads may go: the caller's issuer entry plus the settings.

    With authentication disabled there is no issuer, so only
    ``HER2CDS_FHIR_SERVERS`` / ``HER2CDS_FHIR_ALLOWED_NETWORKS`` count.
    """
    policy: EgressPolicy = current_app.extensions["her2cds.fhir_egress"]
    client = g.get("client")
    registry: IssuerRegistry | None = current_app.extensions.get("her2cds.auth")
    if client and registry is not None and client["iss"] in registry.issuers:
        return registry.issuers[client["iss"]].fhir.union(policy)
    return policy


def init_auth(app: Flask) -> None:
    """Load the trusted issuers once and install the check on the CDS Hooks routes.

    Called by ``create_app``.  A broken issuer file or setting raises
    ``ConfigError`` (start-up fails loudly).  With ``HER2CDS_AUTH=disabled`` a
    warning is logged on every start and discovery says so in ``usageRequirements``.
    """
    settings = app.config["SETTINGS"]
    try:
        app.extensions["her2cds.fhir_egress"] = EgressPolicy.from_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    app.extensions["her2cds.audiences"] = audience_bases(settings)
    bind_host = settings.bind.rpartition(":")[0].strip("[]")
    if settings.bind and bind_host in _ANY_INTERFACE and not (settings.public_url or settings.accepted_audiences):
        log.warning("Listening on all interfaces without HER2CDS_PUBLIC_URL or HER2CDS_ACCEPTED_AUDIENCES: only "
                    "tokens for %s are accepted; set one of them to the URL remote clients call.",
                    ", ".join(app.extensions["her2cds.audiences"]))
    if settings.auth_enabled:
        issuers = load_trusted_issuers(settings.trusted_issuers) if settings.trusted_issuers else {}
        if not issuers:
            log.error("No trusted JWT issuers configured (HER2CDS_TRUSTED_ISSUERS is unset): every call to "
                      "/cds-services will get 401. Configure an issuer file, or run `her2-cds dev-keys init` "
                      "for local use.")
        else:
            log.info("JWT authentication required; trusted issuers: %s; accepted audience bases: %s",
                     ", ".join(sorted(issuers)), ", ".join(app.extensions["her2cds.audiences"]))
        app.extensions["her2cds.auth"] = IssuerRegistry(
            issuers=issuers, leeway=settings.jwt_leeway, max_age=settings.jwt_max_age)
    else:
        log.warning("AUTHENTICATION DISABLED (HER2CDS_AUTH=disabled): any caller can invoke this service. "
                    "Use only on a workstation with synthetic data. FHIR servers it may read from: "
                    "HER2CDS_FHIR_SERVERS only.")
    app.before_request(check_request)


def auth_notice(settings) -> str:
    """The sentence discovery's ``usageRequirements`` carries about authentication."""
    if settings.auth_enabled:
        return ("Every call, discovery included, must carry a CDS Hooks client JWT "
                "(Authorization: Bearer <JWT>, ES384 or RS384) from a trusted issuer.")
    return ("WARNING: authentication is DISABLED on this instance (HER2CDS_AUTH=disabled); "
            "for local testing with synthetic data only.")
