"""``her2-cds fixtures load``: put the fixture patients into any FHIR R4 server.

Why transaction Bundles and PUT: one HTTP call per patient keeps a patient's
resources all-or-nothing, and ``PUT Type/id`` with the fixtures' stable ids
makes a re-run update the same resources instead of duplicating them.  A
``POST`` entry whose resource has an id is turned into that ``PUT`` (and
``urn:uuid`` references to it are rewritten to ``Type/id``), so fixtures
written either way load idempotently.  A ``POST`` without an id is kept only
if it carries ``ifNoneExist`` (conditional create); otherwise it is reported
as not idempotent.

Why the dates move: the fixtures are written for an anchor day (each patient
Bundle names it in a ``meta.tag`` of ``ANCHOR_TAG_SYSTEM``); loaded unchanged
months later, "LVEF two weeks ago" has become half a year and the cards are
artefacts of the demo's age.  So loading moves every FHIR date, dateTime,
instant and period in the Bundle by the whole days between the anchor and the
loading day (``cds_service.core.date_shift``): every interval and every age is
as written, on the day of loading.  ``--keep-dates`` loads them as they are,
``--today`` picks another day.  A Bundle without the tag has no known anchor
and is loaded as it is.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click
import requests

from ..config import REPO_DIR
from ..core.date_shift import days_between, shift_resource

TIMEOUT = (5.0, 60.0)

#: ``Bundle.meta.tag`` system whose code is the day (YYYY-MM-DD) a fixture Bundle's dates were written for.
ANCHOR_TAG_SYSTEM = "urn:her2-cds:fixture-anchor"


class LoadError(click.ClickException):
    """The server refused or could not be reached; the message says which file and why."""


@dataclass
class LoadSummary:
    files: int = 0
    created: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    other: Counter = field(default_factory=Counter)
    not_idempotent: int = 0
    #: (anchor, days moved) -> Bundles; Bundles without an anchor tag counted under None
    shifted: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        types = sorted(set(self.created) | set(self.updated) | set(self.other))
        out = [f"Loaded {self.files} transaction Bundle(s): "
               f"{sum(self.created.values())} created, {sum(self.updated.values())} updated"
               + (f", {sum(self.other.values())} other" if self.other else "") + "."]
        for t in types:
            out.append(f"  {t:<22} created {self.created[t]:>4}   updated {self.updated[t]:>4}"
                       + (f"   other {self.other[t]:>4}" if self.other[t] else ""))
        if self.not_idempotent:
            out.append(f"Warning: {self.not_idempotent} entr(y/ies) were plain POSTs without an id or "
                       "ifNoneExist; a re-run will create duplicates of those.")
        for key, n in sorted(self.shifted.items(), key=lambda kv: str(kv[0])):
            if key is None:
                out.append(f"{n} Bundle(s) name no anchor day ({ANCHOR_TAG_SYSTEM}): their dates are as written.")
            else:
                anchor, days = key
                out.append(f"Dates in {n} Bundle(s) moved by {days:+d} day(s): their {anchor.isoformat()} is "
                           f"{(anchor + dt.timedelta(days=days)).isoformat()}." if days else
                           f"Dates in {n} Bundle(s) kept: written for {anchor.isoformat()}.")
        return out


def default_fixtures_dir() -> Path:
    """``fixtures/patients`` if it exists, else ``fixtures``: wherever the patient Bundles live."""
    for candidate in (REPO_DIR / "fixtures" / "patients", REPO_DIR / "fixtures"):
        if candidate.is_dir():
            return candidate
    return REPO_DIR / "fixtures"


def find_bundles(paths: list[Path]) -> list[tuple[Path, dict]]:
    """Every JSON file under ``paths`` that is a transaction (or batch) Bundle, in name order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.rglob("*.json")))
        elif p.is_file():
            files.append(p)
        else:
            raise click.BadParameter(f"{p} does not exist", param_hint="PATHS")
    bundles = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{f}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and data.get("resourceType") == "Bundle" and data.get("type") in ("transaction", "batch"):
            bundles.append((f, data))
    return bundles


def bundle_anchor(bundle: dict) -> dt.date | None:
    """The day the Bundle's dates were written for (its ``ANCHOR_TAG_SYSTEM`` tag), or None."""
    for tag in ((bundle.get("meta") or {}).get("tag") or []):
        if isinstance(tag, dict) and tag.get("system") == ANCHOR_TAG_SYSTEM:
            try:
                return dt.date.fromisoformat(str(tag.get("code")))
            except ValueError:
                raise click.ClickException(f"the anchor tag {tag.get('code')!r} is not a YYYY-MM-DD day") from None
    return None


def move_dates(bundle: dict, today: dt.date | None) -> tuple[dict, tuple[dt.date, int] | None]:
    """The Bundle with its dates moved so its anchor day is ``today`` (None: as written).

    Returns the Bundle (a copy when moved, its anchor tag now naming ``today``)
    and (anchor, days moved), or None when the Bundle names no anchor.
    """
    anchor = bundle_anchor(bundle)
    if anchor is None:
        return bundle, None
    if today is None:
        return bundle, (anchor, 0)
    days = days_between(anchor, today)
    moved = shift_resource(bundle, days)
    for tag in moved["meta"]["tag"]:
        if tag.get("system") == ANCHOR_TAG_SYSTEM:
            tag["code"] = today.isoformat()
    return moved, (anchor, days)


def make_idempotent(bundle: dict) -> tuple[dict, int]:
    """A copy whose POST-with-id entries are PUT Type/id; returns (bundle, entries that stay non-idempotent)."""
    bundle = copy.deepcopy(bundle)
    renamed: dict[str, str] = {}
    unsafe = 0
    for entry in bundle.get("entry") or []:
        res, req = entry.get("resource") or {}, entry.get("request") or {}
        if str(req.get("method", "")).upper() != "POST":
            continue
        rtype, rid = res.get("resourceType"), res.get("id")
        if rtype and rid:
            entry["request"] = {"method": "PUT", "url": f"{rtype}/{rid}"}
            if str(entry.get("fullUrl", "")).startswith("urn:"):
                renamed[entry["fullUrl"]] = f"{rtype}/{rid}"
        elif not req.get("ifNoneExist"):
            unsafe += 1
    if renamed:
        _rewrite_references(bundle, renamed)
    return bundle, unsafe


def _rewrite_references(node, renamed: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in renamed:
                node[key] = renamed[value]
            else:
                _rewrite_references(value, renamed)
    elif isinstance(node, list):
        for item in node:
            _rewrite_references(item, renamed)


def post_bundle(session: requests.Session, base: str, bundle: dict, name: str) -> dict:
    """POST one transaction to the server base; raise LoadError with the server's own words on refusal."""
    try:
        resp = session.post(base, json=bundle, timeout=TIMEOUT,
                            headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
    except requests.RequestException as exc:
        raise LoadError(f"cannot reach the FHIR server at {base} ({type(exc).__name__}); is it running?") from None
    if resp.status_code >= 300:
        hint = {401: " The server wants a bearer token: pass --token.",
                403: " The token does not allow writes."}.get(resp.status_code, "")
        raise LoadError(f"the FHIR server refused {name}: HTTP {resp.status_code}"
                        f"{_diagnostics(resp)}.{hint}")
    try:
        body = resp.json()
    except ValueError:
        raise LoadError(f"the FHIR server answered {name} with something that is not JSON") from None
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise LoadError(f"the FHIR server answered {name} without a transaction-response Bundle")
    return body


def _diagnostics(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [str(i.get("diagnostics") or i.get("code")) for i in body.get("issue") or [] if isinstance(i, dict)]
        if texts:
            return ": " + "; ".join(texts)[:500]
    return ""


def count_response(summary: LoadSummary, sent: dict, response: dict) -> None:
    """Tally created/updated per resource type from the transaction-response statuses."""
    sent_entries = sent.get("entry") or []
    for i, entry in enumerate(response.get("entry") or []):
        status = str((entry.get("response") or {}).get("status", ""))
        rtype = ((entry.get("resource") or {}).get("resourceType")
                 or ((sent_entries[i].get("resource") or {}).get("resourceType") if i < len(sent_entries) else None)
                 or "?")
        if status.startswith("201"):
            summary.created[rtype] += 1
        elif status.startswith("200"):
            summary.updated[rtype] += 1
        else:
            summary.other[rtype] += 1


def load(base: str, token: str | None, bundles: list[tuple[Path, dict]], progress: bool = True,
         today: dt.date | None = None) -> LoadSummary:
    """Post every Bundle in order, dates moved to ``today`` (None: as written); stops at the first refusal."""
    session = requests.Session()
    session.trust_env = False
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    summary = LoadSummary()
    base = base.rstrip("/")
    with click.progressbar(bundles, label="Loading fixtures", file=sys.stderr,
                           show_pos=True, item_show_func=lambda b: b[0].stem if b else "",
                           hidden=not progress) as bar:
        for path, bundle in bar:
            bundle, moved = move_dates(bundle, today)
            summary.shifted[moved] += 1
            sent, unsafe = make_idempotent(bundle)
            summary.not_idempotent += unsafe
            response = post_bundle(session, base, sent, path.name)
            count_response(summary, sent, response)
            summary.files += 1
    return summary


@click.group("fixtures")
def command() -> None:
    """Work with the synthetic fixture patients."""


@command.command("load")
@click.option("--fhir-server", "fhir_server", required=True, metavar="URL",
              help="FHIR R4 base URL, e.g. http://127.0.0.1:8090/fhir.")
@click.option("--token", envvar="HER2CDS_FHIR_TOKEN", default=None, metavar="T",
              help="Bearer token for the FHIR server (env HER2CDS_FHIR_TOKEN).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, metavar="YYYY-MM-DD",
              help="Move the dates so the fixtures' anchor day is this day (default: the day of loading).")
@click.option("--keep-dates", is_flag=True, help="Load the dates as written (anchored at the fixtures' day).")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def load_command(fhir_server: str, token: str | None, quiet: bool, today, keep_dates: bool,
                 paths: tuple[Path, ...]) -> None:
    """Post the fixture patients (transaction Bundles) to a FHIR server.

    PATHS are files or folders of Bundles (default: the repository's fixture
    patients).  Re-running is safe: resources keep their ids and are updated.
    Every date is moved by the days between the Bundle's anchor day and the
    loading day (or --today), so "two weeks ago" is two weeks before today;
    --keep-dates loads them as written.
    """
    if not fhir_server.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--fhir-server")
    if keep_dates and today is not None:
        raise click.UsageError("--keep-dates and --today contradict each other: choose one")
    target = None if keep_dates else (today.date() if today else dt.date.today())
    bundles = find_bundles(list(paths) or [default_fixtures_dir()])
    if not bundles:
        raise click.ClickException("no transaction Bundles found in " + ", ".join(str(p) for p in paths or
                                                                                  [default_fixtures_dir()]))
    summary = load(fhir_server, token, bundles, progress=not quiet, today=target)
    for line in summary.lines():
        click.echo(line)
