"""``POST /cds-services/{id}/feedback``: what the clinician did with a card.

Stored durably and idempotently: the same entry reported twice (the spec
allows it) is stored once.  The card uuid links feedback to the rule that
issued the card (see ``storage.issued_cards``), which is what the
``her2-cds feedback report`` command reads.

When the database cannot take the write the answer is 503 with
``Retry-After``, never a 500: the client may simply send the same body again,
and entries already stored by the failed attempt count as duplicates then.

**Only the client that received a card speaks for it** (issue 21): an entry
is accepted only for a card this service issued, through this service, to the
same client — the token's issuer and tenant, as ``auth`` put them on
``g.client`` and the hook recorded them with the card — and an ``accepted``
entry only for suggestion uuids that card had.  A card not issued to this client is a 404 and a
suggestion it did not have a 400, each naming
the entry; "no such card" and "another client's card" read the same, so the
answer does not reveal which card uuids exist.  The stored row records the
issuer.  Each client (issuer + tenant; the address with authentication
disabled) may send ``HER2CDS_FEEDBACK_PER_MINUTE`` entries a minute per worker;
more get 429 with ``Retry-After``.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from .. import events
from ..errors import ApiError
from ..storage import RETRY_AFTER_SECONDS, is_unavailable
from .hooks import find_service
from .validation import check, read_json

bp = Blueprint("feedback", __name__)

WINDOW = 60.0          # seconds of the rate limit's window
MAX_CLIENTS = 10_000   # clients the limiter remembers (the oldest windows go first)


class RateLimiter:
    """Entries per client per ``WINDOW`` seconds, in this worker's memory (fixed windows)."""

    def __init__(self, per_window: int):
        self.per_window = per_window
        self._windows: dict[tuple, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def take(self, client: tuple, n: int, now: float | None = None) -> float | None:
        """Count ``n`` entries for ``client``; None when allowed, else the seconds until its window ends."""
        now = time.monotonic() if now is None else now
        with self._lock:
            start, used = self._windows.get(client, (now, 0))
            if now - start >= WINDOW:
                start, used = now, 0
            if used + n > self.per_window:
                return max(1.0, WINDOW - (now - start))
            self._windows[client] = (start, used + n)
            if len(self._windows) > MAX_CLIENTS:
                oldest = min(self._windows, key=lambda k: self._windows[k][0])
                del self._windows[oldest]
        return None


def _limiter() -> RateLimiter:
    ext = current_app.extensions
    limiter = ext.get("her2cds.feedback_limiter")
    if limiter is None:
        limiter = ext.setdefault("her2cds.feedback_limiter",
                                 RateLimiter(current_app.config["SETTINGS"].feedback_per_minute))
    return limiter


def _client() -> tuple[str | None, str | None]:
    """(issuer, tenant) of the authenticated caller; (None, None) with authentication disabled."""
    client = g.get("client") or {}
    return client.get("iss"), client.get("tenant")


def check_owned(store, service_id: str, items: list[dict]) -> None:
    """404 unless every entry names a card issued through ``service_id`` to this client; 400 for a
    suggestion that card did not have."""
    iss, tenant = _client()
    for i, item in enumerate(items):
        card = store.issued_card(item["card"])
        if card is None or card["service_id"] != service_id or card["client_iss"] != iss \
                or card["client_tenant"] != tenant:
            # 404, the same answer for a card never issued and another client's card: a client learns
            # nothing about cards it did not receive.
            raise ApiError(404, f"{str(item['card'])[:100]!r} is not a card this service issued to this client through "
                           f"{service_id!r}; feedback is accepted only from the client that received the card",
                           f"/feedback/{i}/card", "not-found")
        offered = set(card["suggestion_ids"])
        for j, suggestion in enumerate(item.get("acceptedSuggestions") or []):
            if suggestion.get("id") not in offered:
                raise ApiError(400, f"suggestion {str(suggestion.get('id'))[:100]!r} is not one of this card's "
                               "suggestions", f"/feedback/{i}/acceptedSuggestions/{j}/id", "value")


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    find_service(service_id)
    settings = current_app.config["SETTINGS"]
    body = read_json(request, settings.max_json_depth)
    check("cds-feedback", body, "The feedback")
    store = current_app.extensions["her2cds.store"]
    client = _client()
    wait = _limiter().take(client if client != (None, None) else ("addr", request.remote_addr),
                           len(body["feedback"]))
    if wait is not None:
        raise ApiError(429, "Too much feedback from this client; send it again after the time in Retry-After.",
                       None, "throttled", headers={"Retry-After": str(int(wait + 0.999))})
    try:
        check_owned(store, service_id, body["feedback"])
        stored = sum(1 for item in body["feedback"] if store.record_feedback(service_id, item, client[0]))
    except SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        raise ApiError(503, "The feedback could not be stored: the database is unavailable. "
                       "Send it again later; entries already stored are not stored twice.",
                       None, "transient", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    events.feedback_received(service_id, [item.get("outcome", "unknown") for item in body["feedback"]], stored)
    return jsonify({"received": len(body["feedback"]), "stored": stored,
                    "duplicates": len(body["feedback"]) - stored})
