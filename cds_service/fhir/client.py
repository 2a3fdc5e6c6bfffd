"""Reads from the EHR's FHIR server, within a hard time budget.

Why this is more than ``requests.get``: a CDS call has about half a second in
total, and the FHIR server is someone else's.  So queries run in parallel on
one pooled ``requests.Session``; every read is bounded by the connect/read
timeouts *and* by a deadline shared by the whole request; bodies are streamed
with a size cap so a huge or never-ending response cannot hold a worker;
``next`` links are followed up to a bound and only to the same server, so the
bearer token is never sent anywhere else.  Nothing here logs the token.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger("her2cds.fhir")

MAX_RESPONSE_BYTES = 20_000_000
CHUNK = 64 * 1024


@dataclass
class FetchResult:
    """What one prefetch query produced.  ``error`` set means incomplete."""

    key: str
    resources: list[dict] = field(default_factory=list)
    error: str | None = None
    pages: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class FhirError(Exception):
    """A FHIR read failed; the message is safe to show (no token, no body)."""


class FhirClient:
    """One per process: a pooled Session and a worker pool for parallel queries."""

    def __init__(self, settings):
        self.connect_timeout = settings.fhir_connect_timeout
        self.read_timeout = settings.fhir_read_timeout
        self.max_pages = settings.fhir_max_pages
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.trust_env = False  # no proxies or netrc credentials picked up from the host
        self.pool = ThreadPoolExecutor(max_workers=settings.fhir_max_workers, thread_name_prefix="fhir")

    # -- public ---------------------------------------------------------------
    def fetch_all(self, base: str, token: str | None, queries: dict[str, str], deadline: float) -> dict[str, FetchResult]:
        """Run every ``key -> relative query`` in parallel; never raises, never outlives ``deadline``."""
        if not queries:
            return {}
        futures = {
            self.pool.submit(self._fetch_one, key, base, token, query, deadline): key
            for key, query in queries.items()
        }
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        results: dict[str, FetchResult] = {}
        for fut in done:
            results[futures[fut]] = fut.result()
        for fut in pending:
            fut.cancel()
            key = futures[fut]
            results[key] = FetchResult(key, error="the FHIR server did not answer within the time budget")
        return results

    def continue_bundle(self, key: str, base: str, token: str | None, bundle: dict, deadline: float) -> FetchResult:
        """Follow ``next`` links of a Bundle the client sent (a paginated prefetch)."""
        result = FetchResult(key, resources=bundle_resources(bundle), pages=1)
        next_url = next_link(bundle)
        return self._follow(result, base, token, next_url, deadline)

    # -- internals --------------------------------------------------------------
    def _fetch_one(self, key: str, base: str, token: str | None, query: str, deadline: float) -> FetchResult:
        result = FetchResult(key)
        url = urljoin(base.rstrip("/") + "/", query)
        try:
            body = self.get_json(url, base, token, deadline)
        except FhirError as exc:
            result.error = str(exc)
            return result
        result.pages = 1
        if body.get("resourceType") == "Bundle":
            result.resources = bundle_resources(body)
            return self._follow(result, base, token, next_link(body), deadline)
        if body.get("resourceType") == "OperationOutcome":
            result.error = "the FHIR server answered with an OperationOutcome"
            return result
        result.resources = [body]
        return result

    def _follow(self, result: FetchResult, base: str, token: str | None, next_url: str | None, deadline: float) -> FetchResult:
        while next_url:
            if result.pages >= self.max_pages:
                result.error = f"more than {self.max_pages} pages; the rest was not read"
                break
            try:
                page = self.get_json(next_url, base, token, deadline)
            except FhirError as exc:
                result.error = f"page {result.pages + 1}: {exc}"
                break
            result.pages += 1
            result.resources.extend(bundle_resources(page))
            next_url = next_link(page)
        return result

    def get_json(self, url: str, base: str, token: str | None, deadline: float) -> dict:
        """GET one FHIR URL on ``base``'s server; raise FhirError with a safe message."""
        if not same_server(url, base):
            raise FhirError("a paging link pointed to another server; not followed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirError("time budget exhausted before the query was sent")
        headers = {"Accept": "application/fhir+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path = urlsplit(url).path
        try:
            resp = self.session.get(
                url,
                headers=headers,
                timeout=(min(self.connect_timeout, remaining), min(self.read_timeout, remaining)),
                stream=True,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise FhirError(f"timed out reading {path}") from None
        except requests.ConnectionError:
            raise FhirError(f"could not connect to the FHIR server for {path}") from None
        except requests.RequestException as exc:
            raise FhirError(f"request for {path} failed ({type(exc).__name__})") from None
        with resp:
            if resp.status_code != 200:
                raise FhirError(_status_message(resp.status_code, path))
            raw = _read_capped(resp, deadline, path)
        try:
            body = json.loads(raw)
        except ValueError:
            raise FhirError(f"{path} returned invalid JSON") from None
        if not isinstance(body, dict):
            raise FhirError(f"{path} returned JSON that is not a FHIR resource")
        return body


def _read_capped(resp: requests.Response, deadline: float, path: str) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in resp.iter_content(CHUNK):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise FhirError(f"{path} returned more than {MAX_RESPONSE_BYTES} bytes")
            if time.monotonic() > deadline:
                raise FhirError(f"timed out reading {path}")
            chunks.append(chunk)
    except requests.RequestException:
        raise FhirError(f"timed out or disconnected reading {path}") from None
    return b"".join(chunks)


def _status_message(status: int, path: str) -> str:
    reasons = {
        401: "the FHIR server rejected the access token (401)",
        403: "the access token does not allow this read (403)",
        404: "not found on the FHIR server (404)",
        429: "the FHIR server is rate limiting (429)",
    }
    if status in reasons:
        return f"{path}: {reasons[status]}"
    if 300 <= status < 400:
        return f"{path}: the FHIR server redirected ({status}); not followed"
    if status >= 500:
        return f"{path}: the FHIR server failed ({status})"
    return f"{path}: unexpected HTTP status {status}"


def same_server(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def bundle_resources(bundle: dict) -> list[dict]:
    """Resources of a Bundle's entries, skipping entries that are not objects.

    Search-outcome OperationOutcomes (``search.mode = outcome``) are dropped.
    """
    out = []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return out
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        res = entry.get("resource")
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
            search = entry.get("search")
            if isinstance(search, dict) and search.get("mode") == "outcome":
                continue
            out.append(res)
    return out


def next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None
