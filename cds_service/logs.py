"""Structured JSON logs: one stream, one format, for the app and for gunicorn.

One JSON object per line on stderr: ``ts``, ``level``, ``logger``, ``msg``,
then whatever the caller passed with ``extra=``.  Nothing else from the
request is logged, so tokens and clinical content stay out of the log by
construction; as a second line of defence every string that looks like a JWT
or a bearer credential is masked, and gunicorn's messages lose their query
strings (the SMART callback carries ``code`` and ``state`` there).

The JSON itself is python-json-logger's (a maintained formatter that handles
``extra`` fields, exceptions and non-JSON values), written by its orjson
formatter: a hook call's line took 13 µs to format with ``json`` and 5 with
orjson, and every hook call writes one.  Lines stay ASCII as before (a line
with other text is written again with ``\\uXXXX`` escapes); gunicorn's error and access
logs use the same formatter through ``logconfig_dict`` (``logconfig()`` below,
used by ``cds_service/gunicorn_conf.py``).  Access lines are rewritten by
``AccessFields`` into ``request_id, method, path, status, duration_ms``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Mapping

import orjson
from pythonjsonlogger.orjson import OrjsonFormatter as _JsonFormatter

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+")
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")
REDACTED = "[redacted]"


def redact(text: str, *, query_strings: bool = False) -> str:
    """``text`` with JWTs and ``Bearer`` credentials masked (and query strings, if asked).

    Every field of every log line passes here, so each pattern runs only where it can match:
    a JWT needs the literal ``eyJ``; in ASCII text "bearer" in any case is ``bearer`` once
    lowered (other text goes through the pattern as before).
    """
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if not text.isascii() or "bearer" in text.lower():
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if query_strings:
        text = _QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", text)
    return text


class JsonFormatter(_JsonFormatter):
    """The service's line format: ``{"ts", "level", "logger", "msg", ...extra}``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {
            "levelname": "level", "name": "logger", "message": "msg", "exc_info": "exc"})
        super().__init__(*(args or ("%(levelname)s %(name)s %(message)s",)), **kwargs)

    def add_fields(self, log_data, record, message_dict):
        log_data["ts"] = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                          + f".{int(record.msecs):03d}Z")
        super().add_fields(log_data, record, message_dict)

    def jsonify_log_record(self, log_data) -> str:
        try:
            line = super().jsonify_log_record(log_data)
        except (TypeError, orjson.JSONEncodeError):  # an integer beyond 64 bits, a lone surrogate: never a lost line
            return json.dumps(log_data, default=str, separators=(",", ":"))
        return line if line.isascii() else json.dumps(json.loads(line), separators=(",", ":"))

    def process_log_record(self, log_data):
        from_gunicorn = str(log_data.get("logger", "")).startswith("gunicorn")
        for key, value in log_data.items():
            if isinstance(value, str):
                log_data[key] = redact(value, query_strings=from_gunicorn)
        return log_data


class AccessFields(logging.Filter):
    """Turn a gunicorn access record into ``request_id, method, path, status, duration_ms`` fields.

    gunicorn hands its access logger a dict of "atoms" (request line, headers,
    timings).  Only these fields are kept: the path without its query string,
    the response's ``X-Request-Id`` (the id the app logs and audits under),
    and no request header at all, so no ``Authorization`` value.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args
        if isinstance(atoms, Mapping):
            status = atoms["s"]
            record.request_id = atoms["{x-request-id}o"]
            record.method = atoms["m"]
            record.path = atoms["U"]
            record.status = int(status) if str(status).isdigit() else status
            record.duration_ms = round(int(atoms["D"]) / 1000, 3) if str(atoms["D"]).isdigit() else None
            record.remote_addr = atoms["h"]
            record.msg = "%s %s %s"
            record.args = (record.method, record.path, record.status)
        return True


def logconfig() -> dict:
    """A ``logging.config.dictConfig`` for gunicorn: its error and access logs and the root, all JSON on stderr.

    No level for ``gunicorn.error``: gunicorn sets it from its ``loglevel``
    setting just before applying this, so ``--log-level`` keeps working.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "filters": {"access": {"()": f"{__name__}.AccessFields"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
                       "filters": ["access"]},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    root = logging.getLogger("her2cds")
    root.setLevel(level.upper())
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.propagate = False
    _configured = True


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # the audit table's request_id column holds 64


def request_id() -> str:
    """This request's id: the caller's ``X-Request-Id`` when it is a sane token, else a new one.

    Set once per request on ``flask.g`` and echoed in the response, the log
    lines and the audit row, so an integrator can follow one call through.
    """
    from flask import g, request

    rid = g.get("request_id")
    if not rid:
        supplied = request.headers.get("X-Request-Id") or ""
        rid = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        g.request_id = rid
    return rid
