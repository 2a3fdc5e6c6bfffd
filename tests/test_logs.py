"""The log format: one JSON object per line, the same for the app and gunicorn, and nothing secret in it."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import Logger

from cds_service.logs import AccessFields, JsonFormatter, redact

JWT = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"


def _format(record: logging.LogRecord) -> dict:
    return json.loads(JsonFormatter().format(record))


def test_app_lines_have_the_service_fields_and_extras():
    record = logging.makeLogRecord({"name": "her2cds.hooks", "levelname": "INFO", "levelno": 20,
                                    "msg": "cards for %s", "args": ("p1",), "request_id": "r-1"})
    line = _format(record)
    assert list(line)[:4] == ["ts", "level", "logger", "msg"]
    assert line["msg"] == "cards for p1" and line["request_id"] == "r-1" and line["ts"].endswith("Z")


def test_jwts_and_bearer_credentials_are_masked_everywhere():
    assert JWT not in redact(f"token {JWT} seen")
    assert "abc.def" not in redact("Authorization: Bearer abc.def")
    record = logging.makeLogRecord({"name": "her2cds", "msg": "x", "client": f"Bearer {JWT}"})
    assert JWT not in json.dumps(_format(record))


def test_masking_skips_no_text_it_would_mask():
    """``redact`` runs each pattern only where it can match; the answer is the patterns' own everywhere."""
    from cds_service.logs import REDACTED, _BEARER, _JWT, _QUERY

    def reference(text, query_strings=False):
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", _JWT.sub(REDACTED, text))
        return _QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", text) if query_strings else text

    words = ["", "plain", JWT, f"x{JWT}y", "Bearer abc", "BEARER abc", "bEaReR\tabc", "bearer", "bearerx y",
             "Authorization: Bearer abc.def", "é bearer ü", "\u212aBearer k", "ｂearer x", "eyJ", "eyJa.b",
             "/p?q=1", "bearer  eyJa.bc.d", "naïve Bearer 😀tok"]
    for a in words:
        for b in words:
            text = f"{a} {b}"
            for q in (False, True):
                assert redact(text, query_strings=q) == reference(text, q), (text, q)


def test_gunicorn_messages_lose_their_query_strings():
    record = logging.makeLogRecord({"name": "gunicorn.error", "msg": "Error handling request /smart/callback?code=C&state=S"})
    assert _format(record)["msg"] == "Error handling request /smart/callback?[redacted]"


def test_access_lines_carry_request_fields_and_no_header_or_query():
    """A real gunicorn access record, rewritten by AccessFields."""
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(_format(record))
    handler.addFilter(AccessFields())
    glog = Logger(Config())
    glog.access_log.handlers = [handler]
    glog.access_log.propagate = False
    glog.cfg.set("accesslog", "-")
    glog._access_log_enabled = True
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/smart/callback?code=SECRET", "PATH_INFO": "/smart/callback",
               "QUERY_STRING": "code=SECRET", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    resp = SimpleNamespace(status="302 FOUND", sent=0, headers=[("X-Request-Id", "r-9")])
    req = SimpleNamespace(headers=[("AUTHORIZATION", f"Bearer {JWT}")])
    glog.access(resp, req, environ, timedelta(milliseconds=12, microseconds=500))
    (line,) = seen
    assert {k: line[k] for k in ("request_id", "method", "path", "status", "duration_ms")} == {
        "request_id": "r-9", "method": "GET", "path": "/smart/callback", "status": 302, "duration_ms": 12.5}
    assert "SECRET" not in json.dumps(line) and JWT not in json.dumps(line)


def test_a_line_is_ascii_whatever_text_it_holds():
    record = logging.makeLogRecord({"name": "her2cds", "msg": "LVEF ≥ 50 % – µmol/L", "problem": "naïve \u2028"})
    text = JsonFormatter().format(record)
    assert text.isascii() and "\n" not in text
    line = json.loads(text)
    assert line["msg"] == "LVEF ≥ 50 % – µmol/L" and line["problem"] == "naïve \u2028"


def test_an_exception_and_odd_values_are_still_written():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        exc = sys.exc_info()
    record = logging.makeLogRecord({"name": "her2cds", "msg": "failed", "exc_info": exc,
                                    "took": timedelta(seconds=2), "kinds": {"a", }, "raw": b"\x00x"})
    line = _format(record)
    assert "ValueError: boom" in line["exc"] and line["took"] and line["kinds"] and "raw" in line


def test_a_value_orjson_cannot_write_does_not_lose_the_line():
    record = logging.makeLogRecord({"name": "her2cds", "msg": "odd", "count": 2 ** 70, "text": "lone \ud800"})
    text = JsonFormatter().format(record)
    assert text.isascii()
    line = json.loads(text)
    assert line["msg"] == "odd" and line["count"] == 2 ** 70 and line["text"] == "lone \ud800"
