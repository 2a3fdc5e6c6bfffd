"""``POST /cds-services/{id}``: one hook invocation, from request to cards.

The imperative shell around the pure pipeline in ``advice``: read and check
the body, gather data (prefetch + FHIR), call ``advise``, check the cards
against the response schema, record what was issued, audit, answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import threading
import time

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.sansio.utils import get_current_url

from .. import events
from ..core import advice
from ..core.cards import IssuedCard
from ..auth import fhir_egress
from . import prefetch, repeats
from .discovery import prefetch_templates
from ..errors import ApiError
from ..fhir.client import FhirClient
from ..logs import request_id
from ..core.instrumentation import stage
from ..core.parse import json_bytes
from .validation import check, read_json, schema_issues

log = logging.getLogger("her2cds.hooks")
bp = Blueprint("hooks", __name__)

_client_lock = threading.Lock()


def fhir_client() -> FhirClient:
    """The process's FhirClient, created after fork (gunicorn preloads the app)."""
    ext = current_app.extensions
    client = ext.get("her2cds.fhir_client")
    if client is None or client[0] != os.getpid():
        with _client_lock:
            client = ext.get("her2cds.fhir_client")
            if client is None or client[0] != os.getpid():
                client = (os.getpid(), FhirClient(current_app.config["SETTINGS"],
                                                           on_results=events.listener().fhir_queries))
                ext["her2cds.fhir_client"] = client
    return client[1]


def find_service(service_id: str):
    service = current_app.extensions["her2cds.knowledge"].services.by_id.get(service_id)
    if service is None:
        raise ApiError(404, f"No CDS service with id {service_id!r}; see GET /cds-services",
                       f"path:/cds-services/{service_id}", "not-found")
    return service


@bp.post("/cds-services/<service_id>")
def invoke(service_id: str):
    settings = current_app.config["SETTINGS"]
    store = current_app.extensions["her2cds.store"]
    audit = {"service_id": service_id[:100], "hook": None, "hook_instance": None, "patient_id": None,
             "status": 500, "outcome": "error", "card_count": 0, "rule_ids": "", "suppressed": ""}
    started = time.perf_counter()
    issued: list[tuple[str, str, str]] = []
    repeat_keys: dict[str, str] = {}
    service = None
    try:
        service = find_service(service_id)
        with stage("parse body"):
            body = read_json(request, settings.max_json_depth)
        hook = body.get("hook")
        if isinstance(hook, str):
            audit["hook"] = hook[:50]
        if isinstance(body.get("hookInstance"), str):
            audit["hook_instance"] = body["hookInstance"][:100]
        context = body.get("context")
        if isinstance(context, dict) and isinstance(context.get("patientId"), str):
            audit["patient_id"] = context["patientId"][:200]
        if isinstance(hook, str) and hook != service.hook:
            raise ApiError(400, f"Service {service_id!r} answers the {service.hook!r} hook, not {hook!r}",
                           "/hook", "value")
        with stage("request schema"):
            check("cds-request", body, "The CDS Hooks request")

        knowledge = current_app.extensions["her2cds.knowledge"]
        with stage("prefetch"):
            gathered = prefetch.gather(body, prefetch_templates(knowledge, service), fhir_client(),
                                       settings.fhir_time_budget, egress=fhir_egress(),
                                       required=knowledge.services.required, request_id=request_id())
        result = advice.advise(service.hook, service.id, body["context"], gathered.resources,
                               gathered.findings, knowledge, base_url=public_base_url(settings),
                               fhir_server=_launchable(body.get("fhirServer")))
        _log_notices(result.profile)
        with stage("card schema"):
            issued = [i for i in result.issued if card_is_valid(i)]
        repeat_keys = repeats.keys_of(issued, body["context"].get("patientId"), body["context"],
                                      repeats.audience(g.get("client"), body["context"], body.get("fhirServer")))
        suppressed: list[repeats.Suppressed] = []
        if service.hook == "order-sign":
            issued, suppressed = _order_sign_cards(store, settings, issued, repeat_keys)
        elif service.hook == "patient-view" and result.profile is not None:
            event_keys = repeats.once_per_event(
                issued, knowledge.rulebook.rule, result.profile.facts, body["context"].get("patientId"),
                repeats.audience(g.get("client"), body["context"], body.get("fhirServer")))
            repeat_keys.update(event_keys)
            issued, suppressed = _once_per_event_cards(store, issued, event_keys)
        if suppressed:
            audit["suppressed"] = ",".join(f"{s.rule_id}@{s.earlier_hook_instance or '?'}" for s in suppressed)
        audit.update(status=200, outcome="cards" if issued else "no-cards", card_count=len(issued),
                     rule_ids=",".join(i.rule_id for i in issued))
        return cards_answer({"cards": [i.card for i in issued]})
    except ApiError as err:
        audit.update(status=err.status, outcome=err.issues[0].code if err.issues else "error")
        raise
    finally:
        audit["duration_ms"] = int((time.perf_counter() - started) * 1000)
        events.hook_invocation(service_id, audit["outcome"], time.perf_counter() - started,
                               [i.rule_id for i in issued])
        _record(store, audit, service, [i.row() for i in issued], repeat_keys, _suggestions(issued))


def cards_answer(answer: dict) -> Response:
    """The hook's JSON answer, written by orjson when it can write it.

    ``jsonify`` took 0.05–0.10 ms of a warm call for a 10 KB order-select
    answer, orjson 5 µs (docs/performance.md).  The bytes differ only in
    spelling, not in value: non-ASCII text as UTF-8 rather than ``\\uXXXX``
    escapes (RFC 8259 §8.1; the media type is UTF-8 JSON either way) and a
    float's shortest form (``1e-5`` for ``1e-05``).  What orjson refuses —
    an integer beyond 64 bits copied from a draft, a lone surrogate, a key
    that is not a string — and any date, dataclass or subclass (which orjson
    would write its own way) go through ``jsonify`` as before (``parse.json_bytes``).
    """
    data = json_bytes(answer, newline=True)
    if data is None:
        return jsonify(answer)
    return current_app.response_class(data, mimetype="application/json")


def _launchable(fhir_server):
    """The hook's fhirServer when the SMART app may be launched against it, else None (no absolute link)."""
    policy = (current_app.extensions.get("her2cds.smart") or {}).get("issuers")
    return fhir_server if policy is not None and policy.allows(fhir_server) else None


def _log_notices(profile) -> None:
    """What the core noticed for the integrator (a draft read leniently): logged by id, never shown."""
    for n in getattr(profile, "notices", ()) or ():
        log.info(n.message, extra={"resource": n.refs[0] if n.refs else "", "problem": n.code,
                                   "request_id": g.get("request_id", "")})


def _order_sign_cards(store, settings, issued: list[IssuedCard], repeat_keys: dict[str, str],
                      ) -> tuple[list[IssuedCard], list[repeats.Suppressed]]:
    """order-sign: critical-only when configured; else leave out what order-select showed within the
    window (a critical card only when it was answered there), and log each card left out.

    A database that cannot answer costs the de-duplication, not the cards:
    the clinician sees a repeat rather than miss a warning.
    """
    earlier: dict = {}
    window = settings.order_sign_repeat_window_hours
    if settings.order_sign_cards != "critical-only" and window > 0 and repeat_keys:
        since = repeats.window_start(dt.datetime.now(dt.timezone.utc), window)
        try:
            earlier = repeats.earlier(store.earlier_cards(repeat_keys.values(), "order-select", since))
        except Exception:
            log.exception("order-sign repeat look-up failed; cards shown again")
    kept, suppressed = repeats.for_order_sign(issued, repeat_keys, earlier, settings.order_sign_cards)
    for s in suppressed:
        log.info("card not repeated at order-sign", extra={
            "rule": s.rule_id, "earlier_hook_instance": s.earlier_hook_instance,
            "request_id": g.get("request_id", "")})
    return kept, suppressed


def _once_per_event_cards(store, issued: list[IssuedCard], event_keys: dict[str, str],
                          ) -> tuple[list[IssuedCard], list[repeats.Suppressed]]:
    """patient-view: a card about an event (a progression) the same clinician was already shown is left out.

    Knowledge file §2.6: the next-line card opens once per progression event, not at
    every chart opening.  A database that cannot answer costs the de-duplication, not
    the card.
    """
    if not event_keys:
        return issued, []
    try:
        rows = store.earlier_cards(event_keys.values(), "patient-view", repeats.EVENT_MEMORY_START)
    except Exception:
        log.exception("patient-view event look-up failed; cards shown again")
        return issued, []
    seen = {r["repeat_key"]: r.get("hook_instance") for r in rows}
    kept, suppressed = [], []
    for i in issued:
        key = event_keys.get(i.uuid)
        if key in seen:
            suppressed.append(repeats.Suppressed(i.rule_id, seen[key]))
            log.info("card about an event already shown not repeated", extra={
                "rule": i.rule_id, "earlier_hook_instance": seen[key], "request_id": g.get("request_id", "")})
        else:
            kept.append(i)
    return kept, suppressed


def _suggestions(issued: list[IssuedCard]) -> dict[str, list[str]]:
    """card uuid → its suggestions' uuids: feedback may accept only those (protocol/feedback.py)."""
    return {i.uuid: [s["uuid"] for s in i.card.get("suggestions") or () if isinstance(s.get("uuid"), str)]
            for i in issued}


def _record(store, row: dict, service, issued: list[tuple[str, str, str]],
            repeat_keys: dict[str, str] | None = None, suggestions: dict[str, list[str]] | None = None) -> None:
    """Log the call and write its audit row and issued cards in one transaction.

    A database failure here is logged loudly but does not take the cards away
    from the clinician: the answer is already computed.
    """
    client = g.get("client") or {}
    row = dict(row, request_id=g.get("request_id", ""), client_iss=client.get("iss"))
    log.info("hook invocation", extra={k: v for k, v in row.items() if k != "patient_id"})
    try:
        with stage("db: audit + issued cards"):
            store.record_invocation(row, service.id if service else row["service_id"],
                                    service.hook if service else "", issued, repeat_keys,
                                    suggestions, client.get("tenant"))
    except Exception:
        log.exception("audit/issued-card record failed",
                      extra={"request_id": row["request_id"], "cards_not_recorded": len(issued)})


def public_base_url(settings) -> str:
    """The service's own base URL for the cards' links: the configured one, else the request's root."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return _root_url(request.scheme, request.host, request.root_path)


@functools.lru_cache(maxsize=64)
def _root_url(scheme: str, host: str, root_path: str) -> str:
    """``request.url_root`` without its slash, by its parts: Werkzeug builds it again on every request
    (an IRI, 20 µs of a warm call), and the same scheme, host and root path give the same URL."""
    return get_current_url(scheme, host, root_path).rstrip("/")


def card_is_valid(issued: IssuedCard) -> bool:
    """Drop (and log) a card the spec would reject rather than send it to an EHR."""
    issues = schema_issues("cds-response", {"cards": [issued.card]})
    if issues:
        log.error("dropped an invalid card", extra={"rule": issued.rule_id,
                                                    "problems": [i.diagnostics for i in issues]})
        return False
    return True
