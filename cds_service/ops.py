"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from .storage import StoreUnavailable

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the database takes writes and the knowledge is loaded.

    *Writes*, not reads: every authenticated hook call writes its token id
    and audit row, so a database that answers SELECT but is read-only or
    full serves no call at all (``Store.check_writable`` says how it knows).
    """
    checks = {}
    try:
        current_app.extensions["her2cds.store"].check_writable()
        checks["database"] = "ok"
    except StoreUnavailable as exc:
        checks["database"] = f"unavailable: {exc}"
    except Exception as exc:  # report, never raise: this is a probe
        checks["database"] = f"unavailable: {type(exc).__name__}"
    knowledge = current_app.extensions.get("her2cds.knowledge")
    checks["rulebook"] = "ok" if knowledge is not None and knowledge.rulebook is not None else "not loaded"
    checks["terminology"] = "ok" if knowledge is not None and knowledge.terminology is not None else "not loaded"
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify({"status": "ready" if ready else "not ready", "checks": checks})
    resp.status_code = 200 if ready else 503
    return resp
