"""``POST /cds-services/{id}/feedback``: what the clinician did with a card.

Stored durably and idempotently: the same entry reported twice (the spec
allows it) is stored once.  The card uuid links feedback to the rule that
issued the card (see ``storage.issued_cards``), which is what the
``her2-cds feedback report`` command reads.

When the database cannot take the write the answer is 503 with
``Retry-After``, never a 500: the client may simply send the same body again,
and entries already stored by the failed attempt count as duplicates then.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from .. import events
from ..errors import ApiError
from ..storage import RETRY_AFTER_SECONDS, is_unavailable
from .hooks import find_service
from .validation import check, read_json

bp = Blueprint("feedback", __name__)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    find_service(service_id)
    settings = current_app.config["SETTINGS"]
    body = read_json(request, settings.max_json_depth)
    check("cds-feedback", body, "The feedback")
    store = current_app.extensions["her2cds.store"]
    try:
        stored = sum(1 for item in body["feedback"] if store.record_feedback(service_id, item))
    except SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        raise ApiError(503, "The feedback could not be stored: the database is unavailable. "
                       "Send it again later; entries already stored are not stored twice.",
                       None, "transient", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    events.feedback_received(service_id, [item.get("outcome", "unknown") for item in body["feedback"]], stored)
    return jsonify({"received": len(body["feedback"]), "stored": stored,
                    "duplicates": len(body["feedback"]) - stored})
