"""Runs the fifth review's cases in process (advise, as tests/test_independent_reviews.py does) and scores them.

Usage: PYTHONPATH=<worktree> python tests/independent5/run.py [--adjudicated] [--verbose]
The first-run score uses expected.yaml unchanged; --adjudicated applies adjudication.yaml.
"""
import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS))

from cds_service.core.advice import advise  # noqa: E402
from shipped import KNOWLEDGE, SERVICES  # noqa: E402

spec = importlib.util.spec_from_file_location("review", TESTS / "independent2" / "review.py")
review = importlib.util.module_from_spec(spec)
spec.loader.exec_module(review)


def adjudicate(case, adj):
    case = dict(case)
    case.update({k: v for k, v in (adj.get(case["file"]) or {}).items() if k in ("must", "must_not", "silent")})
    dropped = set((adj.get("_global") or {}).get("drop_phrases") or ())
    for key in ("must", "must_not"):
        case[key] = [dict(c, any_of=[p for p in c["any_of"] if p not in dropped]) if c.get("any_of") else c for c in case.get(key) or []]
    return case


def main():
    cases = yaml.safe_load((HERE / "expected.yaml").read_text())["cases"]
    if "--adjudicated" in sys.argv and (HERE / "adjudication.yaml").exists():
        adj = yaml.safe_load((HERE / "adjudication.yaml").read_text())
        cases = [adjudicate(c, adj) for c in cases]
    knowledge = KNOWLEDGE
    passed = 0
    for case in cases:
        body = json.loads((HERE / "cases" / case["file"]).read_text())
        service = next(s for s in SERVICES.values() if s.hook == body["hook"])
        resources = [v for v in body["prefetch"].values() if isinstance(v, dict)]
        advice = advise(body["hook"], service.id, body["context"], resources, [], knowledge,
                        today=dt.date.fromisoformat(str(case["today"])))
        problems = review.evaluate(case, {"cards": advice.cards}, body)
        passed += not problems
        print(("PASS " if not problems else "FAIL ") + case["file"])
        for p in problems:
            print("   ", p)
        if "--verbose" in sys.argv:
            for k in advice.cards:
                print("    card:", k["indicator"], "|", k["summary"])
    print(f"score: {passed}/{len(cases)}")


if __name__ == "__main__":
    main()
