"""The orjson fast path of ``read_json`` (issue 23) reads exactly what the ``json`` path reads, or steps aside.

Type-exact: ``repr`` of both results must match (1 and 1.0, a 64-bit integer
and a float are different values to the schemas and the criteria).  Where
orjson would read a body differently (an integer beyond 64 bits) or refuses
it, ``_fast_loads`` answers None and the ``json`` path decides and words the
error as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cds_service.protocol.validation import _fast_loads

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = sorted((ROOT / "fixtures" / "requests").glob("*.json"))


def _stdlib(raw: bytes):
    return json.loads(raw.decode("utf-8"))


@pytest.mark.parametrize("path", REQUESTS[::7], ids=[p.stem for p in REQUESTS[::7]])
def test_every_fixture_request_reads_the_same(path):
    raw = path.read_bytes()
    got = _fast_loads(raw)
    assert got is not None
    assert repr(got) == repr(_stdlib(raw))


@pytest.mark.parametrize("raw", [
    b"123456789012345678901234567890", b"-9223372036854775809", b"-9999999999999999999",
    b"18446744073709551616", b'{"v": 12345678901234567890}', b'{"s": "0000000000000000000"}',
])
def test_long_integers_go_the_json_way(raw):
    assert _fast_loads(raw) is None


@pytest.mark.parametrize("raw", [
    b"NaN", b"[Infinity]", b"1e999", b'["\\ud800"]', b"\xef\xbb\xbf{}", b'{"a": "\x00"}', b"{", b"",
    b"\xff\xfe", b'{"a": 1,}',
])
def test_what_orjson_refuses_goes_the_json_way(raw):
    assert _fast_loads(raw) is None


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "a": 2}', b'{"n": -0}', b'{"f": 1.0, "i": 1, "e": 1e2, "t": true, "z": null}',
    b'{"small": 1e-400}', b'{"pair": "\\ud83d\\ude00"}', b'{"i18": 922337203685477580, "neg": -922337203685477580}', b' [ ] ',
    b'{"x": 0.1, "y": 2.5e-3, "big": 1.7976931348623157e308}',
])
def test_edge_values_read_the_same(raw):
    got = _fast_loads(raw)
    assert got is not None
    assert repr(got) == repr(_stdlib(raw))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_document_reads_the_same_or_steps_aside(value):
    raw = json.dumps(value).encode()
    got = _fast_loads(raw)
    if got is not None:
        assert repr(got) == repr(_stdlib(raw))


# The answer side: ``hooks.cards_answer`` writes the hook's JSON with orjson, or leaves it to jsonify.

@pytest.fixture()
def answer_app(tmp_path):
    from cds_service import create_app
    app = create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 'a.db'}")
    with app.app_context():
        yield app


def _answer(value):
    from cds_service.protocol.hooks import cards_answer
    return cards_answer(value)


@pytest.mark.parametrize("value", [
    {"cards": []},
    {"cards": [{"summary": "Trastuzumab deruxtecan: LVEF ≥ 50 % – ILD/pneumonitis, µmol/L", "n": 2, "x": 0.5,
                "small": 1e-05, "big": 1e16, "neg": -0.0, "flag": True, "none": None}]},
    {"cards": [{"detail": "quote \" backslash \\ newline \n tab \t bell \u0007 del \u007f nul \u0000"}]},
])
def test_the_answer_holds_what_jsonify_would_write(answer_app, value):
    resp = _answer(value)
    assert resp.mimetype == "application/json"
    assert resp.get_data().endswith(b"\n")
    assert repr(json.loads(resp.get_data())) == repr(json.loads(answer_app.json.response(value).get_data()))


def test_non_ascii_text_is_written_as_utf8(answer_app):
    assert "≥ 50 %".encode() in _answer({"cards": [{"summary": "LVEF ≥ 50 %"}]}).get_data()


@pytest.mark.parametrize("value", [
    {"cards": [{"resource": {"dose": 2 ** 70}}]},          # an integer beyond 64 bits, copied from a draft
    {"cards": [{"summary": "lone \ud800 surrogate"}]},
    {"cards": [{"at": __import__("datetime").date(2026, 6, 1)}]},
    {"cards": [{1: "a key that is not a string"}]},
])
def test_what_orjson_would_write_otherwise_is_left_to_jsonify(answer_app, value):
    assert _answer(value).get_data() == answer_app.json.response(value).get_data()


# ``parse.json_copy``: the deep copy of a record the cards send back (an orjson round trip).

@pytest.mark.parametrize("path", REQUESTS[::9], ids=[p.stem for p in REQUESTS[::9]])
def test_a_copied_record_is_the_record_type_for_type_and_shares_nothing(path):
    import copy
    from cds_service.core.parse import json_copy
    doc = json.loads(path.read_bytes())
    got = json_copy(doc)
    assert repr(got) == repr(copy.deepcopy(doc))
    got["prefetch"] = None
    assert doc["prefetch"] is not None and json_copy(doc)["prefetch"] == doc["prefetch"]


@pytest.mark.parametrize("value", [
    {"dose": 2 ** 70, "nested": [{"a": 1.0}]},            # beyond 64 bits: walked, exactly
    {1: "a key that is not a string"},
    [{"when": __import__("datetime").date(2026, 6, 1)}],
    {"x": -0.0, "y": 1e-05, "z": 12345678901234567, "t": True, "n": None, "s": "µ ≥ \u2028"},
])
def test_what_orjson_cannot_copy_exactly_is_walked(value):
    import copy
    from cds_service.core.parse import json_copy
    got = json_copy(value)
    assert repr(got) == repr(copy.deepcopy(value)) and got is not value
