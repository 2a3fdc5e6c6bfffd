"""A local FHIR server that answers every query after a fixed delay (the fallback benchmark).

It serves one synthetic patient's resources per prefetch query: the resource
type and the ``code=`` filter of the query pick the resources, as a real
server would.  Each answer is held ``delay`` seconds (50 ms by default) to
stand in for an EHR's FHIR round trip; the server records how long it took
to answer each query so the benchmark can compare the service's latency with
the slowest single query of that call.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .patients import searchset


class DelayedFhir:
    def __init__(self, resources: list[dict], delay: float = 0.05):
        self.delay = delay
        self.resources = resources
        self.lock = threading.Lock()
        self.durations: list[tuple[float, float]] = []  # (arrival, seconds to answer)
        self._cache: dict[str, bytes] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the service's pooled Session expects
            # Headers and body go out in two writes; with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms on Linux), which would be an artifact of this fake, not of the service.
            disable_nagle_algorithm = True

            def do_GET(self):  # noqa: N802
                started = time.perf_counter()
                data = outer.answer(self.path)
                remaining = outer.delay - (time.perf_counter() - started)
                if remaining > 0:
                    time.sleep(remaining)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                with outer.lock:
                    outer.durations.append((started, time.perf_counter() - started))

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # read by server_activate(); the default backlog of 5 drops bursts
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-fhir")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/fhir"

    def answer(self, raw_path: str) -> bytes:
        cached = self._cache.get(raw_path)
        if cached is not None:
            return cached
        parts = urlsplit(raw_path)
        rtype = parts.path.rstrip("/").split("/")[-2:]
        query = parse_qs(parts.query)
        if len(rtype) == 2 and rtype[0] == "Patient":  # instance read
            body = next((r for r in self.resources if r["resourceType"] == "Patient"), {})
        else:
            want = rtype[-1]
            filters = {}
            for param, element in (("code", "code"), ("value-concept", "valueCodeableConcept")):
                for value in query.get(param, []):
                    filters.setdefault(element, set()).update(tok.split("|")[-1] for tok in value.split(","))
            match = []
            for r in self.resources:
                if r["resourceType"] != want:
                    continue
                if any(not ({c.get("code") for c in (r.get(element) or {}).get("coding", [])} & codes)
                       for element, codes in filters.items()):
                    continue
                match.append(r)
            body = searchset(match)
        data = json.dumps(body).encode()
        self._cache[raw_path] = data
        return data

    def reset(self) -> None:
        with self.lock:
            self.durations.clear()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
