"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app, jsonify

from .storage import StoreUnavailable

bp = Blueprint("ops", __name__)
_probe_lock = threading.Lock()


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
    checks = {"database": _database_check()}
    knowledge = current_app.extensions.get("her2cds.knowledge")
    checks["rulebook"] = "ok" if knowledge is not None and knowledge.rulebook is not None else "not loaded"
    checks["terminology"] = "ok" if knowledge is not None and knowledge.terminology is not None else "not loaded"
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify({"status": "ready" if ready else "not ready", "checks": checks})
    resp.status_code = 200 if ready else 503
    return resp


def _database_check() -> str:
    """The write probe's verdict, reused for ``readyz_probe_cache_seconds`` (issue 21).

    ``/readyz`` is anonymous: 1,059 probes a second each writing a row raised hook
    latency fourfold.  One worker probes at most once per interval; calls in
    between, or while a probe runs, get the last verdict.  A failing database is
    still reported within the interval, and a real write that fails turns the
    next probe red (``Store.check_writable``).
    """
    ext = current_app.extensions
    ttl = current_app.config["SETTINGS"].readyz_probe_cache_seconds
    cached = ext.get("her2cds.readyz_probe")
    now = time.monotonic()
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    if not _probe_lock.acquire(blocking=cached is None):
        return cached[1]  # another thread is probing: its verdict is as fresh as this one would be
    try:
        try:
            ext["her2cds.store"].check_writable()
            verdict = "ok"
        except StoreUnavailable as exc:
            verdict = f"unavailable: {exc}"
        except Exception as exc:  # report, never raise: this is a probe
            verdict = f"unavailable: {type(exc).__name__}"
        ext["her2cds.readyz_probe"] = (time.monotonic(), verdict)
        return verdict
    finally:
        _probe_lock.release()
