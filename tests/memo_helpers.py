"""What the memo tests share (tests/test_history_memo.py, tests/test_fast_path_review.py): the fixtures'
anchor date, the card uuid pattern, a request's resources, and the pipeline with nothing remembered."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from unittest import mock

import pytest

from cds_service.core import advice, criteria
from cds_service.core.criteria import clear_history_memo

ANCHOR = dt.date(2026, 6, 1)  # the fixtures' anchor date (fixtures/build_fixtures.py)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def resources(req: dict) -> list[dict]:
    """A request's prefetch values, as the service hands them to the pipeline."""
    return [v for v in (req.get("prefetch") or {}).values() if isinstance(v, dict)]


def entries(v: dict) -> list[dict]:
    """The resources of a prefetch value (a Bundle's entries, or the resource itself)."""
    if v.get("resourceType") == "Bundle":
        return [e["resource"] for e in v.get("entry") or () if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return [v]


@contextlib.contextmanager
def nothing_remembered():
    """The whole pipeline as without any memo: no remembered history, every rule of the book tested whole."""
    with mock.patch.object(criteria, "_memo_key", lambda *a: None), \
            mock.patch.object(advice, "_live_rules", lambda *a: None):
        yield


@pytest.fixture(autouse=True)
def empty_memo():
    """Each test starts and ends with nothing remembered (import it into a test module to apply it)."""
    clear_history_memo()
    yield
    clear_history_memo()
