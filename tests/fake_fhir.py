"""A misbehaving FHIR server on loopback, for fault tests.

pytest-httpserver answers one request at a time; the fault tests need a
threaded server whose handlers can stall, drip bytes forever or page without
end, so this is a small ThreadingHTTPServer with a pluggable behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FakeFhir:
    def __init__(self, behaviour):
        """behaviour(handler, path, query) -> None; it writes the response itself."""
        self.behaviour = behaviour
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                parts = urlsplit(self.path)
                outer.requests.append({"path": parts.path, "query": parts.query,
                                       "authorization": self.headers.get("Authorization")})
                try:
                    outer.behaviour(self, parts.path, parts.query)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/fhir"

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
