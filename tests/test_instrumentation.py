"""The pipeline's timing points: every stage is reported for a hook call, nothing without a recorder."""

from __future__ import annotations

import json
from pathlib import Path

from cds_service.core import instrumentation
from cds_service.core.instrumentation import STAGES, recording, stage

REQUEST = Path(__file__).resolve().parent.parent / "fixtures" / "requests"


def test_a_hook_call_reports_every_stage_once_in_order(client):
    body = json.loads(next(p for p in sorted(REQUEST.glob("*-order-sign.json"))).read_text())
    seen: list[tuple[str, float]] = []
    with recording(lambda name, seconds: seen.append((name, seconds))):
        resp = client.post("/cds-services/her2-mbc-order-sign", json=body)
    assert resp.status_code == 200
    assert [name for name, _ in seen] == list(STAGES)
    assert all(seconds >= 0 for _, seconds in seen)


def test_without_a_recorder_stages_are_one_shared_no_op():
    assert instrumentation._recorder is None
    assert stage("criteria") is stage("rules")
    with stage("criteria"):
        pass


def test_recorders_nest_and_are_restored():
    outer, inner = [], []
    with recording(lambda n, s: outer.append(n)):
        with recording(lambda n, s: inner.append(n)):
            with stage("rules"):
                pass
        with stage("cards"):
            pass
    assert (outer, inner) == (["cards"], ["rules"])
    assert instrumentation._recorder is None


def test_every_cprofile_group_names_a_function_that_exists():
    """The benchmark's cProfile table sums functions by file and name: a moved or renamed one read 0 %
    silently (``rules`` and ``storage`` did, after the rulebook and the store were split into packages)."""
    import ast

    from benchmarks.scenarios import PROFILE_GROUPS

    root = Path(__file__).resolve().parent.parent
    for label, funcs in PROFILE_GROUPS:
        for path, name in funcs:
            if not path.startswith("cds_service/"):
                continue  # a library's own function (flask, logging)
            tree = ast.parse((root / path).read_text())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            assert name in defined, (label, path, name)
