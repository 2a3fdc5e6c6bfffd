"""HTTP for the SMART app with a total deadline and a size cap per exchange.

Why more than ``requests``' timeouts: ``timeout=(connect, read)`` bounds each
wait for a byte, not the exchange.  A server that sends one byte every few
seconds (in the status line, the headers or the body) holds the worker for as
long as it likes; 16 such launches once starved every worker for 75 s.  So
every exchange made through ``DeadlineAdapter`` has a watchdog that shuts its
socket down when the deadline passes, whatever phase the exchange is in, and
``BoundedHttp`` reads bodies with a byte cap, so a huge answer cannot grow the
worker either.

The adapter is a requests transport adapter (requests' split: the Session is
policy, the adapter is transport), so it also serves the app's FHIR reads
through ``fhir.client.FhirClient`` by being mounted on that client's Session.
Connections are used for one exchange only: the watchdog may shut a socket
down late, and that must never hit a connection another exchange reuses.

Nothing here logs; errors carry a short *detail* for the caller to log (an
exception type, a status, a size), never a header, a token or a body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..fhir import capped_read

CHUNK = 16 * 1024
CONNECT_TIMEOUT = 3.0  # seconds to open the TCP connection; the deadline bounds the rest

_current = threading.local()  # the watchdog of the exchange this thread is sending


class TransportError(Exception):
    """An exchange did not produce a readable answer; ``detail`` is for the log only."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class _Watchdog:
    """Shuts the exchange's socket down ``seconds`` after it started (one timer thread per exchange)."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:  # connected after the deadline: end it at once
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked reading ``sock`` (it sees end-of-stream), from any thread.

    The plain socket-level shutdown, also for TLS sockets: it leaves the TLS
    object to the reading thread, which then fails with an ordinary error.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass  # already closed: the exchange is over


class _WatchedConnection:
    def connect(self) -> None:
        super().connect()
        watch = getattr(_current, "watch", None)
        self.her2cds_watch = watch
        if watch is not None:
            watch.attach(self.sock)


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _SingleUsePool:
    def _put_conn(self, conn) -> None:
        """One exchange per connection: close it instead of pooling it, and stop its watchdog."""
        if conn is not None:
            watch = getattr(conn, "her2cds_watch", None)
            if watch is not None:
                watch.cancel()
            conn.close()
        super()._put_conn(None)  # keep the pool's slot


class _HTTPPool(_SingleUsePool, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(_SingleUsePool, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """A transport adapter whose every exchange ends ``total`` seconds after it was sent, body included."""

    def __init__(self, total: float, **kwargs):
        self.total = float(total)
        kwargs.setdefault("max_retries", 0)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        watch = _Watchdog(self.total)
        _current.watch = watch
        try:
            response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                    proxies=proxies)
        except BaseException:
            watch.cancel()
            raise
        finally:
            _current.watch = None
        if not stream:
            watch.cancel()  # the body is read already
        return response


def deadline_session(total: float, pool_maxsize: int = 10) -> requests.Session:
    """A Session whose every exchange is bounded by ``total`` seconds; no proxies or netrc from the host."""
    session = requests.Session()
    session.trust_env = False
    adapter = DeadlineAdapter(total, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class Answer:
    """A server's answer: the status and the body parsed as JSON (None when it is not JSON)."""

    status: int
    body: object | None


class BoundedHttp:
    """Small JSON exchanges (SMART configuration, token): total deadline and byte cap on each."""

    def __init__(self, deadline: float, max_bytes: int):
        self.deadline = float(deadline)
        self.max_bytes = int(max_bytes)
        self.session = deadline_session(self.deadline)

    def get_json(self, url: str) -> Answer:
        return self._exchange("GET", url)

    def post_form(self, url: str, form: dict) -> Answer:
        return self._exchange("POST", url, data=form)

    def _exchange(self, method: str, url: str, **kwargs) -> Answer:
        ends = time.monotonic() + self.deadline
        try:
            resp = self.session.request(method, url, headers={"Accept": "application/json"},
                                        timeout=(min(CONNECT_TIMEOUT, self.deadline), self.deadline),
                                        stream=True, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise TransportError(_expired_or(ends, type(exc).__name__)) from None
        with resp:
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise TransportError(f"Content-Length {declared} is over the {self.max_bytes}-byte cap")
            raw = read_capped(resp, self.max_bytes, ends)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        return Answer(resp.status_code, body)


def read_capped(resp: requests.Response, max_bytes: int, ends: float) -> bytes:
    """The body, or TransportError once it passes ``max_bytes`` or the deadline (then cut short)."""
    try:
        return capped_read.read_capped(resp, max_bytes, ends, CHUNK)
    except capped_read.BodyNotRead as exc:
        if exc.reason == capped_read.OVER_CAP:
            detail = f"body over the {max_bytes}-byte cap"
        elif exc.reason == capped_read.BROKEN:
            detail = _expired_or(ends, f"body: {type(exc.cause).__name__}")
        else:
            detail = "deadline passed while reading the body"
        raise TransportError(detail) from None


def _expired_or(ends: float, detail: str) -> str:
    return "deadline passed" if time.monotonic() >= ends else detail
