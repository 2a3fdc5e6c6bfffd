"""Reading the launched patient from the FHIR server: exactly the hooks' prefetch queries.

The reads go through ``fhir.client.FhirClient`` (parallel queries, a shared
deadline, a byte cap per response, ``next`` links only on the same server) on
the hooks' transport, ``fhir.egress.EgressAdapter``, with the SMART egress
networks: every address is checked after DNS and the socket pinned to it, and
no single read outlives ``smart_http_deadline`` either, even when the server
drips its answer byte by byte.  The patient id is checked before it is put
into a path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

from ..core.criteria import Finding
from ..fhir.client import MAX_RESPONSE_BYTES, FhirClient, is_fhir_id, read_failure
from ..fhir.egress import EgressAdapter, EgressPolicy, IPNetwork
from ..protocol.prefetch import render_template as render_template_query
from .errors import SmartError
from .sessions import AppSession
from .transport import CONNECT_TIMEOUT


def fhir_client(settings) -> FhirClient:
    """The app's own FhirClient: interactive timeouts (the 0.5 s hook budget does not apply), bounded reads.

    Its own, not the hooks' one: its thread pool and connections are apart,
    so a slow FHIR server behind the app cannot delay hook calls.
    """
    relaxed = settings.replace(fhir_connect_timeout=CONNECT_TIMEOUT, fhir_read_timeout=settings.smart_http_deadline)
    adapter = EgressAdapter(pool_maxsize=settings.fhir_max_workers, deadline=settings.smart_http_deadline,
                            max_bytes=MAX_RESPONSE_BYTES)
    return FhirClient(relaxed, transport=adapter)


def prefetch_queries(patient_id: str, templates: dict[str, str]) -> dict[str, str]:
    """The discovery prefetch templates with the patient id filled in: the app reads what the hooks read."""
    context = {"patientId": patient_id}
    return {key: render_template_query(template, context) for key, template in templates.items()}


@dataclass(frozen=True)
class PatientRecord:
    """What was read: the resources of every query, a finding per query that failed, and why (for the log).

    ``resources`` are the queries' answers as read, in query order, like a
    hook's prefetch: the criteria's intake drops the repeats (by type/id) once,
    for the hooks and the page alike.  The findings name the query (refs
    ``prefetch:<key>``, as in the hooks) but not the network outcome: the page
    shows them; ``failures`` is for the log.
    """

    resources: list[dict]
    findings: tuple[Finding, ...] = ()
    failures: dict[str, str] = field(default_factory=dict)
    empty: tuple[str, ...] = ()  # queries answered with no resource at all (the page says so)


def read_patient(client: FhirClient, entry: AppSession, budget: float,
                 templates: Mapping[str, str], networks: tuple[IPNetwork, ...] = ()) -> PatientRecord:
    """Every prefetch query for the session's patient, within ``budget`` seconds in total.

    ``templates``: the app's prefetch templates (``discovery.prefetch_templates`` of its
    knowledge: the page reads what the hooks would).  ``networks``: the non-public
    networks the reads may connect to (``oauth.IssuerPolicy.networks``); public addresses only
    by default.

    Nothing readable at all is a page: 401 when the server no longer takes
    the token, else one generic 502 (the per-query reasons go to the log).
    """
    if not is_fhir_id(entry.patient):
        raise SmartError(400, "Invalid patient", "The session's patient id is not a valid FHIR id, so nothing "
                         "was read. Launch the app again.", detail="session patient is not a FHIR id")
    results = client.fetch_all(entry.iss, entry.access_token, prefetch_queries(entry.patient, templates),
                               time.monotonic() + budget, EgressPolicy(networks=tuple(networks)))
    resources, failures, findings, empty = [], {}, [], []
    for key in templates:
        result = results.get(key)
        if result is None:
            continue
        if not result.error and not result.resources:
            empty.append(key)
        if result.error:  # the detail names the read's path: the patient id stays out of the log
            failures[key] = result.error.replace(entry.patient, "{patient}")
            findings.append(read_failure(key, partial=bool(result.resources)))
        resources.extend(result.resources)
    if not resources and failures:
        detail = "; ".join(f"{k}: {v}" for k, v in failures.items())
        if all("(401)" in reason for reason in failures.values()):
            raise SmartError(401, "Access expired",
                             "The FHIR server no longer accepts this session's access token. Launch the app again.",
                             detail=detail)
        raise SmartError(502, "FHIR server unavailable",
                         "Nothing could be read from the FHIR server for this patient. Try again in a moment; "
                         "if it keeps failing, give the administrator the request id below.", detail=detail)
    return PatientRecord(resources, tuple(findings), failures, tuple(empty))


