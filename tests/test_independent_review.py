"""The independent reviewer's patients, kept as tests (issue 20).

45 synthetic patients written from the drug labels and guidelines by a reviewer
who never read the rulebook (tests/independent/README.md), coded as EHRs code
them, each with what a careful oncologist must and must not see
(``expected.yaml``, checked by the reviewer's own matcher in ``review.py``).
First run against main of 2026-12-02: 32/45.  Where the service follows a
documented decision instead of the reviewer's expectation, ``decisions.yaml``
says which and why, and the case is held to the decided behaviour.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import yaml

from cds_service.core.advice import advise

from shipped import SERVICES

HERE = Path(__file__).resolve().parent / "independent"
sys.path.insert(0, str(HERE))
import review  # noqa: E402  (the reviewer's matcher)

SPEC = yaml.safe_load((HERE / "expected.yaml").read_text())
DECISIONS = yaml.safe_load((HERE / "decisions.yaml").read_text())["decisions"]
CASES = SPEC["cases"]


def _name(case: dict) -> str:
    return Path(case["file"]).stem


def _run(case: dict, knowledge) -> tuple[dict, dict]:
    req = json.loads((HERE / case["file"]).read_text())
    service = next(s for s in SERVICES.values() if s.hook == req["hook"])
    resources = [v for v in (req.get("prefetch") or {}).values() if isinstance(v, dict)]
    advice = advise(req["hook"], service.id, req["context"], resources, [], knowledge,
                    today=dt.date.fromisoformat(case.get("today") or SPEC["anchor_date"]))
    return {"cards": advice.cards}, req


def test_every_decision_names_a_case_and_its_source():
    names = {_name(c) for c in CASES}
    assert len(CASES) >= 20 and set(DECISIONS) <= names
    for name, d in DECISIONS.items():
        assert d["reviewer"] and d["decided"] and d["expect"], name


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_independent_case(case, knowledge):
    resp, req = _run(case, knowledge)
    spec = dict(case, **DECISIONS[_name(case)]["expect"]) if _name(case) in DECISIONS else case
    if _name(case) in DECISIONS:
        spec.setdefault("must", [])
        spec.setdefault("must_not", [])
        for key in ("must", "must_not", "silent"):
            if key not in DECISIONS[_name(case)]["expect"]:
                spec.pop(key, None) if key == "silent" else spec.__setitem__(key, [])
    problems = review.evaluate(spec, resp, req)
    assert not problems, f"{_name(case)}: {case.get('patient')}\n  basis: {case.get('basis')}\n  " + "\n  ".join(problems)
