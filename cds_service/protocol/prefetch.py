"""Gather the data a hook call needs: what the client prefetched, plus what it did not.

The spec lets a client satisfy any subset of the prefetch templates, send
``null`` for "no data", report a failure with an OperationOutcome, or send a
paginated Bundle.  This module turns all of that into one list of resources
and a list of data-quality findings, fetching from ``fhirServer`` (with the
client's bearer token) only what is missing.  When required data can be got
neither way, it raises a 412, as the spec demands.

``fhirServer`` is contacted only when the caller's ``EgressPolicy`` allows it
(its issuer's ``fhir_servers``, ``HER2CDS_FHIR_SERVERS``); any other server is
treated like an absent one, so the access token never leaves for it.  Why a
read failed goes to the log; the caller gets one text for every network
outcome, so the answers cannot map another host's ports.

No Flask here: the caller hands in what the log lines need (the request id),
so the gathering runs the same in a hook call, a tool or a test.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, unquote
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..core.criteria import Finding
from ..errors import ApiError, Issue
from ..core.parse import bundle_resources
from ..fhir.client import FetchResult, FhirClient, next_link, read_failure
from ..fhir.egress import EgressPolicy

log = logging.getLogger("her2cds.fhir")

NOT_TRUSTED = ("not prefetched, and fhirServer is not a FHIR server this client may name "
               "(not contacted; see the issuer's fhir_servers)")

# Which keys are *required* (no advice without them: 412) is data: the
# ``required`` flags of fhir_profiles/services/prefetch.json, passed in by the caller.
# A server that *refuses* an optional query (it does not support a parameter or a
# resource type, or the token's scopes do not cover it) costs that data only: it
# is logged for the integrator and recorded as ``data-refused`` (so rules that
# need the data stay silent or say so), without a "could not be read" card.
REFUSED_STATUSES = frozenset({400, 403, 404, 501})

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


@dataclass
class Gathered:
    resources: list[dict]
    findings: list[Finding] = field(default_factory=list)  # refs are "prefetch:<key>"
    sources: dict[str, str] = field(default_factory=dict)  # key -> prefetch | fetched | none


def render_template(template: str, context: dict) -> str | None:
    """Fill ``{{context.x}}`` and ``{{userPractitionerId}}``-style tokens; None if one cannot be filled."""
    missing = False

    def sub(match: re.Match) -> str:
        nonlocal missing
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token[len("context."):])
        elif token in _USER_TOKENS:
            user = context.get("userId") or ""
            rtype, _, uid = user.partition("/")
            value = uid if rtype == _USER_TOKENS[token] else None
        else:
            value = None
        if not isinstance(value, str) or not value:
            missing = True
            return ""
        return value

    rendered = _TOKEN.sub(sub, template)
    return None if missing else encode_query(rendered)


def encode_query(query: str) -> str:
    """Percent-encode each search parameter value (``code=http%3A%2F%2Floinc.org%7C85319-2``).

    Why: proxies in front of FHIR servers (the SMART launcher's among them)
    normalise a literal ``//`` in the query string to ``/``, which turns every
    ``system|code`` token into a search that matches nothing.  Encoded values
    reach the server intact; commas stay literal (FHIR's "or").  Idempotent:
    an already-encoded value is decoded first, so it is not encoded twice.
    """
    path, sep, params = query.partition("?")
    if not sep:
        return query
    out = []
    for param in params.split("&"):
        name, eq, value = param.partition("=")
        out.append(name + eq + quote(unquote(value), safe=",") if eq else param)
    return path + "?" + "&".join(out)


def classify(value) -> str:
    """What a client-sent prefetch value means: data, no-data, or a failure to report."""
    if value is None:
        return "no-data"
    if value.get("resourceType") == "OperationOutcome":
        return "failed"
    return "data"


def _origin(url: str) -> str:
    """Scheme and host of a base URL, for the log (its path may carry an id, never a secret)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    except ValueError:  # e.g. "https://]x" or a bad port: egress refuses it; the log just says so
        return "(not a URL)"


def gather(request_body: dict, templates: dict[str, str], client: FhirClient | None, budget_s: float,
           egress: EgressPolicy | None = None, required: frozenset[str] = frozenset(),
           request_id: str | None = None) -> Gathered:
    """``egress`` is the caller's policy; without one no server is trusted (prefetch only).

    ``required``: the keys without which there is no advice (``Services.required``).
    ``request_id``: the call's id, on every log line of this gathering (hooks pass the
    request's, so an integrator can follow one call through); None outside a request.
    """

    def _log_extra(**fields) -> dict:
        return {"request_id": request_id, **fields}

    deadline = time.monotonic() + budget_s
    context = request_body.get("context") or {}
    prefetch = request_body.get("prefetch") or {}
    named = request_body.get("fhirServer")
    egress = egress or EgressPolicy()
    base = named if named and egress.allows_server(named) else None
    token = (request_body.get("fhirAuthorization") or {}).get("access_token")
    if named and base is None:
        log.warning("fhirServer not on the caller's list; not contacted",
                    extra=_log_extra(fhir_server=_origin(named)))

    resources: list[dict] = []
    findings: list[Finding] = []
    sources: dict[str, str] = {}
    to_fetch: dict[str, str] = {}
    to_continue: dict[str, dict] = {}
    unobtainable: dict[str, str] = {}

    for key, template in templates.items():
        if key in prefetch:
            kind = classify(prefetch[key])
            if kind == "no-data":
                sources[key] = "prefetch"
                continue
            if kind == "data":
                value = prefetch[key]
                sources[key] = "prefetch"
                if value.get("resourceType") == "Bundle":
                    if next_link(value):
                        to_continue[key] = value
                    else:
                        resources.extend(bundle_resources(value))
                else:
                    resources.append(value)
                continue
            # "failed": the client tried and could not; try ourselves.
        query = render_template(template, context)
        if query is None:
            unobtainable[key] = "its prefetch template needs a context value the request does not have"
        elif named and not base:
            unobtainable[key] = NOT_TRUSTED
        elif not base:
            unobtainable[key] = "not prefetched and the request has no fhirServer to fetch it from"
        else:
            to_fetch[key] = query

    if client is not None and base:
        results: dict[str, FetchResult] = client.fetch_all(base, token, to_fetch, deadline, egress)
        for key, bundle in to_continue.items():
            results[key] = client.continue_bundle(key, base, token, bundle, deadline, egress)
    else:
        results = {}
        why = ("the prefetched Bundle has more pages but fhirServer is not a FHIR server this client may name"
               if named else "the prefetched Bundle has more pages but the request has no fhirServer to read them from")
        for key, bundle in to_continue.items():
            results[key] = FetchResult(key, bundle_resources(bundle), error=why, public_error=why)

    for key, result in results.items():
        resources.extend(result.resources)
        sources.setdefault(key, "fetched")
        if result.ok:
            continue
        if base:
            patient = context.get("patientId")
            detail = result.error.replace(patient, "{patientId}") if isinstance(patient, str) and patient \
                else result.error  # the read's path names the patient: not in the log (issue 21)
            log.warning("FHIR read failed", extra=_log_extra(key=key, detail=detail, fhir_server=_origin(base)))
        public = result.public_error or result.error or "unknown error"
        if result.resources or key in to_continue:
            findings.append(read_failure(key, partial=True, why=public))
        elif key not in required and result.status in REFUSED_STATUSES:
            log.warning("the FHIR server refused an optional query; its data is left out",
                        extra=_log_extra(prefetch_key=key, status=result.status, fhir_server=_origin(base)))
            sources[key] = "none"
            findings.append(Finding("data-refused", f"The FHIR server refused the '{key}' query "
                                    f"({public}); checks that need it stay silent.", (f"prefetch:{key}",)))
        else:
            unobtainable[key] = public

    missing_required = {k: v for k, v in unobtainable.items() if k in required}
    if missing_required:
        issues = [Issue(f"Required data '{k}' could not be obtained: {why}", f"/prefetch/{k}", "incomplete")
                  for k, why in missing_required.items()]
        raise ApiError(412, "Required data is neither prefetched nor retrievable from fhirServer", issues=issues)
    for key, why in unobtainable.items():
        sources[key] = "none"
        findings.append(read_failure(key, partial=False, why=why))
    return Gathered(resources=resources, findings=findings, sources=sources)
