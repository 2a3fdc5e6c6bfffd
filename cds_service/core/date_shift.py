"""Move every date in FHIR R4 resources by a whole number of days.

Why: the fixture patients are written relative to an anchor day ("LVEF two
weeks ago" is the anchor minus 14 days).  Loaded unchanged months later, every
interval the rules measure against *today* has grown and the demo shows cards
that are artefacts of its age.  Moving every date by the same number of days
keeps every interval, every age and every "days since" exactly as written, so
the cards on the loading day are those the fixtures were written for.

Why the FHIR schema and not a pattern over every string: only an element whose
type is ``date``, ``dateTime`` or ``instant`` (``Period.start``/``end`` are
``dateTime``) is a date.  A ``string`` that happens to read "2025-04" is text a
person wrote and stays as written.  The element types come from the
fhir.resources R4B models; a key the model does not know (or a resource type it
does not know) is left as it is: this function moves dates, it does not judge
validity (the FHIR server does).

Why whole days and text surgery: a ``dateTime`` keeps its time of day, its
fractional seconds and its timezone offset character for character; only the
calendar day moves.  A partial date keeps its precision (a month stays a
month, a year a year): it names an interval, and it moves to the month (year)
containing its shifted middle, so a month is not pulled into the previous one
by a shift of a few days.

Pure: no I/O, the input is not modified.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import types
import typing
from functools import lru_cache

from fhir.resources.R4B import get_fhir_model_class

from .parse import json_copy

__all__ = ["shift_date_string", "shift_resource", "days_between"]

#: The fhir_core annotation markers of the three date-bearing primitive types.
_DATE_TYPES = frozenset({"Date", "DateTime", "Instant"})
_DATE = re.compile(r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?P<rest>T.*)?)?)?\Z", re.DOTALL)
_RESOURCE = "fhir.resources.R4B.resource.Resource"

# What a JSON key holds, per model class: a date, an element of a model class, or any resource.
_Kind = tuple[str, typing.Any]


def days_between(anchor: dt.date, today: dt.date) -> int:
    """The shift that makes ``anchor`` fall on ``today`` (negative when today is earlier)."""
    return (today - anchor).days


def shift_date_string(value: str, days: int) -> str:
    """``value`` (a FHIR date, dateTime or instant) moved by ``days`` days, precision kept.

    A string that is not one of those forms is returned as it is.
    """
    if not days:
        return value
    m = _DATE.match(value)
    if not m:
        return value
    year = int(m["y"])
    try:
        if m["m"] is None:  # a year: the year containing its shifted middle (2 July)
            return f"{(dt.date(year, 7, 2) + dt.timedelta(days=days)).year:04d}"
        month = int(m["m"])
        if m["d"] is None:  # a month: the month containing its shifted middle (the 15th)
            moved = dt.date(year, month, 15) + dt.timedelta(days=days)
            return f"{moved.year:04d}-{moved.month:02d}"
        moved = dt.date(year, month, int(m["d"])) + dt.timedelta(days=days)
    except ValueError:  # not a calendar date (month 13, 30 February): not ours to judge
        return value
    except OverflowError:
        raise ValueError(f"moving {value!r} by {days} days leaves the calendar (years 1-9999)") from None
    return moved.isoformat() + (m["rest"] or "")


def shift_resource(resource: dict, days: int) -> dict:
    """A copy of ``resource`` (any R4 resource, Bundles and contained resources included) with every date moved."""
    if not isinstance(resource, dict):
        return resource
    klass = _resource_class(resource.get("resourceType"))
    if klass is None:
        return json_copy(resource)
    return _shift(resource, klass, days)


def _shift(node, klass, days: int):
    if isinstance(node, list):
        return [_shift(item, klass, days) for item in node]
    if not isinstance(node, dict):
        return node
    fields = _fields(klass)
    out = {}
    for key, value in node.items():
        kind = fields.get(key)
        if kind is None:
            out[key] = json_copy(value)
        elif kind[0] == "date":
            out[key] = _shift_value(value, days)
        elif kind[0] == "resource":
            out[key] = [shift_resource(v, days) for v in value] if isinstance(value, list) else shift_resource(value, days)
        else:
            out[key] = _shift(value, kind[1], days)
    return out


def _shift_value(value, days: int):
    if isinstance(value, list):  # a repeating date element (Timing.event); nulls keep their place
        return [_shift_value(v, days) for v in value]
    return shift_date_string(value, days) if isinstance(value, str) else value


def _resource_class(resource_type):
    if not isinstance(resource_type, str) or not resource_type.isalpha():
        return None
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


@lru_cache(maxsize=None)
def _fields(klass) -> dict[str, _Kind]:
    """JSON key → what it holds, for the keys of ``klass`` that can hold a date somewhere below."""
    out: dict[str, _Kind] = {}
    for name, info in klass.model_fields.items():
        kind = _kind(info.annotation)
        if kind is not None:
            out[info.alias or name] = kind
    return out


def _kind(annotation) -> _Kind | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        markers = typing.get_args(annotation)[1:]
        return ("date", None) if any(type(m).__name__ in _DATE_TYPES for m in markers) else None
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            kind = _kind(arg)
            if kind is not None:
                return kind
        return None
    path = getattr(annotation, "_model_klass", None)
    if not isinstance(path, str):
        return None
    if path == _RESOURCE:
        return ("resource", None)
    module, _, name = path.rpartition(".")
    return ("model", getattr(importlib.import_module(module), name))
