"""Terminology: the ValueSets, CodeSystems and ConceptMaps in ``fhir_profiles/terminology``.

Loaded once at start-up (``load_terminology``) into plain dictionaries so that
every look-up during a hook call is an O(1) ``dict`` access; nothing here is
parsed or compiled per request.  Knowledge is data: to teach the service a new
code, edit the JSON artifact, not this module.

A broken artifact raises ``KnowledgeError`` naming the file and the JSON path,
so the service refuses to start instead of silently missing a drug or a code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

from ..errors import KnowledgeError
from .artifact import fail, read_json, validate_r4

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
HGNC = "http://www.genenames.org"
INGREDIENT_SYSTEM = "http://her2-cds.example.org/fhir/CodeSystem/ingredient"  # CodeSystem-ingredient.json
# A ConceptMap group with this source maps phrases of free report text, in order (first match wins).
REPORT_TEXT = "urn:her2-cds:report-text"
# A ConceptMap group with this source maps notations of free report text: each element code is a
# regular expression (Python ``re``, case-insensitive, searched), compiled once at start-up.
REPORT_TEXT_PATTERN = "urn:her2-cds:report-text-pattern"
# A CodeSystem concept property: multiply a value in this unit (the concept code) by it to get the
# CodeSystem's unit (CodeSystem-neutrophil-count-unit).
CONVERSION_FACTOR = "conversion-factor"
# What the criteria read through these methods; a missing one would silently read nothing.
_REQUIRED = ("ConceptMap/report-text", "ConceptMap/condition-severity-grade", "CodeSystem/neutrophil-count-unit")

# Systems that real EHRs spell differently; all are folded to the canonical URI.
_SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "http://loinc.org/": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://snomed.info/sct/": SNOMED,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10": ICD10CM,  # WHO ICD-10 shares the C-chapter codes used here
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "urn:oid:2.16.840.1.113883.6.73": ATC,
    "http://www.whocc.no/atc/": ATC,
    "https://www.whocc.no/atc": ATC,
    "http://www.genenames.org/": HGNC,
    "https://www.genenames.org": HGNC,
    "http://www.genenames.org/geneId": HGNC,
}

_PREFIX_SYSTEMS = {ICD10CM}  # is-a is a code prefix in ICD-10-CM
# ValueSet is-a filters that a code prefix answers without a terminology server: ICD-10-CM, and
# WHO ATC, whose levels are prefixes (L, L01, L01F, L01FD, L01FD01).  ATC concept lists and the
# ATC ConceptMaps stay exact.
_VS_PREFIX_SYSTEMS = {ICD10CM, ATC}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


# The designation use of a concept's clinical short name (CodeSystem-designation-use).
SHORT_NAME_USE = ("http://her2-cds.example.org/fhir/CodeSystem/designation-use", "clinical-short-name")


def canonical_system(system: str | None) -> str:
    """Fold a code system URI to the form the artifacts use."""
    if not system:
        return ""
    return _SYSTEM_ALIASES.get(system, system)


def normalize_text(text: str) -> str:
    """Lower-case and turn punctuation into single spaces ("Trastuzumab-dkst" → "trastuzumab dkst")."""
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def normalize_unit(unit) -> str:
    """A unit as results write it, compared: lower case, no spaces, the micro sign as ``u`` ("10*3/µL" → "10*3/ul")."""
    return str(unit or "").replace("µ", "u").replace("μ", "u").replace(" ", "").lower()


def _icd_key(code: str) -> str:
    return code.upper().replace(".", "")


@dataclass(frozen=True)
class Drug:
    """What a medication code or name means to the rules."""

    ingredients: tuple[str, ...]  # the ingredient itself first, then components (Phesgo)
    classes: tuple[str, ...]


class Terminology:
    """Immutable look-up tables built from the artifacts."""

    def __init__(self, valuesets, valueset_prefixes, valueset_excludes, maps, map_prefixes,
                 drugs_by_code, drugs_by_name, name_pattern, artifacts, valueset_codes=None,
                 displays=None, titles=None, intervals=None, broader=None, anticancer_classes=frozenset(), phrases=None, standard_schedules=None,
                 short_names=None, patterns=None, unit_factors=None):
        self._valuesets: Mapping[tuple[str, str], frozenset[str]] = valuesets
        self._vs_prefixes: Mapping[tuple[str, str], frozenset[str]] = valueset_prefixes
        self._vs_excludes: Mapping[tuple[str, str], frozenset[str]] = valueset_excludes
        self._maps: Mapping[str, Mapping[tuple[str, str], str]] = maps
        self._map_prefixes: Mapping[str, Mapping[tuple[str, str], str]] = map_prefixes
        self._drugs_by_code: Mapping[tuple[str, str], Drug] = drugs_by_code
        self._drugs_by_name: Mapping[str, Drug] = drugs_by_name
        self._name_pattern: re.Pattern | None = name_pattern
        self.artifacts: tuple[str, ...] = artifacts
        self._vs_codes: Mapping[str, tuple[tuple[str, str], ...]] = valueset_codes or MappingProxyType({})
        # (system, code) → display, and artifact id → title: the words the SMART page shows
        self._displays: Mapping[tuple[str, str], str] = displays or {}
        self._titles: Mapping[str, str] = titles or {}
        # (system, code) → the clinical short name (designation use clinical-short-name): "HER2 IHC"
        self._short_names: Mapping[tuple[str, str], str] = short_names or {}
        # ingredient → labelled interval (days) of a drug given at intervals in clinic
        self._intervals: Mapping[str, int] = intervals or {}
        # ingredient → its one standard schedule (CodeSystem-ingredient standard-schedule), for cycle estimates
        self.standard_schedules: Mapping[str, str] = standard_schedules or MappingProxyType({})
        self._broader: Mapping[str, Mapping[str, tuple[str, ...]]] = broader or {}
        # drug classes of anticancer therapy (CodeSystem-drug-class property ``anticancer``): what a
        # line's regimen and the current anticancer regimen are made of
        self.anticancer_classes: frozenset[str] = anticancer_classes
        self._phrases: Mapping[str, tuple[tuple[str, str], ...]] = phrases or {}
        # map id → (compiled pattern, target) of its report-text-pattern group, in ConceptMap order
        self._patterns: Mapping[str, tuple[tuple[re.Pattern, str], ...]] = patterns or {}
        # CodeSystem id → normalized unit → factor (concept property conversion-factor)
        self._unit_factors: Mapping[str, Mapping[str, float]] = unit_factors or {}

    def unit_factor(self, codesystem_id: str, unit) -> float | None:
        """The factor that turns a value in ``unit`` into the unit of CodeSystem ``codesystem_id``, if it is listed.

        ``unit`` is compared as ``normalize_unit`` writes it; a unit not in the
        CodeSystem is ``None``, never a guess.
        """
        return self._unit_factors.get(codesystem_id, {}).get(normalize_unit(unit))

    def administration_interval(self, ingredient: str) -> int | None:
        """Days between clinic administrations of ``ingredient`` per its label (CodeSystem-ingredient), if periodic."""
        return self._intervals.get(ingredient)

    def broader(self, system: str, code: str) -> tuple[str, ...]:
        """The ancestors of ``code`` in a hierarchical CodeSystem (is-a), nearest last."""
        return tuple(self._broader.get(canonical_system(system), {}).get(code, ()))

    def codes(self, system: str) -> list[str]:
        """Every code the artifacts give a display for in ``system``."""
        system = canonical_system(system)
        return [code for (s, code) in self._displays if s == system]

    def display(self, system: str | None, code: str | None) -> str | None:
        """The display name the artifacts give system|code (ValueSet or CodeSystem concept), if any."""
        if not code:
            return None
        return self._displays.get((canonical_system(system), code))

    def short_name(self, system: str | None, code: str | None) -> str | None:
        """The clinical short name the artifacts give system|code ("HER2 IHC", "LVEF"), if any.

        A result's LOINC long name ("HER2 [Presence] in Breast cancer specimen by
        Immune stain") is exact but not what an oncologist reads; the short name is
        a ``designation`` of the ValueSet concept (use ``clinical-short-name``).
        """
        if not code:
            return None
        return self._short_names.get((canonical_system(system), code))

    def title(self, artifact_id: str | None) -> str | None:
        """The title of a ValueSet or CodeSystem by id (``her2-ihc`` → "HER2 by immunohistochemistry")."""
        return self._titles.get(artifact_id or "")

    # -- value sets -----------------------------------------------------------
    def valuesets_of(self, system: str | None, code: str | None) -> frozenset[str]:
        """The ids of every ValueSet that contains system|code: its concepts, its is-a prefixes (ICD-10-CM,
        ATC), less its excluded concepts (in every system, as the loader stores them)."""
        if not code:
            return frozenset()
        system = canonical_system(system)
        exact_key = _icd_key(code) if system in _PREFIX_SYSTEMS else code  # ICD concepts match normalized
        found = self._valuesets.get((system, exact_key), frozenset())
        if system in _VS_PREFIX_SYSTEMS:
            key = _icd_key(code)
            found = found.union(*(self._vs_prefixes.get((system, key[:n]), frozenset()) for n in range(len(key), 0, -1)))
        excluded = self._vs_excludes.get((system, exact_key))
        return found - excluded if excluded else found

    def valueset_codes(self, valueset_id: str) -> tuple[tuple[str, str], ...]:
        """The ``(system, code)`` concepts a ValueSet includes, in artifact order (filters not expanded).

        What a FHIR search for the ValueSet's members asks for, e.g. discovery's prefetch queries.
        """
        try:
            return self._vs_codes[valueset_id]
        except KeyError:
            raise KeyError(f"no ValueSet with id {valueset_id!r} in fhir_profiles/terminology") from None

    def in_valueset(self, valueset_id: str, system: str | None, code: str | None) -> bool:
        return valueset_id in self.valuesets_of(system, code)

    def ingredient_in(self, valueset_id: str, ingredient: str) -> bool:
        """True if an ingredient (CodeSystem-ingredient code) is in the ValueSet, e.g. ``trastuzumab-based``."""
        return self.in_valueset(valueset_id, INGREDIENT_SYSTEM, ingredient)

    def codings_in(self, valueset_id: str, codeable: dict | None) -> bool:
        """True if any coding of a CodeableConcept dict is in the ValueSet."""
        for c in (codeable or {}).get("coding") or ():
            if isinstance(c, dict) and self.in_valueset(valueset_id, c.get("system"), c.get("code")):
                return True
        return False

    # -- concept maps ---------------------------------------------------------
    def translate(self, map_id: str, system: str | None, code: str | None) -> str | None:
        """Target code of ConceptMap ``map_id`` for system|code (ICD-10-CM: longest prefix)."""
        if not code:
            return None
        system = canonical_system(system)
        table = self._maps.get(map_id, {})
        if system in _PREFIX_SYSTEMS:
            key = _icd_key(code)
            prefixes = self._map_prefixes.get(map_id, {})
            for n in range(len(key), 0, -1):
                hit = prefixes.get((system, key[:n]))
                if hit is not None:
                    return hit
            return None
        return table.get((system, code))

    def translate_text(self, map_id: str, text: str | None) -> str | None:
        """Target of the first report-text phrase of ConceptMap ``map_id`` that ``text`` contains."""
        low = (text or "").lower()
        for phrase, target in self._phrases.get(map_id, ()):
            if phrase in low:
                return target
        return None

    def text_states(self, map_id: str, text: str | None, target: str) -> bool:
        """True if a report-text phrase or pattern of ConceptMap ``map_id`` that maps to ``target`` occurs in ``text``.

        Phrases are case-insensitive substrings, patterns case-insensitive
        regular expressions searched anywhere; the order of the elements does
        not matter here (any one that occurs states the finding).
        """
        if not text:
            return False
        low = text.lower()
        if any(tg == target and phrase in low for phrase, tg in self._phrases.get(map_id, ())):
            return True
        return any(tg == target and pattern.search(text) for pattern, tg in self._patterns.get(map_id, ()))

    def read_text_pattern(self, map_id: str, text: str | None) -> str | None:
        """Target of the report-text pattern of ConceptMap ``map_id`` written first (leftmost) in ``text``.

        Where two patterns match at the same place, the earlier element wins.
        Leftmost, not first in order: "Grade 3, was grade 1" is grade 3 whatever
        the order of the grade patterns.
        """
        best: tuple[int, str] | None = None
        for pattern, target in self._patterns.get(map_id, ()):
            m = pattern.search(text or "")
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), target)
        return best[1] if best else None

    def translate_codeable(self, map_id: str, codeable: dict | None) -> str | None:
        """First mapped coding of a CodeableConcept dict."""
        for c in (codeable or {}).get("coding") or ():
            if isinstance(c, dict):
                hit = self.translate(map_id, c.get("system"), c.get("code"))
                if hit is not None:
                    return hit
        return None

    # -- drugs ------------------------------------------------------------------
    def drug_for_code(self, system: str | None, code: str | None) -> Drug | None:
        if not code:
            return None
        return self._drugs_by_code.get((canonical_system(system), code.strip()))

    def drugs_in_text(self, text: str | None) -> list[Drug]:
        """Every known ingredient, brand or biosimilar name in free text (case-insensitive).

        One pre-compiled alternation, longest names first, so that
        "trastuzumab deruxtecan" is never read as plain trastuzumab.
        """
        if not text or self._name_pattern is None:
            return []
        norm = " " + normalize_text(text) + " "
        return [self._drugs_by_name[m] for m in self._name_pattern.findall(norm)]

    def drugs_for_codeable(self, codeable: dict | None) -> list[Drug]:
        """Codes first (RxNorm/ATC); only when no code maps, the displays and text."""
        codeable = codeable or {}
        found: list[Drug] = []
        codings = [c for c in codeable.get("coding") or () if isinstance(c, dict)]
        for c in codings:
            d = self.drug_for_code(c.get("system"), c.get("code"))
            if d is not None and d not in found:
                found.append(d)
        if found:
            return found
        for text in [codeable.get("text")] + [c.get("display") for c in codings]:
            if isinstance(text, str):
                for d in self.drugs_in_text(text):
                    if d not in found:
                        found.append(d)
            if found:
                break
        return found


# ---------------------------------------------------------------------------
# loading


def _short_name(concept: dict) -> str | None:
    """A ValueSet or CodeSystem concept's clinical short name (designation use clinical-short-name)."""
    for d in concept.get("designation") or ():
        use = (d or {}).get("use") or {}
        if (use.get("system"), use.get("code")) == SHORT_NAME_USE and d.get("value"):
            return d["value"]
    return None


def _walk_concepts(concepts: Iterable[dict], parents: tuple[str, ...] = ()):
    for c in concepts or ():
        yield c, parents
        yield from _walk_concepts(c.get("concept") or (), parents + (c["code"],))


def load_terminology(profiles_dir) -> Terminology:
    """Read every artifact under ``profiles_dir/terminology`` and build the look-up tables.

    Codes only: the criteria's thresholds are ``knowledge.parameters``
    (``load_criteria_parameters``), a separate artifact with its own loader.
    """
    folder = Path(profiles_dir) / "terminology"
    files = sorted(folder.glob("*.json"))
    if not files:
        raise KnowledgeError(f"{folder}: no terminology artifacts (ValueSet/CodeSystem/ConceptMap JSON) found")
    docs: dict[str, tuple[Path, dict]] = {}
    for path in files:
        data = read_json(path, ("ValueSet", "CodeSystem", "ConceptMap"))
        validate_r4(path, data)
        key = f"{data['resourceType']}/{data.get('id')}"
        if key in docs:
            raise fail(path, "$.id", f"duplicate {key} (also in {docs[key][0].name})")
        docs[key] = (path, data)
    missing = [k for k in _REQUIRED if k not in docs]
    if missing:
        raise KnowledgeError(f"{folder}: the criteria need {', '.join(missing)} (one JSON file each)")

    # -- value sets
    vs: dict[tuple[str, str], set[str]] = {}
    vs_prefix: dict[tuple[str, str], set[str]] = {}
    vs_exclude: dict[tuple[str, str], set[str]] = {}
    vs_codes: dict[str, tuple[tuple[str, str], ...]] = {}
    for key, (path, data) in docs.items():
        if data["resourceType"] != "ValueSet":
            continue
        vid = data.get("id")
        compose = data.get("compose") or {}
        vs_codes[vid] = tuple((inc.get("system"), c["code"]) for inc in compose.get("include") or ()
                              for c in inc.get("concept") or ())
        for part, target in (("include", None), ("exclude", vs_exclude)):
            for i, inc in enumerate(compose.get(part) or ()):
                system = inc.get("system")
                if not system:
                    raise fail(path, f"$.compose.{part}[{i}].system", "required")
                for c in inc.get("concept") or ():
                    k = (system, _icd_key(c["code"]) if system in _PREFIX_SYSTEMS else c["code"])
                    (target if target is not None else vs).setdefault(k, set()).add(vid)
                for j, f in enumerate(inc.get("filter") or ()):
                    if part == "exclude" or system not in _VS_PREFIX_SYSTEMS or f.get("op") != "is-a":
                        raise fail(path, f"$.compose.{part}[{i}].filter[{j}]",
                                    "only 'is-a' filters on ICD-10-CM or ATC includes are supported without a "
                                    "terminology server")
                    vs_prefix.setdefault((system, _icd_key(f["value"])), set()).add(vid)

    # -- code systems
    code_systems: dict[str, set[str]] = {}
    for key, (path, data) in docs.items():
        if data["resourceType"] == "CodeSystem":
            code_systems[data["url"]] = {c["code"] for c, _ in _walk_concepts(data.get("concept") or ())}

    # -- concept maps (checked against the target CodeSystems)
    maps: dict[str, dict[tuple[str, str], str]] = {}
    map_prefix: dict[str, dict[tuple[str, str], str]] = {}
    phrases: dict[str, list[tuple[str, str]]] = {}  # map id → (phrase, target) in ConceptMap order
    patterns: dict[str, list[tuple[re.Pattern, str]]] = {}  # map id → (pattern, target) in ConceptMap order
    for key, (path, data) in docs.items():
        if data["resourceType"] != "ConceptMap":
            continue
        mid = data["id"]
        table = maps.setdefault(mid, {})
        ptable = map_prefix.setdefault(mid, {})
        for gi, grp in enumerate(data.get("group") or ()):
            source, target_system = grp.get("source"), grp.get("target")
            if not source or not target_system:
                raise fail(path, f"$.group[{gi}]", "source and target are required")
            known = code_systems.get(target_system)
            if known is None:
                raise fail(path, f"$.group[{gi}].target", f"no CodeSystem with url {target_system}")
            for ei, el in enumerate(grp.get("element") or ()):
                targets = el.get("target") or ()
                if len(targets) != 1:
                    raise fail(path, f"$.group[{gi}].element[{ei}].target", "exactly one target expected")
                tcode = targets[0].get("code")
                if tcode not in known:
                    raise fail(path, f"$.group[{gi}].element[{ei}].target[0].code",
                                f"{tcode!r} is not in {target_system}")
                if source == REPORT_TEXT:
                    phrases.setdefault(mid, []).append((el["code"].lower(), tcode))
                elif source == REPORT_TEXT_PATTERN:
                    try:
                        compiled = re.compile(el["code"], re.IGNORECASE)
                    except re.error as exc:
                        raise fail(path, f"$.group[{gi}].element[{ei}].code", f"not a regular expression: {exc}") from None
                    patterns.setdefault(mid, []).append((compiled, tcode))
                elif source in _PREFIX_SYSTEMS:
                    ptable[(source, _icd_key(el["code"]))] = tcode
                else:
                    table[(source, el["code"])] = tcode

    # -- display names and titles (what people read; no logic depends on them)
    displays: dict[tuple[str, str], str] = {}
    short_names: dict[tuple[str, str], str] = {}
    broader: dict[str, dict[str, tuple[str, ...]]] = {}  # CodeSystem url → code → its ancestors (is-a)
    anticancer: set[str] = set()  # drug classes marked anticancer (CodeSystem-drug-class property)
    titles: dict[str, str] = {}
    unit_factors: dict[str, dict[str, float]] = {}  # CodeSystem id → normalized unit → factor
    for key, (path, data) in docs.items():
        if data["resourceType"] == "CodeSystem" and any(p.get("code") == CONVERSION_FACTOR for p in data.get("property") or ()):
            unit_factors[data["id"]] = _unit_factors(path, data)
        if data.get("title") and data["resourceType"] in ("ValueSet", "CodeSystem"):
            titles.setdefault(data["id"], data["title"])
        if data["resourceType"] == "ValueSet":
            for inc in (data.get("compose") or {}).get("include") or ():
                for c in inc.get("concept") or ():
                    if c.get("display"):
                        displays.setdefault((canonical_system(inc.get("system")), c["code"]), c["display"])
                    if name := _short_name(c):
                        short_names.setdefault((canonical_system(inc.get("system")), c["code"]), name)
        elif data["resourceType"] == "CodeSystem":
            for c, parents in _walk_concepts(data.get("concept") or ()):
                if c.get("display"):
                    displays.setdefault((data["url"], c["code"]), c["display"])
                if name := _short_name(c):
                    short_names.setdefault((data["url"], c["code"]), name)
                if parents:
                    broader.setdefault(data["url"], {})[c["code"]] = parents
                if any(x.get("code") == "anticancer" and x.get("valueBoolean") for x in c.get("property") or ()):
                    anticancer.add(c["code"])

    # -- drugs: ingredient CodeSystem + drug-class hierarchy + drug-ingredient map
    drugs_by_code, drugs_by_name, pattern, intervals, schedules = _build_drugs(docs, maps)

    freeze = lambda d: MappingProxyType({k: frozenset(v) for k, v in d.items()})  # noqa: E731
    return Terminology(
        valuesets=freeze(vs), valueset_prefixes=freeze(vs_prefix), valueset_excludes=freeze(vs_exclude),
        maps=MappingProxyType({k: MappingProxyType(v) for k, v in maps.items()}),
        map_prefixes=MappingProxyType({k: MappingProxyType(v) for k, v in map_prefix.items()}),
        drugs_by_code=MappingProxyType(drugs_by_code), drugs_by_name=MappingProxyType(drugs_by_name),
        name_pattern=pattern, artifacts=tuple(sorted(docs)),
        valueset_codes=MappingProxyType(vs_codes),
        displays=MappingProxyType(displays), titles=MappingProxyType(titles),
        intervals=MappingProxyType(intervals), broader=MappingProxyType(broader),
        standard_schedules=MappingProxyType(schedules),
        anticancer_classes=frozenset(anticancer), short_names=MappingProxyType(short_names),
        phrases=MappingProxyType({k: tuple(v) for k, v in phrases.items()}),
        patterns=MappingProxyType({k: tuple(v) for k, v in patterns.items()}),
        unit_factors=MappingProxyType({k: MappingProxyType(v) for k, v in unit_factors.items()}),
    )


def _unit_factors(path: Path, data: dict) -> dict[str, float]:
    """normalized unit → factor of a CodeSystem whose concepts are units with a conversion-factor.

    Every concept needs a positive factor, and its code must be written as
    ``normalize_unit`` compares (a "K/uL" code would never match anything).
    """
    out: dict[str, float] = {}
    for i, c in enumerate(data.get("concept") or ()):
        code = c["code"]
        if normalize_unit(code) != code:
            raise fail(path, f"$.concept[{i}].code", f"{code!r} must be written as units are compared: {normalize_unit(code)!r}")
        factors = [p.get("valueDecimal", p.get("valueInteger")) for p in c.get("property") or ()
                   if p.get("code") == CONVERSION_FACTOR]
        if len(factors) != 1 or isinstance(factors[0], bool) or not isinstance(factors[0], (int, float)) \
                or factors[0] <= 0:
            raise fail(path, f"$.concept[{i}].property", f"{code!r} needs one positive {CONVERSION_FACTOR}")
        out[code] = factors[0]
    return out


def _build_drugs(docs, maps):
    ing_doc = docs.get("CodeSystem/ingredient")
    cls_doc = docs.get("CodeSystem/drug-class")
    if ing_doc is None or cls_doc is None:
        raise KnowledgeError("fhir_profiles/terminology: CodeSystem-ingredient.json and "
                             "CodeSystem-drug-class.json are required")
    _, cls_data = cls_doc
    ancestors = {c["code"]: parents for c, parents in _walk_concepts(cls_data.get("concept") or ())}
    ing_path, ing_data = ing_doc
    raw: dict[str, tuple[list[str], list[str]]] = {}
    synonyms: dict[str, str] = {}
    intervals: dict[str, int] = {}
    schedules: dict[str, str] = {}
    for i, c in enumerate(ing_data.get("concept") or ()):
        name = c["code"]
        classes, comps = [], []
        for p in c.get("property") or ():
            if p.get("code") == "class":
                if p.get("valueCode") not in ancestors:
                    raise fail(ing_path, f"$.concept[{i}].property", f"unknown drug class {p.get('valueCode')!r}")
                classes.append(p["valueCode"])
            elif p.get("code") == "component":
                comps.append(p.get("valueCode"))
            elif p.get("code") == "standard-schedule":
                if p.get("valueCode") not in ("3-weekly", "weekly"):
                    raise fail(ing_path, f"$.concept[{i}].property", "standard-schedule is 3-weekly or weekly")
                schedules[name] = p["valueCode"]
            elif p.get("code") == "administration-interval-days":
                if not isinstance(p.get("valueInteger"), int) or p["valueInteger"] <= 0:
                    raise fail(ing_path, f"$.concept[{i}].property", "administration-interval-days needs a positive valueInteger")
                intervals[name] = p["valueInteger"]
        raw[name] = (classes, comps)
        for label in [name, c.get("display") or name] + [d.get("value", "") for d in c.get("designation") or ()]:
            norm = normalize_text(label)
            if not norm:
                continue
            if synonyms.get(norm, name) != name:
                raise fail(ing_path, f"$.concept[{i}].designation",
                            f"name {label!r} already means {synonyms[norm]!r}")
            synonyms[norm] = name

    def drug(name: str) -> Drug:
        classes, comps = raw[name]
        ingredients = [name] + [x for x in comps]
        all_classes: list[str] = []
        for ing in ingredients:
            if ing not in raw:
                raise fail(ing_path, "$.concept", f"component {ing!r} of {name!r} is not an ingredient")
            for k in raw[ing][0]:
                for x in (k,) + tuple(ancestors[k]):
                    if x not in all_classes:
                        all_classes.append(x)
        return Drug(ingredients=tuple(ingredients), classes=tuple(all_classes))

    by_ingredient = {name: drug(name) for name in raw}
    by_code = {k: by_ingredient[v] for k, v in maps.get("drug-ingredient", {}).items()}
    by_name = {syn: by_ingredient[name] for syn, name in synonyms.items()}
    alternatives = sorted(by_name, key=len, reverse=True)
    pattern = re.compile(r"(?<= )(" + "|".join(re.escape(a) for a in alternatives) + r")(?= )") if alternatives else None
    return by_code, by_name, pattern, intervals, schedules
