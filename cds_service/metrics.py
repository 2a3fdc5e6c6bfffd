"""Prometheus metrics at ``GET /metrics`` (prometheus_client, multiprocess mode).

Why multiprocess mode: ``her2-cds serve`` runs several gunicorn workers; a
scrape reaches one of them, and each keeps its own counters.  In
multiprocess mode every worker writes its samples to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` and the scraped worker adds up all the files, so
one scrape shows the whole service.  The directory is the operator's
``PROMETHEUS_MULTIPROC_DIR`` if set, else ``<data directory>/prometheus``;
the process that builds the app (gunicorn's master, which preloads it)
empties it at start, before any worker exists, so counts start at zero with
each start.  ``child_exit`` (called from ``gunicorn_conf.py``) tells the library a
worker died; its counter files stay, so totals never go backwards.

Off unless ``HER2CDS_METRICS=enabled``; with ``HER2CDS_METRICS_TOKEN`` set,
a scrape must send ``Authorization: Bearer <token>``.  Metric labels carry
service ids, rule ids and outcomes only: never a patient, a token or a path
a caller made up (an unknown service id is counted as ``unknown``).

The counting is a ``events.Listener`` the app installs when metrics are on;
the hooks, feedback and FHIR client only emit events (``events.py``) and do
not import this module.  With metrics off nothing is installed and every
event is a no-op.
"""

from __future__ import annotations

import hmac
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterable

from flask import Blueprint, current_app, g, request

from . import events
from .errors import ApiError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_lock = threading.Lock()
_state: dict = {"dir": None, "ours": None, "metrics": None}  # this process's directory and metrics


def multiproc_dir(settings) -> Path:
    """Where the workers' sample files live: the operator's PROMETHEUS_MULTIPROC_DIR, else the data dir's."""
    env = os.environ.get(MULTIPROC_ENV)
    if env and env != _state["ours"]:
        return Path(env)
    return settings.resolved_data_dir() / "prometheus"


def _enable(settings) -> dict:
    """Point prometheus_client at the multiprocess directory and create the metrics.

    Once per process and directory (a test process that builds apps on
    several directories re-points the library each time).  The metrics are
    not registered in the default registry: in multiprocess mode a scrape
    reads the files, never a registry.
    """
    with _lock:
        directory = multiproc_dir(settings)
        if _state["metrics"] is not None and _state["dir"] == directory:
            return _state["metrics"]
        if os.environ.get(MULTIPROC_ENV) != str(directory):
            # Chosen here, so owned here: start from an empty directory (stale files of a
            # previous run would be added to this run's counts).
            shutil.rmtree(directory, ignore_errors=True)
            _state["ours"] = str(directory)
            os.environ[MULTIPROC_ENV] = str(directory)  # inherited by the forked workers
        directory.mkdir(parents=True, exist_ok=True)
        from prometheus_client import Counter, Histogram, values
        # The library picks its value class (memory-mapped files in the directory named by the
        # variable) when first imported; pick again now that the variable is what we want.
        values.ValueClass = values.get_value_class()
        labels = {"registry": None}
        _state["dir"] = directory
        _state["metrics"] = {
            "http_requests": Counter("her2cds_http_requests", "HTTP requests answered, by route and status",
                                     ["route", "method", "status"], **labels),
            "http_duration": Histogram("her2cds_http_request_duration_seconds", "HTTP request duration, by route",
                                       ["route"], buckets=LATENCY_BUCKETS, **labels),
            "hook_requests": Counter("her2cds_hook_invocations", "CDS service calls, by service and outcome "
                                     "(cards, no-cards, or the error's issue code)", ["service", "outcome"], **labels),
            "hook_duration": Histogram("her2cds_hook_duration_seconds", "CDS service call duration, by service "
                                       "and outcome", ["service", "outcome"], buckets=LATENCY_BUCKETS, **labels),
            "cards": Counter("her2cds_cards_issued", "Cards sent, by service and rule", ["service", "rule"], **labels),
            "fhir": Counter("her2cds_fhir_fallback_queries", "Queries sent to the client's FHIR server for data "
                            "it did not prefetch, by result (ok or failed)", ["result"], **labels),
            "feedback": Counter("her2cds_feedback_received", "Feedback entries received, by service and outcome "
                                "(accepted or overridden)", ["service", "outcome"], **labels),
            "feedback_stored": Counter("her2cds_feedback_stored", "Feedback entries stored (new, not duplicates), "
                                       "by service", ["service"], **labels),
        }
        return _state["metrics"]


# The methods a label may name: anything else is counted as "other", so a client sending made-up
# methods cannot grow the scrape without bound (issue 21: 20,000 methods, 57 KB -> 1.86 MB).
METHOD_LABELS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHOD_LABELS else "other"


def init_app(app, service_ids: Iterable[str] = ()) -> None:
    """Enable metrics for ``app`` when the settings say so: the route, per-request counting, and the
    listener that counts hook calls, feedback and FHIR queries (services outside ``service_ids``
    are counted as ``unknown``)."""
    settings = app.config["SETTINGS"]
    app.register_blueprint(bp)
    if not settings.metrics_enabled:
        return
    metrics = _enable(settings)
    app.extensions["her2cds.metrics"] = metrics
    events.install(app, Counting(metrics, frozenset(service_ids)))

    @app.after_request
    def _count(resp):
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics["http_requests"].labels(route, method_label(request.method), str(resp.status_code)).inc()
        started = g.get("started")  # set by the app's first before_request (app.py)
        if started is not None:
            metrics["http_duration"].labels(route).observe(time.perf_counter() - started)
        return resp


class Counting(events.Listener):
    """The events as Prometheus samples; labels are service ids, rule ids and outcomes only."""

    def __init__(self, metrics: dict, service_ids: frozenset[str]):
        self.metrics, self.service_ids = metrics, service_ids

    def _service(self, service_id: str) -> str:
        return service_id if service_id in self.service_ids else "unknown"

    def hook_invocation(self, service_id, outcome, seconds, rule_ids) -> None:
        service = self._service(service_id)
        self.metrics["hook_requests"].labels(service, outcome).inc()
        self.metrics["hook_duration"].labels(service, outcome).observe(seconds)
        for rule in rule_ids:
            self.metrics["cards"].labels(service, rule).inc()

    def feedback_received(self, service_id, outcomes, stored) -> None:
        service = self._service(service_id)
        for outcome in outcomes:
            self.metrics["feedback"].labels(service, outcome).inc()
        self.metrics["feedback_stored"].labels(service).inc(stored)

    def fhir_queries(self, results) -> None:
        for result in results:
            self.metrics["fhir"].labels("ok" if result.ok else "failed").inc()


def child_exit(server, worker) -> None:
    """gunicorn ``child_exit`` hook: the library's per-worker clean-up (its live-gauge files)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    settings = current_app.config["SETTINGS"]
    if not settings.metrics_enabled:
        raise ApiError(404, "Metrics are disabled on this instance (HER2CDS_METRICS=enabled turns them on).",
                       "/metrics", "not-found")
    if settings.metrics_token:
        sent = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.metrics_token}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise ApiError(401, "Metrics need Authorization: Bearer <HER2CDS_METRICS_TOKEN>", "header:Authorization",
                           "login", headers={"WWW-Authenticate": 'Bearer realm="her2-cds-metrics"'})
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return current_app.response_class(generate_latest(registry), mimetype=None,
                                      headers={"Content-Type": CONTENT_TYPE_LATEST})
