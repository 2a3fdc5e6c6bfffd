"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the database answers and the knowledge is loaded."""
    checks = {}
    try:
        current_app.extensions["her2cds.store"].ping()
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is a probe
        checks["database"] = f"unavailable: {type(exc).__name__}"
    knowledge = current_app.extensions.get("her2cds.knowledge")
    checks["rulebook"] = "ok" if knowledge is not None and knowledge.rulebook is not None else "not loaded"
    checks["terminology"] = "ok" if knowledge is not None and knowledge.terminology is not None else "not loaded"
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify({"status": "ready" if ready else "not ready", "checks": checks})
    resp.status_code = 200 if ready else 503
    return resp
