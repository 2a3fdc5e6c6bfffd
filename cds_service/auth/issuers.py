"""The trusted-issuers file: which CDS clients may call, with which keys, naming which FHIR servers.

Read once at start-up (``HER2CDS_TRUSTED_ISSUERS``, several files joined by
``os.pathsep``); a broken file is a ``ConfigError`` so the service refuses to
start instead of rejecting everybody later.  Each entry is checked member by
member so a typo (``jwks_uri``) is reported, not silently ignored.  The keys
come only from the entry's inline JWK Set or its ``jwks_url`` (one cached
``PyJWKClient`` per URL, see ``IssuerRegistry``).

Per issuer, ``fhir_servers`` lists the FHIR servers its hook requests may name
in ``fhirServer`` (exact base URLs or origin patterns, ``fhir.egress.ServerRule``)
and ``fhir_networks`` the non-public networks those servers may resolve to.
An issuer without ``fhir_servers`` may name none: its calls run on prefetch only.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jwt import PyJWK, PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWTError

from ..config import ConfigError
from ..fhir.egress import EgressPolicy, parse_networks, parse_rules

#: Asymmetric signature algorithms a CDS client may use (the spec recommends
#: ES384 and RS384).  Never ``none`` and never ``HS*``.
ALLOWED_ALGORITHMS = (
    "ES256", "ES384", "ES512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
)
JWKS_FETCH_TIMEOUT = 2.0
MAX_ISSUER_CHARS = 300    # the replay table column
_ISSUER_MEMBERS = {"jwks_url", "jwks", "tenants", "jku_allowlist", "description", "fhir_servers", "fhir_networks"}


@dataclass
class Issuer:
    """One trusted CDS client as configured in the issuer file."""

    iss: str
    jwks: PyJWKSet | None = None
    jwks_url: str | None = None
    tenants: frozenset[str] | None = None
    jku_allowlist: frozenset[str] = frozenset()
    fhir: EgressPolicy = field(default_factory=EgressPolicy)


@dataclass
class IssuerRegistry:
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


def _parse_fhir_policy(where: str, entry: dict) -> EgressPolicy:
    """``fhir_servers`` (ServerRule texts) and ``fhir_networks`` (CIDRs), both optional lists."""
    for member in ("fhir_servers", "fhir_networks"):
        if member in entry and not isinstance(entry[member], list):
            raise ConfigError(f"{where}.{member} must be a list of strings")
    try:
        return EgressPolicy(parse_rules(entry.get("fhir_servers", []), f"{where}.fhir_servers"),
                            parse_networks(entry.get("fhir_networks", []), f"{where}.fhir_networks"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _parse_issuer(where: str, iss: str, entry: Any) -> Issuer:
    """Check one issuer entry member by member so a typo (``jwks_uri``) is reported, not ignored."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object with \"jwks_url\" or \"jwks\"")
    unknown = sorted(set(entry) - _ISSUER_MEMBERS)
    if unknown:
        raise ConfigError(f"{where} has unknown member(s) {unknown}; allowed: {sorted(_ISSUER_MEMBERS)}")
    if "jwks_url" not in entry and "jwks" not in entry:
        raise ConfigError(f"{where} needs \"jwks_url\" or an inline \"jwks\"")
    issuer = Issuer(iss=iss, fhir=_parse_fhir_policy(where, entry))
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
