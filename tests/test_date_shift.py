"""Moving a FHIR resource's dates by whole days (cds_service.core.date_shift), for `fixtures load`."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from cds_service.core.date_shift import days_between, shift_date_string, shift_resource

from conftest import fixture_generator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "patients"


@pytest.mark.parametrize("value, days, expected", [
    ("2025-04-07", 186, "2025-10-10"),
    ("2025-04-07", -7, "2025-03-31"),
    ("2025-04-07", 0, "2025-04-07"),
    # a month stays a month: the month holding its shifted middle (the 15th)
    ("2025-04", 186, "2025-10"),
    ("2025-04", 10, "2025-04"),
    ("2025-04", 16, "2025-05"),
    ("2025-04", -15, "2025-03"),
    ("2025-12", 20, "2026-01"),
    # a year stays a year: the year holding its shifted middle (2 July)
    ("2025", 150, "2025"),
    ("2025", 186, "2026"),
    ("2025", -200, "2024"),
    # time of day, fractional seconds and offset are kept character for character
    ("2026-05-31T23:30:00+14:00", 1, "2026-06-01T23:30:00+14:00"),
    ("2026-03-28T01:15:30.123-05:00", 2, "2026-03-30T01:15:30.123-05:00"),
    ("2026-06-01T08:00:00Z", -31, "2026-05-01T08:00:00Z"),
    ("2026-06-01T08:00:00.000000+00:00", 3, "2026-06-04T08:00:00.000000+00:00"),
    # 29 February: reached, left, and a leap year's extra day counted
    ("2028-02-28", 1, "2028-02-29"),
    ("2028-02-29", 1, "2028-03-01"),
    ("2024-02-29", 365, "2025-02-28"),
    ("2024-02-29T12:00:00+01:00", 366, "2025-03-01T12:00:00+01:00"),
    ("2024-02", 14, "2024-02"),
    ("2024-02", 15, "2024-03"),
    # not a date: returned as written
    ("yesterday", 5, "yesterday"),
    ("2025-02-30", 5, "2025-02-30"),
    ("2025-13", 5, "2025-13"),
    ("", 5, ""),
])
def test_shift_date_string(value, days, expected):
    assert shift_date_string(value, days) == expected


def test_leaving_the_calendar_is_an_error_not_a_silent_keep():
    with pytest.raises(ValueError, match="leaves the calendar"):
        shift_date_string("9999-12-01", 60)


def test_days_between_counts_leap_days():
    assert days_between(dt.date(2026, 6, 1), dt.date(2028, 2, 29)) == 638
    assert days_between(dt.date(2026, 6, 1), dt.date(2026, 6, 1)) == 0
    assert days_between(dt.date(2026, 6, 1), dt.date(2025, 6, 1)) == -365
    assert shift_date_string("2026-06-01", days_between(dt.date(2026, 6, 1), dt.date(2028, 2, 29))) == "2028-02-29"


def _observation():
    return {
        "resourceType": "Observation", "id": "2025-04-07", "status": "final",
        "meta": {"lastUpdated": "2026-05-30T10:00:00.250Z", "tag": [{"system": "s", "code": "2026-05-30"}]},
        "code": {"text": "LVEF"},
        "effectivePeriod": {"start": "2026-05-18T09:00:00+02:00", "end": "2026-05-18"},
        "issued": "2026-05-19T07:45:00Z",
        "valueString": "measured 2025-04-07",
        "note": [{"text": "2025-04", "time": "2026-05-20"}],
        "component": [{"code": {"text": "x"}, "valueDateTime": "2026-05"}],
        "extension": [{"url": "http://example.org/a", "extension": [
            {"url": "http://example.org/b", "valueDate": "2026-01-15"},
            {"url": "http://example.org/c", "valuePeriod": {"start": "2026"}},
            {"url": "http://example.org/d", "valueString": "2026-01-15"},
        ]}],
    }


def test_every_date_element_moves_and_nothing_else():
    obs = _observation()
    before = copy.deepcopy(obs)
    moved = shift_resource(obs, 10)
    assert obs == before  # the input is not modified
    assert moved["meta"]["lastUpdated"] == "2026-06-09T10:00:00.250Z"  # instant
    assert moved["effectivePeriod"] == {"start": "2026-05-28T09:00:00+02:00", "end": "2026-05-28"}
    assert moved["issued"] == "2026-05-29T07:45:00Z"
    assert moved["note"][0]["time"] == "2026-05-30"
    assert moved["component"][0]["valueDateTime"] == "2026-05"  # 15 May + 10 is still May
    inner = moved["extension"][0]["extension"]
    assert inner[0]["valueDate"] == "2026-01-25"
    assert inner[1]["valuePeriod"] == {"start": "2026"}
    # strings, codes, ids and text that read like dates are not dates
    assert moved["id"] == "2025-04-07"
    assert moved["meta"]["tag"][0]["code"] == "2026-05-30"
    assert moved["valueString"] == "measured 2025-04-07"
    assert moved["note"][0]["text"] == "2025-04"
    assert inner[2]["valueString"] == "2026-01-15"


def test_nested_bundle_contained_timing_and_primitive_extensions():
    request = {
        "resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-05-31",
        "medicationReference": {"reference": "#med"},
        "contained": [{"resourceType": "Medication", "id": "med",
                       "batch": {"lotNumber": "L1", "expirationDate": "2027-01-31T00:00:00Z"}}],
        "dosageInstruction": [{"timing": {
            "event": ["2026-06-01T09:00:00+01:00", None, "2026-06-22"],
            "repeat": {"boundsPeriod": {"start": "2026-06-01", "end": "2026-08-31"}}}}],
    }
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1968-03-15",
               "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                             "valueDateTime": "1968-03-15T04:10:00-05:00"}]}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "timestamp": "2026-06-01T00:00:00Z",
              "entry": [{"resource": patient, "request": {"method": "PUT", "url": "Patient/p1"}},
                        {"resource": request, "request": {"method": "PUT", "url": "MedicationRequest/mr1"}}]}
    moved = shift_resource(bundle, -1)
    assert moved["timestamp"] == "2026-05-31T00:00:00Z"
    p, mr = (e["resource"] for e in moved["entry"])
    assert p["birthDate"] == "1968-03-14"
    assert p["_birthDate"]["extension"][0]["valueDateTime"] == "1968-03-14T04:10:00-05:00"
    assert mr["authoredOn"] == "2026-05-30"
    assert mr["contained"][0]["batch"]["expirationDate"] == "2027-01-30T00:00:00Z"
    timing = mr["dosageInstruction"][0]["timing"]
    assert timing["event"] == ["2026-05-31T09:00:00+01:00", None, "2026-06-21"]
    assert timing["repeat"]["boundsPeriod"] == {"start": "2026-05-31", "end": "2026-08-30"}
    assert moved["entry"][0]["request"] == {"method": "PUT", "url": "Patient/p1"}


def test_an_unknown_resource_type_is_left_as_written():
    odd = {"resourceType": "NotAThing", "date": "2026-06-01"}
    assert shift_resource(odd, 5) == odd


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@pytest.mark.parametrize("today", [dt.date(2026, 12, 4), dt.date(2028, 2, 29), dt.date(2025, 1, 1),
                                   dt.date(2027, 6, 1)])
def test_the_committed_fixtures_moved_to_a_day_are_the_fixtures_built_for_that_day(today):
    """Every date the builder writes is an offset from its anchor: moving them is rebuilding them.

    The one exception is birthDate: the builder puts birthdays on 15 March, the
    shift moves them with the rest, so the age on the day is what it was on the anchor.
    """
    gen = fixture_generator()
    patients, _, _ = gen.build(today)
    days = days_between(gen.ANCHOR, today)
    for path in sorted(FIXTURES.glob("*.json")):
        committed = json.loads(path.read_text())
        moved = shift_resource(committed, days)
        rebuilt = patients[path.stem]
        assert len(moved["entry"]) == len(rebuilt["entry"])
        for got, want in zip(moved["entry"], rebuilt["entry"]):
            got, want = dict(got["resource"]), dict(want["resource"])
            if got["resourceType"] == "Patient":
                was = dt.date.fromisoformat(committed["entry"][0]["resource"]["birthDate"])
                born = dt.date.fromisoformat(got.pop("birthDate"))
                want.pop("birthDate")
                assert born == was + dt.timedelta(days=days)
                assert _age(born, today) == _age(was, gen.ANCHOR), path.stem
            assert got == want, path.stem
