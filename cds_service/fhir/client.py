"""Reads from the EHR's FHIR server, within a hard time budget.

Why this is more than ``requests.get``: a CDS call has about half a second in
total, and the FHIR server is someone else's.  So queries run in parallel on
one pooled ``requests.Session``; every read is bounded by the connect/read
timeouts *and* by a deadline shared by the whole request; bodies are streamed
with a size cap so a huge or never-ending response cannot hold a worker;
``next`` links are followed up to a bound and only to the same server, so the
bearer token is never sent anywhere else.  Every read goes through
``egress.EgressAdapter``: the host is resolved once, each address checked
against the caller's ``EgressPolicy`` networks, and the socket opened to exactly
those addresses, and a watchdog ends each exchange at the request's deadline,
body included, so a dripping server cannot hold a query thread past the
budget.  The Session refuses every cookie (its jar would otherwise carry
one caller's cookies to the next) and reads no proxy or netrc settings.

Error texts in ``FetchResult.error`` / ``FhirError`` are *details for the log*
(which path, which status, which network failure).  The caller sees only
``PUBLIC_ERROR``: telling a 404 from a refused connection from a timeout per
target would make the service a port scanner (issue 13).  Nothing here logs
the token.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

from http.cookiejar import DefaultCookiePolicy

import requests
from requests.adapters import HTTPAdapter

from ..core.criteria import Finding
from ..core.parse import bundle_resources, strict_json_loads
from . import capped_read
from .egress import EgressAdapter, EgressPolicy, EgressRefused, ResponseTooLarge

log = logging.getLogger("her2cds.fhir")

#: The one text a client sees for any failed read, whatever happened on the network.
PUBLIC_ERROR = "it could not be read from fhirServer (the service log has the details under this request's id)"

MAX_RESPONSE_BYTES = 20_000_000
CHUNK = 64 * 1024

#: A FHIR id (R4 ``id``: 1-64 of ``[A-Za-z0-9\-.]``) that is also safe as a URL path segment:
#: ``.`` and ``..`` (any run of dots) match the R4 pattern but would walk up the path.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_fhir_id(value) -> bool:
    """Whether ``value`` may be put into a FHIR URL path as a resource id (``Patient/{id}``)."""
    return isinstance(value, str) and bool(_FHIR_ID.fullmatch(value)) and value.strip(".") != ""


@dataclass
class FetchResult:
    """What one prefetch query produced.  ``error`` set means incomplete."""

    key: str
    resources: list[dict] = field(default_factory=list)
    error: str | None = None         # the detail, for the log
    public_error: str | None = None  # what the caller may be told
    status: int | None = None        # the HTTP status of a refused query (400, 403, 404, 501, ...)
    pages: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, exc: FhirError, prefix: str = "") -> FetchResult:
        self.error = prefix + str(exc)
        self.public_error = exc.public
        return self


class FhirError(Exception):
    """A FHIR read failed.  ``str()`` is the detail for the log (no token, no body);
    ``public`` is what the caller may see: ``PUBLIC_ERROR`` unless the cause lies in
    the content the server sent rather than in the network.  ``status`` is the HTTP
    status when the server answered with an error."""

    def __init__(self, detail: str, public: str = PUBLIC_ERROR, status: int | None = None):
        super().__init__(detail)
        self.public = public
        self.status = status


class FhirClient:
    """One per process: a pinned, pooled transport and a worker pool for parallel queries."""

    def __init__(self, settings, transport: HTTPAdapter | None = None,
                 on_results: Callable[[Iterable[FetchResult]], None] | None = None):
        """``on_results`` hears every round of ``fetch_all`` (the app passes its metrics listener)."""
        self.on_results = on_results
        self.connect_timeout = settings.fhir_connect_timeout
        self.read_timeout = settings.fhir_read_timeout
        self.max_pages = settings.fhir_max_pages
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or netrc credentials picked up from the host
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # no cookies kept
        transport = transport or EgressAdapter(pool_maxsize=32, max_bytes=MAX_RESPONSE_BYTES)
        self.session.mount("http://", transport)
        self.session.mount("https://", transport)
        self.pool = ThreadPoolExecutor(max_workers=settings.fhir_max_workers, thread_name_prefix="fhir")

    # -- public ---------------------------------------------------------------
    def fetch_all(self, base: str, token: str | None, queries: dict[str, str], deadline: float,
                  policy: EgressPolicy = EgressPolicy()) -> dict[str, FetchResult]:
        """Run every ``key -> relative query`` in parallel; never raises, never outlives ``deadline``.

        ``policy`` is the caller's: its networks decide which resolved addresses may be contacted
        (hook calls pass theirs from ``prefetch.gather``, the SMART app its own); by default
        public addresses only.
        """
        if not queries:
            return {}
        futures = {
            self.pool.submit(self._fetch_one, key, base, token, query, deadline, policy): key
            for key, query in queries.items()
        }
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        results: dict[str, FetchResult] = {}
        for fut in done:
            results[futures[fut]] = fut.result()
        for fut in pending:
            fut.cancel()
            key = futures[fut]
            results[key] = FetchResult(key).fail(FhirError("the FHIR server did not answer within the time budget"))
        if self.on_results is not None:
            self.on_results(results.values())
        return results

    def continue_bundle(self, key: str, base: str, token: str | None, bundle: dict, deadline: float,
                        policy: EgressPolicy = EgressPolicy()) -> FetchResult:
        """Follow ``next`` links of a Bundle the client sent (a paginated prefetch)."""
        result = FetchResult(key, resources=bundle_resources(bundle), pages=1)
        next_url = next_link(bundle)
        return self._follow(result, base, token, next_url, deadline, policy)

    # -- internals --------------------------------------------------------------
    def _fetch_one(self, key: str, base: str, token: str | None, query: str, deadline: float,
                   policy: EgressPolicy) -> FetchResult:
        result = FetchResult(key)
        url = urljoin(base.rstrip("/") + "/", query)
        try:
            body = self.get_json(url, base, token, deadline, policy)
        except FhirError as exc:
            result.status = exc.status
            return result.fail(exc)
        result.pages = 1
        if body.get("resourceType") == "Bundle":
            result.resources = bundle_resources(body)
            return self._follow(result, base, token, next_link(body), deadline, policy)
        if body.get("resourceType") == "OperationOutcome":
            return result.fail(FhirError("the FHIR server answered with an OperationOutcome"))
        result.resources = [body]
        return result

    def _follow(self, result: FetchResult, base: str, token: str | None, next_url: str | None, deadline: float,
                policy: EgressPolicy) -> FetchResult:
        while next_url:
            if result.pages >= self.max_pages:
                message = f"more than {self.max_pages} pages; the rest was not read"
                result.fail(FhirError(message, public=message))
                break
            try:
                page = self.get_json(next_url, base, token, deadline, policy)
            except FhirError as exc:
                result.fail(exc, prefix=f"page {result.pages + 1}: ")
                break
            result.pages += 1
            result.resources.extend(bundle_resources(page))
            next_url = next_link(page)
        return result

    def get_json(self, url: str, base: str, token: str | None, deadline: float,
                 policy: EgressPolicy = EgressPolicy()) -> dict:
        """GET one FHIR URL on ``base``'s server; raise FhirError with a detail for the log."""
        if not same_server(url, base):
            message = "a paging link pointed to another server; not followed"
            raise FhirError(message, public=message)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirError("time budget exhausted before the query was sent")
        headers = {"Accept": "application/fhir+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path = urlsplit(url).path
        try:
            prepared = requests.Request("GET", url, headers=headers).prepare()
            # the adapter checks the resolved addresses against the policy's networks and ends the
            # exchange at the request's deadline, body included (egress.EgressAdapter)
            resp = self.session.send(
                prepared,
                stream=True,
                timeout=(min(self.connect_timeout, remaining), min(self.read_timeout, remaining)),
                allow_redirects=False,
                networks=policy.networks,
                ends=deadline,
            )
        except EgressRefused as exc:
            raise FhirError(f"not contacted: {exc}") from None
        except ResponseTooLarge:
            raise FhirError(f"{path} declared more than {MAX_RESPONSE_BYTES} bytes") from None
        except requests.Timeout:
            raise FhirError(f"timed out reading {path}") from None
        except requests.ConnectionError:
            raise FhirError(f"could not connect to the FHIR server for {path}") from None
        except requests.RequestException as exc:
            raise FhirError(f"request for {path} failed ({type(exc).__name__})") from None
        except OSError as exc:  # socket.gaierror from the one lookup egress makes (requests' own are caught above)
            raise FhirError(f"could not resolve the FHIR server's host for {path} ({type(exc).__name__})") from None
        with resp:
            if resp.status_code != 200:
                raise FhirError(_status_message(resp.status_code, path), status=resp.status_code)
            raw = _read_body(resp, deadline, path)
        try:
            # NaN, Infinity and 1e999 are not JSON numbers: refused, as in request bodies
            body = strict_json_loads(raw)
        except ValueError:
            raise FhirError(f"{path} returned invalid JSON") from None
        if not isinstance(body, dict):
            raise FhirError(f"{path} returned JSON that is not a FHIR resource")
        return body


def _read_body(resp: requests.Response, deadline: float, path: str) -> bytes:
    """The capped body, or FhirError with the FHIR client's detail for the log."""
    try:
        return capped_read.read_capped(resp, MAX_RESPONSE_BYTES, deadline, CHUNK)
    except capped_read.BodyNotRead as exc:
        detail = {
            capped_read.OVER_CAP: f"{path} returned more than {MAX_RESPONSE_BYTES} bytes",
            capped_read.DEADLINE: f"timed out reading {path}",
            capped_read.BROKEN: f"timed out or disconnected reading {path}",
        }[exc.reason]
        raise FhirError(detail) from None


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


def next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def read_failure(key: str, partial: bool, why: str | None = None):
    """The data-quality finding for a prefetch key that could not be read, wholly or in part.

    One wording for the hooks (``protocol.prefetch``) and the SMART app
    (``smart.fetch``): the finding names the query (``prefetch:<key>``) and,
    when the caller may show it, why; the network detail goes to the log only.
    """
    because = f" ({why})" if why else " from the FHIR server"
    if partial:
        return Finding("data-partial", f"Only part of '{key}' could be read{because}; related checks may be "
                       "incomplete.", (f"prefetch:{key}",))
    return Finding("data-missing", f"'{key}' could not be read{because}; related checks may be incomplete.",
                   (f"prefetch:{key}",))

