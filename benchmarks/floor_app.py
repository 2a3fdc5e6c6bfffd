"""The floor: the same stack (Flask behind the same gunicorn settings) doing the least a hook can do.

It parses the request JSON and answers one fixed card.  Whatever the real
service spends above this is the cost of its own work (schema check, data
gathering, criteria, rules, cards, database writes).

Serve it as the service is served:
``gunicorn -k gthread -w 2 --threads 8 --preload benchmarks.floor_app:app``.
"""

from __future__ import annotations

import uuid

from flask import Flask, jsonify, request

CARD = {
    "summary": "Fixed card from the benchmark floor app",
    "indicator": "info",
    "source": {"label": "her2-cds benchmark floor"},
}


def create_app() -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False

    @app.post("/cds-services/<service_id>")
    def invoke(service_id: str):
        body = request.get_json()
        if not isinstance(body, dict):
            return jsonify({"error": "not a JSON object"}), 400
        return jsonify({"cards": [dict(CARD, uuid=str(uuid.uuid4()))]})

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return app


app = create_app()
