"""Fact values in words: dates, numbers and ``{{fact}}`` placeholders as a clinician reads them.

Shared by the cards and the SMART page, so both write a value the same way.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Mapping

from .conditions import fact_value

# --------------------------------------------------------------------------
# Fact values in note text
# --------------------------------------------------------------------------
# ``{{fact.name}}`` in a note is replaced by that fact's value, so a card resting on an
# estimate can say which course it estimated from ("≈ 6 docetaxel cycles (estimated from
# the course 2 Mar 2025 – 15 Jun 2025 …)").  Load-time checks reject unknown fact names.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FHIR_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T[0-9:.+\-Z]*)?)?)?$")


def human_date(d: dt.date | str) -> str:
    """A date as cards, notes and the SMART page write it: ``7 Apr 2025``.

    A FHIR date string keeps its precision (``2023`` stays ``2023``,
    ``2023-04`` is ``Apr 2023``; a dateTime is written by its day), so every
    date a clinician reads goes through this one function.  Text that is not
    a date comes back unchanged.
    """
    if isinstance(d, dt.datetime):
        d = d.date()
    if isinstance(d, dt.date):
        return f"{d.day} {d:%b %Y}"
    text = str(d)
    m = _FHIR_DATE.match(text)
    if not m:
        return text
    year, month, day = m.group(1), m.group(2), m.group(3)
    try:
        if day:
            return human_date(dt.date(int(year), int(month), int(day)))
        if month:
            return f"{dt.date(int(year), int(month), 1):%b} {year}"
    except ValueError:
        return text
    return year


_ISO_IN_TEXT = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:T[0-9:.+\-Z]+)?\b")


def human_dates_in(text: str) -> str:
    """``text`` with each ISO date in it written by ``human_date`` (a finding's or a fact note's dates)."""
    return _ISO_IN_TEXT.sub(lambda m: human_date(m.group(0)), text or "")


def format_value(value: Any, missing: str = "not recorded") -> str:
    """A fact value as a clinician reads it (notes, cards' "Why this card" and the SMART page)."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _text_value(value: Any) -> str:
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return human_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    return format_value(value)


def render_text(text: str, facts: Mapping[str, Any]) -> str:
    """``text`` with each ``{{fact.name}}`` replaced by the fact's value as a clinician reads it."""
    return PLACEHOLDER.sub(lambda m: _text_value(fact_value(facts, m.group(1))), text)
