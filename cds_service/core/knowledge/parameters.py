"""Clinical thresholds of the criteria, read from ``fhir_profiles/parameters/Parameters-criteria.json``.

Why a FHIR ``Parameters`` resource and not Python constants: the windows in
days and the percentage bounds are clinical knowledge that a reviewer must be
able to read and change next to the ValueSets, each with its why (the
``parameter-why`` extension), without reading code.  Loaded once at start-up;
a missing, mistyped or out-of-range parameter raises ``KnowledgeError`` naming
the file and the JSON path, so the service refuses to start rather than run
with a default nobody chose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import KnowledgeError
from .artifact import read_json, validate_r4

FILE = Path("parameters") / "Parameters-criteria.json"
WHY_URL = "http://her2-cds.example.org/fhir/StructureDefinition/parameter-why"


@dataclass(frozen=True)
class DefaultLimit:
    """A limit with its unit (a ``valueQuantity`` parameter): used only for a result in that same unit."""

    value: float
    unit: str  # the UCUM code, compared with the result's unit


@dataclass(frozen=True)
class CriteriaParameters:
    """The thresholds ``criteria`` uses; field names are the parameter names with ``_`` for ``-``."""

    line_of_therapy_window_days: int
    reflex_ish_pairing_days: int
    min_cycle_gap_days: int
    receptor_positive_min_percent: float
    er_low_max_percent: float
    lvef_default_lln_percent: float
    periodic_administration_grace_days: int
    periodic_administration_max_interval_multiple: int
    default_uln_alt: DefaultLimit
    default_uln_ast: DefaultLimit
    default_uln_bilirubin: DefaultLimit
    default_uln_alkaline_phosphatase: DefaultLimit
    postmenopausal_age_years: int
    three_weekly_cycle_days: int
    schedule_tolerance_days: int
    ish_ratio_cutoff: float
    ish_copies_low_cutoff: float
    ish_copies_high_cutoff: float
    hcg_lookback_days: int


# parameter name → (value[x] keys accepted, minimum, maximum)
_SPEC = {
    "line-of-therapy-window-days": (("valueInteger",), 1, 365),
    "reflex-ish-pairing-days": (("valueInteger",), 1, 365),
    "min-cycle-gap-days": (("valueInteger",), 1, 90),
    "receptor-positive-min-percent": (("valueDecimal", "valueInteger"), 0, 100),
    "er-low-max-percent": (("valueDecimal", "valueInteger"), 0, 100),
    "lvef-default-lln-percent": (("valueDecimal", "valueInteger"), 30, 70),
    "periodic-administration-grace-days": (("valueInteger",), 0, 60),
    "periodic-administration-max-interval-multiple": (("valueInteger",), 1, 12),
    # a default upper limit of normal is a quantity: its unit is data, beside its value
    "default-uln-alt": (("valueQuantity",), 10, 200),
    "default-uln-ast": (("valueQuantity",), 10, 200),
    "default-uln-bilirubin": (("valueQuantity",), 0.5, 3),
    "default-uln-alkaline-phosphatase": (("valueQuantity",), 50, 500),
    "postmenopausal-age-years": (("valueInteger",), 40, 70),
    "three-weekly-cycle-days": (("valueInteger",), 14, 28),
    "schedule-tolerance-days": (("valueInteger",), 0, 7),
    "ish-ratio-cutoff": (("valueDecimal", "valueInteger"), 1, 4),
    "ish-copies-low-cutoff": (("valueDecimal", "valueInteger"), 1, 10),
    "ish-copies-high-cutoff": (("valueDecimal", "valueInteger"), 1, 12),
    "hcg-lookback-days": (("valueInteger",), 30, 400),
}


def load_criteria_parameters(profiles_dir) -> CriteriaParameters:
    """Read and check every criteria parameter; unknown names are errors too (a typo is not ignored)."""
    path = Path(profiles_dir) / FILE
    data = read_json(path, ("Parameters",))
    validate_r4(path, data)
    values: dict[str, float | int | DefaultLimit] = {}
    for i, p in enumerate(data.get("parameter") or ()):
        name = p.get("name")
        where = f"$.parameter[{i}]"
        if name not in _SPEC:
            raise KnowledgeError(f"{path}: {where}.name: unknown criteria parameter {name!r}")
        if name in values:
            raise KnowledgeError(f"{path}: {where}.name: duplicate parameter {name!r}")
        keys, low, high = _SPEC[name]
        key = next((k for k in keys if k in p), None)
        if key is None:
            raise KnowledgeError(f"{path}: {where}: {name} needs {' or '.join(keys)}")
        value, unit = p[key], None
        if key == "valueQuantity":
            unit = value.get("code") if isinstance(value, dict) else None
            if not isinstance(unit, str) or not unit.strip():
                raise KnowledgeError(f"{path}: {where}.{key}.code: {name} needs its unit (a UCUM code)")
            value = value.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise KnowledgeError(f"{path}: {where}.{key}: {name} must be a number from {low} to {high}")
        if not any(isinstance(e, dict) and e.get("url") == WHY_URL and e.get("valueString")
                   for e in p.get("extension") or ()):
            raise KnowledgeError(f"{path}: {where}.extension: {name} needs its why ({WHY_URL})")
        values[name] = DefaultLimit(float(value), unit) if unit is not None else value
    missing = [n for n in _SPEC if n not in values]
    if missing:
        raise KnowledgeError(f"{path}: $.parameter: missing {', '.join(missing)}")
    cast = {"int": int, "float": float, "DefaultLimit": lambda v: v}
    params = CriteriaParameters(**{f.name: cast[f.type](values[f.name.replace("_", "-")])
                                   for f in fields(CriteriaParameters)})
    if params.er_low_max_percent < params.receptor_positive_min_percent:
        raise KnowledgeError(f"{path}: $.parameter: er-low-max-percent is below receptor-positive-min-percent")
    return params
