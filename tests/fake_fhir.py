"""A FHIR server on loopback with a pluggable behaviour: the one fake for tests and benchmarks.

pytest-httpserver answers one request at a time; the fault tests need a
threaded server whose handlers can stall, drip bytes forever or page without
end, and the fallback benchmark needs one that serves a synthetic patient's
resources after a fixed delay, like an EHR's FHIR round trip.  Both are this
server with a different ``behaviour``; the benchmark turns on the transport
options a load test needs (keep-alive, no Nagle, a deeper listen backlog).

It lives with the tests because it is a test double: the tests must run
without the benchmark's extras, and the benchmark already runs from a checkout
(``python -m benchmarks.run`` imports it as ``tests.fake_fhir``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeFhir:
    """``with FakeFhir(behaviour) as fhir:`` serves ``fhir.base`` until the block ends.

    ``behaviour(handler, path, query)`` writes the whole response itself.
    ``requests`` lists every request as it arrives (``path``, ``query``,
    ``authorization``, ``arrived``), and gets ``seconds`` (time to answer)
    once the behaviour has returned.

    Transport options (defaults suit the fault tests):
    ``keep_alive`` answers HTTP/1.1 so a pooled client reuses connections;
    ``nodelay`` disables Nagle (headers and body go out in two writes, and with
    Nagle on the body waits for the client's delayed ACK, ~40 ms on Linux, an
    artifact of the fake); ``backlog`` is the listen queue (the default of 5
    drops connection bursts under load).
    """

    def __init__(self, behaviour, *, keep_alive: bool = False, nodelay: bool = False, backlog: int = 5):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = nodelay

            def do_GET(self):  # noqa: N802 (http.server naming)
                arrived = time.perf_counter()
                parts = urlsplit(self.path)
                record = {"path": parts.path, "query": parts.query,
                          "authorization": self.headers.get("Authorization"), "arrived": arrived}
                with outer.lock:
                    outer.requests.append(record)
                try:
                    outer.behaviour(self, parts.path, parts.query)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                record["seconds"] = time.perf_counter() - arrived

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = backlog  # read by server_activate()
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A client closing a kept-alive connection is normal; anything else is printed.
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serve loop to look again (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                                       daemon=True, name="fake-fhir")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/fhir"

    def answered(self) -> list[float]:
        """Seconds to answer each completed request."""
        with self.lock:
            return [r["seconds"] for r in self.requests if "seconds" in r]

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def send_json(handler, body, status=200, delay=0.0):
    if delay:
        time.sleep(delay)
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    handler.send_response(status)
    handler.send_header("Content-Type", "application/fhir+json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def empty_bundle(next_url: str | None = None) -> dict:
    b = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


class PatientBehaviour:
    """Serve one patient's resources as a FHIR server would, each answer held ``delay`` seconds.

    The resource type and the ``code=`` / ``value-concept=`` tokens of the
    query pick the resources; ``Patient/<id>`` is an instance read.  Answers
    are cached per query so the fake's own CPU stays out of the measurement.
    """

    def __init__(self, resources: list[dict], searchset, delay: float = 0.0):
        """``searchset(resources) -> Bundle`` wraps each search answer (the caller's Bundle style)."""
        self.resources = resources
        self.searchset = searchset
        self.delay = delay
        self._cache: dict[str, bytes] = {}

    def __call__(self, handler, path: str, query: str) -> None:
        started = time.perf_counter()
        data = self.answer(path, query)
        remaining = self.delay - (time.perf_counter() - started)
        send_json(handler, data, delay=max(remaining, 0.0))

    def answer(self, path: str, query: str) -> bytes:
        key = path + "?" + query
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        rtype = path.rstrip("/").split("/")[-2:]
        params = parse_qs(query)
        if len(rtype) == 2 and rtype[0] == "Patient":  # instance read
            body = next((r for r in self.resources if r["resourceType"] == "Patient"), {})
        else:
            filters: dict[str, set[str]] = {}
            for param, element in (("code", "code"), ("value-concept", "valueCodeableConcept")):
                for value in params.get(param, []):
                    filters.setdefault(element, set()).update(tok.split("|")[-1] for tok in value.split(","))
            body = self.searchset([
                r for r in self.resources if r["resourceType"] == rtype[-1]
                and all({c.get("code") for c in (r.get(element) or {}).get("coding", [])} & codes
                        for element, codes in filters.items())])
        data = json.dumps(body).encode()
        self._cache[key] = data
        return data
