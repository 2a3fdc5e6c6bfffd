"""The OAuth side of SMART App Launch 2.x: which servers, discovery, PKCE, the code exchange.

A *public* client with authorization code + PKCE (S256).  The decisions are
pure functions (is this ``iss`` allowed, is this configuration usable, which
scopes, what the authorize URL is, is this token response usable); the two
network exchanges go through ``transport.BoundedHttp`` (the hooks' egress
transport: address check after DNS, pinned socket, total deadline, byte cap)
and fail with one generic page each, so the pages never tell an open port
from a closed one; what went wrong is logged, under the request id.

The egress policy is the hooks' one, applied to every URL the app contacts
(``IssuerPolicy.endpoint_problem``, ``IssuerPolicy.networks``): https, or
plain http only to the origin of an issuer listed with ``http://`` (or, in the
development mode, a loopback host); the resolved addresses must be public or
inside ``HER2CDS_FHIR_ALLOWED_NETWORKS`` (loopback also when
``HER2CDS_SMART_DEV_LOOPBACK`` is on); cloud metadata never.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ..fhir.client import is_fhir_id
from ..fhir.egress import IPNetwork, comma_list, normalize, parse_networks
from .errors import SmartError
from .transport import BoundedHttp, TransportError

MAX_OAUTH_BYTES = 256 * 1024  # a SMART configuration or token response is a few KB



def configuration_unavailable(detail: str) -> SmartError:
    """The one page for every way discovery can fail: it must not tell an open port from a closed one."""
    return _unavailable("SMART configuration unavailable", "The service could not read a usable SMART "
                        "configuration from that FHIR server, so the sign-in cannot start.", detail)


def token_unavailable(detail: str) -> SmartError:
    """The one page for every token endpoint failure that is not an OAuth error answer."""
    return _unavailable("Sign-in failed", "The authorization server's token endpoint could not be used to "
                        "finish the sign-in.", detail)


def _unavailable(title: str, what: str, detail: str) -> SmartError:
    return SmartError(502, title, what + " Launch the app again; if it keeps failing, give the administrator "
                      "the request id below (the service log has the details).", detail=detail)


# -- which FHIR servers ------------------------------------------------------------------

def is_http_url(value) -> bool:
    if not isinstance(value, str) or not value or len(value) > 2000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.username


def normalize_base(url: str) -> str:
    """A FHIR base as compared: no trailing slash, scheme and host in lower case."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal; any other name or number form is not (no DNS asked)."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class IssuerPolicy:
    """The FHIR servers the app may be launched against.

    Why a policy at all: a launch makes the service fetch
    ``{iss}/.well-known/smart-configuration`` for any visitor, so without one
    ``/smart/launch`` would make the service fetch any host (an internal
    scanner).  Nothing configured means no launch, except, in the explicit
    development mode, FHIR servers on this machine's loopback.
    """

    allowed: frozenset[str]
    dev_loopback: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()  # HER2CDS_FHIR_ALLOWED_NETWORKS, as for the hooks

    @classmethod
    def from_settings(cls, settings) -> "IssuerPolicy":
        """``ValueError`` when HER2CDS_FHIR_ALLOWED_NETWORKS is malformed (start-up checks it first)."""
        bases = {normalize_base(a) for a in settings.smart_allowed_issuers.split(",") if a.strip()}
        networks = parse_networks(comma_list(settings.fhir_allowed_networks), "HER2CDS_FHIR_ALLOWED_NETWORKS")
        return cls(frozenset(bases), bool(settings.smart_dev_loopback), networks)

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """Non-public networks the app may connect to: the hooks' allowed networks, loopback in dev mode."""
        return self.allowed_networks + (_LOOPBACK if self.dev_loopback else ())

    def endpoint_problem(self, url) -> str | None:
        """Why the app must not send anything to ``url`` (for the log), or None.

        https always; plain http (which would carry the code, the verifier or
        the access token in clear) only to the origin of an issuer the
        administrator listed with ``http://``, or to a loopback host in the
        development mode.  The address check follows at connect time.
        """
        target = normalize(url) if is_http_url(url) else None
        if target is None:
            return "not an http(s) URL"
        scheme, host, port, _ = target
        if scheme == "https":
            return None
        if self.dev_loopback and is_loopback_host(host):
            return None
        for base in self.allowed:
            allowed = normalize(base)
            if allowed is not None and allowed[:3] == (scheme, host, port):
                return None
        return "plain http to a server not listed with http:// in HER2CDS_SMART_ALLOWED_ISSUERS"

    def allows(self, iss: str | None) -> bool:
        """Whether a launch against ``iss`` would be accepted (cards offer ``/smart/open`` only then)."""
        try:
            self.check(iss)
        except SmartError:
            return False
        return True

    def check(self, iss: str | None) -> str:
        """The FHIR base the launch names, if it is a plain http(s) URL this service may talk to."""
        if not iss:
            raise SmartError(400, "Missing iss",
                             "The launch URL needs an 'iss' parameter: the FHIR server's base URL.")
        iss = iss.strip().rstrip("/")
        if not is_http_url(iss):
            raise SmartError(400, "Invalid iss", "The 'iss' parameter must be an http(s) URL of a FHIR server.")
        if normalize_base(iss) in self.allowed:
            return iss
        if self.dev_loopback and is_loopback_host(urlsplit(iss).hostname):
            return iss
        if not self.allowed and not self.dev_loopback:
            raise SmartError(403, "SMART launch not configured",
                             "This service has no FHIR servers configured for the SMART app, so it cannot be "
                             "launched. Ask the service's administrator to allow this EHR's FHIR server.",
                             detail="HER2CDS_SMART_ALLOWED_ISSUERS is empty: set it to the EHR's FHIR base URL "
                                    "(docs/smart-app.md)")
        raise SmartError(403, "FHIR server not allowed",
                         "This service is not configured to launch against that FHIR server.")


# -- PKCE, scopes, the authorize redirect -----------------------------------------------------

def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636: 43+ chars of base64url without padding."""
    verifier = secrets.token_urlsafe(48)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def scopes(configured: str, standalone: bool) -> str:
    """The configured scopes; a standalone launch asks for ``launch/patient`` instead of ``launch``."""
    items = configured.split()
    if standalone:
        items = ["launch/patient" if s == "launch" else s for s in items]
        if "launch/patient" not in items:
            items.insert(0, "launch/patient")
    elif "launch" not in items:
        items.insert(0, "launch")
    return " ".join(items)


def authorize_url(endpoint: str, params: dict) -> str:
    sep = "&" if urlsplit(endpoint).query else "?"
    return endpoint + sep + urlencode(params)


# -- discovery --------------------------------------------------------------------------------

def configuration_problem(conf, policy: IssuerPolicy | None = None) -> str | None:
    """Why a SMART configuration cannot be used (for the log), or None.

    With ``policy``, the token endpoint (which receives the code and the PKCE
    verifier) must pass its ``endpoint_problem`` check too.
    """
    if not isinstance(conf, dict):
        return "not a JSON object"
    for key in ("authorization_endpoint", "token_endpoint"):
        if not is_http_url(conf.get(key)):
            return f"no usable {key}"
    why = policy.endpoint_problem(conf["token_endpoint"]) if policy is not None else None
    if why:
        return f"token_endpoint refused: {why}"
    methods = conf.get("code_challenge_methods_supported")
    if isinstance(methods, list) and methods and "S256" not in methods:
        return "PKCE S256 not supported"
    return None


def discover(http: BoundedHttp, iss: str, policy: IssuerPolicy) -> dict:
    """Read and check ``{iss}/.well-known/smart-configuration``; any failure is the one generic page."""
    url = iss + "/.well-known/smart-configuration"
    try:
        problem = policy.endpoint_problem(url)
        if problem is None:
            answer = http.get_json(url)
            problem = (f"HTTP {answer.status}" if answer.status != 200
                       else configuration_problem(answer.body, policy))
    except TransportError as exc:
        problem = exc.detail
    if problem:
        raise configuration_unavailable(f"SMART configuration of {iss}: {problem}")
    return answer.body


# -- the code exchange ------------------------------------------------------------------------

def token_problem(status: int, body) -> SmartError | None:
    """What the user is told about a token endpoint answer, or None when it is usable.

    An OAuth error (4xx) is the authorization server's answer about this
    sign-in, so its code is shown; anything else unusable is the generic page.
    """
    if 400 <= status < 500:
        error = body.get("error") if isinstance(body, dict) else None
        return SmartError(400, "Sign-in refused",
                          f"The authorization server refused the code ({status}"
                          + (f", {str(error)[:100]}" if error else "") + "). Launch the app again.")
    if status != 200 or not isinstance(body, dict):
        return token_unavailable(f"token endpoint answered HTTP {status}"
                                 + ("" if isinstance(body, dict) else " without a JSON object"))
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        return SmartError(502, "Bad token response", "The token response has no access_token.")
    token_type = str(body.get("token_type", "bearer")).lower()
    if token_type != "bearer":
        return SmartError(502, "Bad token response", f"Unsupported token_type '{token_type[:20]}'.")
    patient = body.get("patient")
    if patient is None or patient == "":
        return SmartError(400, "No patient selected",
                          "The authorization server granted access without a patient in context. "
                          "Launch the app from a patient's chart (or pick a patient when asked).")
    if not is_fhir_id(patient):  # it goes into the read's path: "..", "../../admin" would leave the FHIR base
        return SmartError(502, "Bad token response",
                          "The token response names a patient whose id is not a valid FHIR id, so nothing "
                          "was read. Give the administrator the request id below.",
                          detail="token response: patient is not a FHIR id")
    return None


def exchange_code(http: BoundedHttp, token_endpoint: str, form: dict, policy: IssuerPolicy) -> dict:
    """POST the code and the PKCE verifier; return the checked token response."""
    why = policy.endpoint_problem(token_endpoint)
    if why:
        raise token_unavailable(f"token request not sent: {why}")
    try:
        answer = http.post_form(token_endpoint, form)
    except TransportError as exc:
        raise token_unavailable(f"token request: {exc.detail}") from None
    problem = token_problem(answer.status, answer.body)
    if problem is not None:
        raise problem
    return answer.body
