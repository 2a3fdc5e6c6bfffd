"""One course per drug and line, however it was charted (issue 22).

An infusion suite charts each docetaxel dose (MedicationAdministration) while
the medication list holds the course (MedicationStatement).  The profile's
``courses`` — what the SMART page lists and the timeline draws — must count
those six cycles once, as ``taxane.cycles`` (the cards) does.
"""

from __future__ import annotations

import datetime as dt

from criteria_builders import SNOMED, condition, med_admin, med_statement, obs, patient, profile

TODAY = dt.date(2026, 6, 1)


def _base():
    return [patient(), condition(SNOMED, "254837009", onset="2025-03-28", id="bc"),
            condition(SNOMED, "94222008", onset="2025-04-27", id="bone"),
            obs("85319-2", "2025-04-07", id="her2", valueString="3+"),
            med_statement("trastuzumab", start="2025-11-28", id="tras"),
            med_statement("pertuzumab", start="2025-11-28", id="pert")]


def _doses(first: dt.date, n: int, prefix: str):
    return [med_admin("docetaxel", (first + dt.timedelta(days=21 * i)).isoformat(), id=f"{prefix}{i}")
            for i in range(n)]


def test_a_statement_and_the_administrations_of_the_same_course_are_one_course():
    first = dt.date(2025, 11, 28)
    statement = med_statement("docetaxel", status="completed", start="2025-11-28", end="2026-04-03", id="doc")
    p = profile(*_base(), statement, *_doses(first, 6, "dose"), today=TODAY)
    docetaxel = [c for c in p.courses if c.ingredients == ("docetaxel",)]
    assert len(docetaxel) == 1
    [course] = docetaxel
    assert (course.cycles, course.cycles_estimated, len(course.doses)) == (6, False, 6)
    assert "MedicationStatement/doc" in course.refs and len(course.refs) == 7
    assert (course.start, course.end) == (first, dt.date(2026, 4, 3))
    assert p.value("taxane.cycles") == course.cycles  # the cards and the page count alike


def test_a_restart_after_a_gap_stays_a_second_course():
    first = med_statement("paclitaxel", status="completed", start="2025-11-28", end="2026-01-09", id="pac1")
    again = med_statement("paclitaxel", status="completed", start="2026-03-01", end="2026-04-12", id="pac2")
    p = profile(*_base(), first, again, today=TODAY)
    assert [c.refs for c in p.courses if c.ingredients == ("paclitaxel",)] == [
        ("MedicationStatement/pac1",), ("MedicationStatement/pac2",)]
