"""The second independent reviewer's patients, kept as tests (issue 20).

20 synthetic patients written from the drug labels and guidelines by a second reviewer who had
not read the rulebook, coded as EHRs code them (``independent2/cases``), with what a careful
oncologist must and must not see (``independent2/expected.yaml``), checked by that reviewer's
matcher (``independent2/review.py``). First run on main of 2026-12-02: 17/20. Case 17 (T-DM1
ordered first line) led to rule F10; cases 02 and 10 follow documented decisions
(``independent2/decisions.yaml``) and are held to the decided behaviour.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from cds_service.core.advice import advise
from cds_service.protocol.discovery import SERVICES

HERE = Path(__file__).resolve().parent / "independent2"
_spec = importlib.util.spec_from_file_location("review2", HERE / "review.py")
review2 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(review2)

CASES = yaml.safe_load((HERE / "expected.yaml").read_text())["cases"]
DECISIONS = yaml.safe_load((HERE / "decisions.yaml").read_text())["decisions"]


def _name(case: dict) -> str:
    return Path(case["file"]).stem


def test_every_decision_names_a_case_and_its_source():
    assert len(CASES) == 20 and set(DECISIONS) <= {_name(c) for c in CASES}
    for name, d in DECISIONS.items():
        assert d["reviewer"] and d["decided"] and d["expect"], name


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_independent_case(case, knowledge):
    body = json.loads((HERE / "cases" / case["file"]).read_text())
    service = next(s for s in SERVICES.values() if s.hook == body["hook"])
    resources = [v for v in (body.get("prefetch") or {}).values() if isinstance(v, dict)]
    advice = advise(body["hook"], service.id, body["context"], resources, [], knowledge,
                    today=dt.date.fromisoformat(case["today"]))
    spec = case
    if _name(case) in DECISIONS:
        spec = {k: v for k, v in case.items() if k not in ("must", "must_not", "silent")}
        spec.update(DECISIONS[_name(case)]["expect"])
    problems = review2.evaluate(spec, {"cards": advice.cards}, body)
    assert not problems, f"{_name(case)}: {case.get('patient')}\n  basis: {case.get('basis')}\n  " + "\n  ".join(problems)
