"""HTTP for the SMART app's OAuth exchanges (SMART configuration, token): JSON, a deadline, a byte cap.

The transport is the hooks' one, ``fhir.egress.EgressAdapter``: the host is
resolved once and every address checked against the SMART egress policy
(``oauth.IssuerPolicy.networks``: cloud metadata never, loopback and private
addresses only where allowed), the socket pinned to the checked address, the
whole exchange ended by a watchdog at ``deadline`` seconds, whatever phase it is
in, and a declared body over the cap refused unread.  ``BoundedHttp`` reads
bodies with the same cap, so a huge answer cannot grow the worker either.
The app's FHIR reads go through ``fhir.client.FhirClient`` on the same adapter
(``fetch.fhir_client``).

Nothing here logs; errors carry a short *detail* for the caller to log (an
exception type, a status, a size), never a header, a token or a body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from ..fhir import capped_read
from ..fhir.egress import EgressAdapter, EgressRefused, IPNetwork, ResponseTooLarge

CHUNK = 16 * 1024
CONNECT_TIMEOUT = 3.0  # seconds to open the TCP connection; the deadline bounds the rest


class TransportError(Exception):
    """An exchange did not produce a readable answer; ``detail`` is for the log only."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def bounded_session(adapter: EgressAdapter) -> requests.Session:
    """A Session on ``adapter`` only; no proxies, netrc or cookies from the host or between callers."""
    from http.cookiejar import DefaultCookiePolicy

    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class Answer:
    """A server's answer: the status and the body parsed as JSON (None when it is not JSON)."""

    status: int
    body: object | None


class BoundedHttp:
    """Small JSON exchanges (SMART configuration, token): address check, total deadline and byte cap on each."""

    def __init__(self, deadline: float, max_bytes: int, networks: Sequence[IPNetwork] = (),
                 adapter: EgressAdapter | None = None):
        self.deadline = float(deadline)
        self.max_bytes = int(max_bytes)
        self.networks = tuple(networks)
        self.adapter = adapter or EgressAdapter(pool_maxsize=10, deadline=self.deadline, max_bytes=self.max_bytes)
        self.session = bounded_session(self.adapter)

    def get_json(self, url: str) -> Answer:
        return self._exchange("GET", url)

    def post_form(self, url: str, form: dict) -> Answer:
        return self._exchange("POST", url, data=form)

    def _exchange(self, method: str, url: str, **kwargs) -> Answer:
        ends = time.monotonic() + self.deadline
        try:
            prepared = self.session.prepare_request(
                requests.Request(method, url, headers={"Accept": "application/json"}, **kwargs))
            resp = self.session.send(prepared, timeout=(min(CONNECT_TIMEOUT, self.deadline), self.deadline),
                                     stream=True, allow_redirects=False, networks=self.networks, ends=ends)
        except EgressRefused as exc:
            raise TransportError(f"not contacted: {exc}") from None
        except ResponseTooLarge as exc:
            raise TransportError(str(exc)) from None
        except requests.RequestException as exc:
            raise TransportError(_expired_or(ends, type(exc).__name__)) from None
        except (OSError, ValueError) as exc:  # socket.gaierror from egress's one lookup; a malformed URL
            raise TransportError(f"could not resolve or reach the host ({type(exc).__name__})") from None
        with resp:
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
