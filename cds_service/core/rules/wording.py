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


def human_date(d: dt.date) -> str:
    """A date as cards and notes write it: ``7 Apr 2025``."""
    return f"{d.day} {d:%b %Y}"


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
