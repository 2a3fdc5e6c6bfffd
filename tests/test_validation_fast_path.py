"""The jsonschema-rs fast path agrees with jsonschema, document by document.

``validation.schema_issues`` trusts jsonschema-rs when it says "valid" and
asks jsonschema otherwise.  That is only safe if jsonschema-rs never accepts
what jsonschema rejects, so every fixture request, the cards the service
gives for it, and a few thousand mutations of them (a member removed, a
value replaced by another JSON type, a string made empty or too long) are
checked by both.  They must agree in both directions: a fast "valid" that
jsonschema rejects would let a bad document through, and a fast "invalid"
that jsonschema accepts would only cost time, but still means the two read
the schema differently.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from cds_service.protocol import validation

FIXTURE_REQUESTS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "requests").glob("*.json"))
SERVICE_OF = {"patient-view": "her2-mbc-patient-view", "order-select": "her2-mbc-order-select",
              "order-sign": "her2-mbc-order-sign"}
REPLACEMENTS = (None, 0, 1.5, -1, True, "", "x", "x" * 300, [], {}, [None], {"a": None},
                "http://example.org/x", "2026-11-21T08:00:00Z", "not a date", 2 ** 70)


def _paths(doc, prefix=()):
    """Every (container, key) position in ``doc``, parents before children."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _copied_along(doc, path):
    """``doc`` with fresh copies of the containers on ``path`` (the rest shared): a mutation at the end of
    ``path`` leaves ``doc`` untouched, as with a deep copy, without copying a whole prefetch per mutant."""
    mutant = copy.copy(doc)
    parent = mutant
    for step in path[:-1]:
        parent[step] = copy.copy(parent[step])
        parent = parent[step]
    return mutant, parent


def _mutants(doc, rng: random.Random, count: int):
    paths = list(_paths(doc))
    for _ in range(count):
        path = rng.choice(paths)
        mutant, parent = _copied_along(doc, path)
        if rng.random() < 0.3:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        yield path, mutant


def _agree(name: str, doc) -> None:
    slow = validation.validator(name).is_valid(doc)  # jsonschema's verdict: no error (stops at the first)
    fast = validation.fast_is_valid(name, doc)
    assert fast == slow, f"{name}: jsonschema-rs says {fast}, jsonschema says {slow}"


@pytest.fixture(scope="module")
def fixture_calls():
    """(request, response) for every committed fixture request."""
    from cds_service import create_app

    app = create_app(auth="disabled", database_url="sqlite://")
    client = app.test_client()
    calls = []
    for path in FIXTURE_REQUESTS:
        body = json.loads(path.read_text())
        service = SERVICE_OF[body["hook"]]
        resp = client.post(f"/cds-services/{service}", json=body)
        assert resp.status_code == 200, path.name
        calls.append((body, resp.get_json()))
    return calls


def test_there_are_fixtures_and_they_give_cards(fixture_calls):
    assert len(fixture_calls) >= 60
    assert sum(len(r["cards"]) for _, r in fixture_calls) >= 60


def test_fast_path_accepts_every_fixture_request_and_response(fixture_calls):
    for request, response in fixture_calls:
        assert validation.fast_is_valid("cds-request", request)
        assert validation.fast_is_valid("cds-response", response)
        for card in response["cards"]:
            assert validation.fast_is_valid("cds-response", {"cards": [card]})


def test_fast_path_agrees_with_jsonschema_on_mutated_requests(fixture_calls):
    rng = random.Random(20261121)
    rejected = 0
    for request, _ in fixture_calls[::4]:
        # Mutate the request without its prefetch (the schema checks little inside
        # resources), then a few mutations with it, so both get exercised.
        original = json.dumps(request)
        shell = {k: v for k, v in request.items() if k != "prefetch"}
        for _, mutant in _mutants(shell, rng, 60):
            _agree("cds-request", mutant)
            rejected += not validation.fast_is_valid("cds-request", mutant)
        for _, mutant in _mutants(request, rng, 20):
            _agree("cds-request", mutant)
        assert json.dumps(request) == original  # the mutants were copies, the fixture is untouched
    assert rejected > 100  # the mutations do break the schema, so both paths are exercised


def test_fast_path_agrees_with_jsonschema_on_mutated_cards(fixture_calls):
    rng = random.Random(7)
    rejected = 0
    cards = [c for _, r in fixture_calls for c in r["cards"]]
    for card in cards[::2]:
        for _, mutant in _mutants({"cards": [card]}, rng, 40):
            _agree("cds-response", mutant)
            rejected += not validation.fast_is_valid("cds-response", mutant)
    assert rejected > 100


def test_fast_path_agrees_with_jsonschema_on_mutated_feedback():
    rng = random.Random(3)
    feedback = {"feedback": [
        {"card": "card-1", "outcome": "accepted", "acceptedSuggestions": [{"id": "sugg-1"}],
         "outcomeTimestamp": "2026-11-21T08:00:00Z"},
        {"card": "card-2", "outcome": "overridden", "outcomeTimestamp": "2026-11-21T08:01:00.123+01:00",
         "overrideReason": {"reason": {"system": "https://her2-cds.example.org/override",
                                       "code": "patient-declined", "display": "Patient declined"},
                            "userComment": "discussed"}}]}
    _agree("cds-feedback", feedback)
    assert validation.fast_is_valid("cds-feedback", feedback)
    for _, mutant in _mutants(feedback, rng, 400):
        _agree("cds-feedback", mutant)


def test_when_the_fast_validator_fails_jsonschema_decides(monkeypatch):
    class Broken:
        def is_valid(self, instance):
            raise ValueError("cannot convert")

    monkeypatch.setattr(validation, "fast_validator", lambda name: Broken())
    bad = {"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-11-21T08:00:00Z"}]}
    assert [i.location for i in validation.schema_issues("cds-feedback", bad)] == ["/feedback/0/outcome"]
    good = {"feedback": [{"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"id": "s"}],
                          "outcomeTimestamp": "2026-11-21T08:00:00Z"}]}
    assert validation.schema_issues("cds-feedback", good) == []


def _random_json(rng: random.Random, depth: int = 1):
    if depth > 9 or rng.random() < 0.3:
        return rng.choice([1, -2.5, "s", "", None, True, False, [], {}])
    if rng.random() < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _random_json(rng, depth + 1) for i in range(rng.randint(0, 3))}


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 64])
def test_depth_schema_agrees_with_the_walk(limit):
    rng = random.Random(limit)
    docs = [_random_json(rng) for _ in range(1500)]
    docs += [json.loads('{"a":' * k + "1" + "}" * k) for k in range(0, 70)]
    docs += [json.loads("[" * k + "]" * k) for k in range(1, 70)]
    outcomes = set()
    for doc in docs:
        walk = validation.depth_walk_exceeds(doc, limit)
        assert validation.json_depth_exceeds(doc, limit) == walk, (limit, doc)
        outcomes.add(walk)
    assert outcomes == {True, False}


def test_fixture_requests_are_within_the_default_depth():
    for path in FIXTURE_REQUESTS:
        assert not validation.json_depth_exceeds(json.loads(path.read_text()), 64)
        assert validation.json_depth_exceeds(json.loads(path.read_text()), 4)
