"""``POST /cds-services/{id}/feedback``: what the clinician did with a card.

Stored durably and idempotently: the same entry reported twice (the spec
allows it) is stored once.  The card uuid links feedback to the rule that
issued the card (see ``storage.issued_cards``), which is what the
``her2-cds feedback report`` command reads.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

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
    stored = sum(1 for item in body["feedback"] if store.record_feedback(service_id, item))
    return jsonify({"received": len(body["feedback"]), "stored": stored,
                    "duplicates": len(body["feedback"]) - stored})
