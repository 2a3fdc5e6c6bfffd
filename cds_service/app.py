"""The Flask application factory."""

from __future__ import annotations

import logging
import secrets
import time

from flask import Flask, g, jsonify, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from . import config as config_mod
from .errors import ApiError, Issue, operation_outcome
from .logs import request_id
from .storage import RETRY_AFTER_SECONDS, Store, is_unavailable

log = logging.getLogger("her2cds")


def create_app(settings: config_mod.Settings | None = None, **overrides) -> Flask:
    """Build the WSGI app.

    ``settings`` defaults to the ``HER2CDS_*`` environment; keyword overrides
    replace single settings (handy in tests: ``create_app(auth="disabled")``).
    Knowledge (value sets, rulebook) and the database are opened here, once,
    so a broken artifact or an unreachable database fails start-up loudly.
    """
    settings = settings.replace(**overrides) if settings else config_mod.from_env(**overrides)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["SECRET_KEY"] = settings.secret_key or secrets.token_hex(32)
    app.json.sort_keys = False
    # "//" in a path is a typo to report (JSON 404), not an HTML 308 redirect.
    app.url_map.merge_slashes = False

    from .logs import configure_logging
    configure_logging(settings.log_level)

    app.extensions["her2cds.store"] = Store(settings.resolved_database_url())
    from .core.knowledge import load_knowledge
    app.extensions["her2cds.knowledge"] = load_knowledge(settings)
    from .protocol.validation import precompile
    precompile(settings.max_json_depth)  # before gunicorn forks, so workers share the compiled schemas

    origins = "*" if settings.cors_origins.strip() == "*" else [
        o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    CORS(app, origins=origins, methods=["GET", "POST", "OPTIONS"],
         allow_headers=["Content-Type", "Authorization"], max_age=86400)

    _install_request_hooks(app)  # first, so the request id exists before authentication runs
    from .auth import init_auth
    init_auth(app)

    from .protocol.discovery import bp as discovery_bp
    from .protocol.feedback import bp as feedback_bp
    from .protocol.hooks import bp as hooks_bp
    from .ops import bp as ops_bp
    from .protocol.openapi import bp as openapi_bp
    app.register_blueprint(discovery_bp)
    app.register_blueprint(hooks_bp)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(openapi_bp)
    from .metrics import init_app as init_metrics
    init_metrics(app, service_ids=app.extensions["her2cds.knowledge"].services.by_id)
    from .smart import bp as smart_bp
    app.register_blueprint(smart_bp)

    _install_error_handlers(app)
    return app


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def _start():
        request_id()
        g.started = time.perf_counter()

    @app.after_request
    def _finish(resp):
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        resp = jsonify(err.to_json())
        resp.status_code = err.status
        for k, v in err.headers.items():
            resp.headers[k] = v
        if err.status == 503:  # every "try again" says when (RFC 9110 §10.2.3)
            resp.headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        messages = {
            404: "No such endpoint. Discovery is at GET /cds-services.",
            405: f"Method {request.method} is not allowed on {request.path}.",
            413: f"Request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes.",
        }
        message = messages.get(err.code, err.description or err.name)
        location = "body" if err.code == 413 else request.path
        code = {404: "not-found", 405: "not-supported", 413: "too-long"}.get(err.code, "processing")
        resp = jsonify(operation_outcome([Issue(message, location, code)], err.code, message))
        resp.status_code = err.code or 500
        if err.code == 405 and getattr(err, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(err.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        if is_unavailable(err):  # a database outage no handler caught: 503, not 500
            log.error("database unavailable", extra={"request_id": g.get("request_id"),
                                                     "error": type(err).__name__})
            return _api_error(ApiError(503, "The service cannot reach its database right now; try again.",
                                       None, "transient"))
        # Never a traceback to the caller; the log keeps it, keyed by request id.
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        message = "Internal error; the service log has the details under this request id: " + g.get("request_id", "")
        resp = jsonify(operation_outcome([Issue(message, None, "exception")], 500, message))
        resp.status_code = 500
        return resp
