"""One FHIR R4 resource at a time: shape check and small value readers.

The criteria read plain dicts (fast), but only after each relevant resource
passed ``fhir.resources.R4B`` validation on its own, so one malformed or
R5-shaped resource becomes a data-quality finding instead of sinking the
request.  Every reader here is total: bad input gives ``None``, never an
exception.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import hashlib
import math
import os
import re
import threading
from collections import OrderedDict
from typing import Any, Iterable

import orjson
from pydantic import ValidationError

# Fields that exist in R5 but not in R4 for the types we read: their presence
# in a resource that fails R4 validation means "an R5 resource", not "garbage".
R5_MARKERS: dict[str, frozenset[str]] = {
    "MedicationStatement": frozenset({"medication", "adherence", "relatedClinicalInformation"}),
    "MedicationRequest": frozenset({"medication", "informationSource", "renderedDosageInstruction", "effectiveDosePeriod"}),
    "MedicationAdministration": frozenset({"medication", "occurenceDateTime", "occurencePeriod", "isSubPotent"}),
    "Observation": frozenset({"triggeredBy", "instantiatesCanonical", "bodyStructure"}),
    "Condition": frozenset({"participant"}),
    "Patient": frozenset(),
    "Medication": frozenset({"totalVolume", "doseForm"}) ,
}

_MODELS: dict[str, Any] = {}


def _model(resource_type: str):
    model = _MODELS.get(resource_type)
    if model is None:
        from fhir.resources.R4B import get_fhir_model_class

        model = _MODELS[resource_type] = get_fhir_model_class(resource_type)
    return model


def reference_of(resource: dict) -> str:
    """``Type/id`` (or ``Type/?`` when the id is missing) for provenance."""
    return f"{resource.get('resourceType', '?')}/{resource.get('id') or '?'}"


# Validation results by resource content.  The same patient's resources come
# back on every hook of a session (patient-view on chart open, order-select on
# each selection, order-sign), and pydantic validation (~0.09 ms a resource)
# was most of a call's time; the key (a hash of the resource's repr, which
# tells 1 from 1.0 from True and lists from tuples) costs ~0.005 ms.  Same
# content, same verdict: the message depends only on the resource.  Bounded,
# least recently used first out.  Keys are hashes; values are verdicts, which
# name a resource id and fields, never values.
CHECK_CACHE_SIZE = 20_000
_checked: OrderedDict[bytes, tuple[str, str] | None] = OrderedDict()
_checked_lock = threading.Lock()


def _content_key(resource: dict) -> bytes | None:
    try:
        text = repr(resource)
    except Exception:  # an object with a broken __repr__ (never JSON data): not cached
        return None
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def clear_check_cache() -> None:
    """Forget every cached verdict (benchmarks measure the cold path with this)."""
    with _checked_lock:
        _checked.clear()


def check_r4(resource: dict) -> tuple[str, str] | None:
    """Validate one resource as FHIR R4; ``None`` when fine, else (finding code, message).

    The message names the field and the error, never the value (it may be
    patient data).  Verdicts are cached by content (see ``_checked``).
    """
    key = _content_key(resource)
    if key is not None:
        with _checked_lock:
            if key in _checked:
                _checked.move_to_end(key)
                return _checked[key]
    result = _check_r4(resource)
    if key is not None:
        with _checked_lock:
            _checked[key] = result
            if len(_checked) > CHECK_CACHE_SIZE:
                _checked.popitem(last=False)
    return result


_CHOICE = re.compile(r"Expect any of field value from this list \[([^\]]*)\]")


def field_path(error: dict) -> str:
    """Where a pydantic error is, as a person reads a FHIR path: ``dosageInstruction[0].timing``.

    An error of the whole resource has no location; fhir.resources raises it
    for a missing choice element (``medication[x]``), which is then named,
    so that a diagnostic never reads ``(root)``.
    """
    parts = error.get("loc") or ()
    if parts:
        path = ""
        for p in parts:
            path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
        return path
    choices = _CHOICE.search(str(error.get("msg", "")))
    if choices:
        names = [n.strip().strip("'\"") for n in choices.group(1).split(",") if n.strip()]
        stem = os.path.commonprefix(names)
        return f"{stem}[x] missing (one of {', '.join(names)})" if stem else f"one of {', '.join(names)} missing"
    return f"resource-level rule ({error.get('type', 'invalid')})"


def _check_r4(resource: dict) -> tuple[str, str] | None:
    rtype = resource.get("resourceType")
    try:
        _model(rtype).model_validate(resource)
        return None
    except ValidationError as exc:
        errors = exc.errors()
        fields = sorted({field_path(e) for e in errors})
        r5 = R5_MARKERS.get(rtype, frozenset()) & set(resource)
        if r5:
            return ("non-r4-resource",
                    f"{reference_of(resource)} looks like FHIR R5 (has {', '.join(sorted(r5))}); skipped")
        return ("malformed-resource",
                f"{reference_of(resource)} is not valid FHIR R4 ({'; '.join(fields[:5])}); skipped")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return ("malformed-resource", f"{reference_of(resource)} could not be read as FHIR R4 ({type(exc).__name__}); skipped")


# -- dates ------------------------------------------------------------------

class NumberOutOfRange(ValueError):
    """A JSON number beyond what a float can hold (``1e999``)."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        shown = literal if len(literal) <= 40 else literal[:37] + "..."
        raise NumberOutOfRange(f"a number out of range: {shown} is beyond "
                               "the largest value a 64-bit float can hold (about 1.8e308)")
    return value


_EXACT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def json_bytes(value: Any, newline: bool = False) -> bytes | None:
    """``value`` as orjson writes it when that is the JSON of what a parse gives; None otherwise.

    The one use of orjson's writer for data (the history memo's key, a draft's reading key,
    the hook answer, ``json_copy``): strings, 64-bit integers, finite floats, booleans, null,
    objects and arrays.  What orjson refuses or would write its own way — an integer beyond
    64 bits, a lone surrogate, a key that is not a string, a date, a dataclass, a subclass of
    str or dict — is None, and the caller takes the ``json`` way as before.
    """
    try:
        return orjson.dumps(value, option=_EXACT | orjson.OPT_APPEND_NEWLINE if newline else _EXACT)
    except (TypeError, orjson.JSONEncodeError):
        return None


def json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, immutable scalars); anything else by ``copy.deepcopy``.

    A fifth of an order-select's card rendering was ``copy.deepcopy`` of the resource a stop
    action sends back, most of it deepcopy's memo bookkeeping, which JSON does not need.
    The one copy of a record the core makes (cards, date shift).  An object or array is
    copied by an orjson round trip (2–3 µs for a resource, against 25 µs walked in Python),
    exact for what a JSON parse gives: strings, 64-bit integers, finite floats, booleans,
    null, objects, arrays (it would turn a tuple into a list, which no parse makes).  What
    orjson will not write as it came (``json_bytes`` is None) is walked as before.
    """
    if isinstance(value, (dict, list)):
        data = json_bytes(value)
        if data is not None:
            return orjson.loads(data)
    return _walked_copy(value)


def _walked_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walked_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walked_copy(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    return copy.deepcopy(value)


def strict_json_loads(text: str | bytes) -> Any:
    """``json.loads`` as JSON (RFC 8259) reads it: no NaN or Infinity, no number beyond a float.

    Python's parser accepts ``NaN``, ``Infinity`` and reads ``1e999`` as infinity, which
    no FHIR reader expects (and orjson writes as null, so such a record would share the
    history memo's key with a null).  The one parse of untrusted JSON: request bodies and
    FHIR servers' answers.  Raises ``ValueError`` (``NumberOutOfRange`` for the last case).
    """
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def entry_resources(bundle: dict) -> Iterable[Any]:
    """What each entry of a Bundle holds as its ``resource``, in order, object or not.

    Entries that are not objects are passed over, and so are search outcomes
    (``search.mode = outcome``: an OperationOutcome about the search, not part
    of the record).  The one reading of a Bundle's entries: the FHIR client and
    the intake both open Bundles with it, and each decides what a malformed
    resource is worth (the client drops it, the intake reports it).
    """
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        yield entry.get("resource")


def bundle_resources(bundle: dict) -> list[dict]:
    """The resources of a Bundle's entries (``entry_resources``), only those shaped like one."""
    return [r for r in entry_resources(bundle) if isinstance(r, dict) and isinstance(r.get("resourceType"), str)]


def parse_date(value: Any) -> dt.date | None:
    """The calendar date of a FHIR date/dateTime/instant (partial dates: first day)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return dt.date(int(value), 1, 1)
        if len(value) == 7:
            return dt.date(int(value[:4]), int(value[5:7]), 1)
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def observation_date(obs: dict) -> dt.date | None:
    """When the observation applies: effective[x], else issued."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        d = parse_date(obs.get(key))
        if d:
            return d
    period = obs.get("effectivePeriod")
    period = period if isinstance(period, dict) else {}
    d = parse_date(period.get("start")) or parse_date(period.get("end"))
    return d or parse_date(obs.get("issued"))


def condition_onset(condition: dict) -> dt.date | None:
    """When a Condition began: onsetDateTime, else onsetPeriod.start, else recordedDate."""
    return parse_date(condition.get("onsetDateTime")) or period_bounds(condition.get("onsetPeriod"))[0] \
        or parse_date(condition.get("recordedDate"))


def period_bounds(period: dict | None) -> tuple[dt.date | None, dt.date | None]:
    period = period if isinstance(period, dict) else {}
    return parse_date(period.get("start")), parse_date(period.get("end"))


# -- codeable concepts ------------------------------------------------------

def codings(codeable: Any) -> list[dict]:
    """The well-formed Codings of a CodeableConcept.

    A coding whose ``system`` or ``code`` is not a string (a list, a number)
    is not FHIR; it is dropped here so that no look-up downstream ever sees
    an unhashable or non-text code.
    """
    if not isinstance(codeable, dict):
        return []
    items = codeable.get("coding")
    if not isinstance(items, list):
        return []
    return [c for c in items if isinstance(c, dict)
            and isinstance(c.get("system", ""), str) and isinstance(c.get("code", ""), str)]


def codes(codeable: Any) -> set[str]:
    """The codes (any system) of a CodeableConcept."""
    return {c["code"] for c in codings(codeable) if c.get("code")}


def label(codeable: Any) -> str:
    """What to show for a CodeableConcept: its text, else the first display, else the first code."""
    shown = next((t for t in texts(codeable) if t), None)
    if shown:
        return shown
    return next((c["code"] for c in codings(codeable) if c.get("code")), "")


def texts(codeable: Any) -> list[str]:
    """``text`` then every coding ``display`` of a CodeableConcept."""
    if not isinstance(codeable, dict):
        return []
    out = [codeable["text"]] if isinstance(codeable.get("text"), str) else []
    out += [c["display"] for c in codings(codeable) if isinstance(c.get("display"), str)]
    return out


def first_codeable(items: Any) -> Iterable[dict]:
    for item in items or ():
        if isinstance(item, dict):
            yield item


# -- quantities -------------------------------------------------------------

_NUMBER = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*(\d+(?:[.,]\d+)?)\s*(%|percent)?\s*$", re.IGNORECASE)
_PERCENT_UNITS = {"%", "percent", "pct"}
_FRACTION_UNITS = {"1", "{ratio}", "{fraction}", "ratio", "fraction"}


def finite_number(value: Any) -> float | None:
    """A finite float, or ``None``.

    JSON allows numbers no float holds: an integer of 310+ digits overflows
    ``float()`` and ``1e400`` parses as infinity.  Such a value (from a hook
    request or a FHIR server's response) is unreadable, like text where a
    number belongs, and must cost the reader a finding, never the request.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def quantity_number(quantity: Any) -> float | None:
    """``Quantity.value`` as a finite float (``None`` when absent, not a number or out of float range)."""
    return finite_number(quantity.get("value")) if isinstance(quantity, dict) else None


def percent_value(obs: dict) -> tuple[float | None, str | None, str | None]:
    """A percentage from valueQuantity / valueInteger / valueString.

    Returns (value in %, comparator, problem). UCUM ``%`` is taken as is; a
    unitless or ``1`` quantity ≤ 1 is a fraction and is multiplied by 100;
    any other unit is a problem (not guessed).
    """
    q = obs.get("valueQuantity")
    if isinstance(q, dict):
        v = quantity_number(q)
        if v is None:
            return None, None, "quantity without a number"
        unit = (q.get("code") or q.get("unit") or "").strip().lower()
        comparator = q.get("comparator")
        if unit in _PERCENT_UNITS:
            pass
        elif unit in _FRACTION_UNITS or unit == "":
            if 0 <= v <= 1 and unit in _FRACTION_UNITS:
                v = v * 100
            elif unit == "" and 0 <= v < 1:
                v = v * 100
        else:
            return None, None, f"unexpected unit {unit!r}"
        if not 0 <= v <= 100:
            return None, None, "percentage outside 0–100"
        return v, comparator, None
    if "valueInteger" in obs:
        v = finite_number(obs.get("valueInteger"))
        if v is not None and 0 <= v <= 100:
            return v, None, None
        return None, None, "integer outside 0–100"
    s = obs.get("valueString")
    if isinstance(s, str):
        parsed = _text_number(s)
        if parsed is not None and 0 <= parsed[0] <= 100:
            return parsed[0], parsed[1], None
        return None, None, "text is not a percentage"
    return None, None, None


def number_value(obs: dict) -> float | None:
    """A plain number from valueQuantity, valueRatio, valueInteger or a numeric valueString."""
    q = obs.get("valueQuantity")
    if isinstance(q, dict):
        return quantity_number(q)
    r = obs.get("valueRatio")
    if isinstance(r, dict):
        n, d = quantity_number(r.get("numerator")), quantity_number(r.get("denominator"))
        if n is not None and d:
            ratio = n / d
            return ratio if math.isfinite(ratio) else None
        return None
    if "valueInteger" in obs:
        return finite_number(obs.get("valueInteger"))
    s = obs.get("valueString")
    if isinstance(s, str):
        parsed = _text_number(s)
        if parsed is not None:
            return finite_number(parsed[0])
    return None


def _text_number(text: str) -> tuple[float, str | None] | None:
    """The number in a valueString such as ``"≥ 10,5 %"`` and its comparator in FHIR's ASCII form.

    ``None`` when the text is not one number.  One reading for ``percent_value``
    and ``number_value``: a decimal comma and ``≤``/``≥`` count the same in both.
    """
    m = _NUMBER.match(text)
    if not m:
        return None
    comparator = {"≤": "<=", "≥": ">="}.get(m.group(1), m.group(1))
    return float(m.group(2).replace(",", ".")), comparator
