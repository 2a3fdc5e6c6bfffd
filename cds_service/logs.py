"""Structured JSON logs.

One JSON object per line.  Fields passed with ``extra=`` are kept; nothing
else from the request is logged, so tokens and clinical content stay out of
the log by construction.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


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
