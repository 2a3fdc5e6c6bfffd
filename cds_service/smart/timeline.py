"""The treatment timeline picture of the SMART app, drawn server-side as SVG.

Why SVG built by hand: the picture must be produced without a front-end
build or a plotting library in the service's environment, it must scale in
any browser, and every label in it comes from the EHR (untrusted text), so
each one goes through ``_text``/``_attr`` escaping here and nowhere else.

``render_svg(profile, resources, today)`` is a pure function: the same
resources give the same bytes, which is what the tests check.

What it draws, one lane per kind of event, on a shared date axis:

* **Lines of therapy** (brackets above the drugs) — a heuristic shown as
  such: in the metastatic setting, a new line starts whenever an anti-HER2
  drug (or chemotherapy, when no anti-HER2 drug starts) that was not given
  before in that setting starts.  Endocrine or CDK4/6 additions to an ongoing
  anti-HER2 regimen (maintenance) stay in the same line.
* **Drugs** — one bar per medication, coloured by drug class, from the
  MedicationStatement/MedicationRequest dates (open bars run to today).
* **Induction cycles** — tick marks on taxane bars, one per cycle: the
  cycle count and dosing interval recorded on the medication when the
  profile has them, else one per 21 days (capped by ``taxane.cycles``).
* **Biomarkers** — HER2, ER, PR, PIK3CA results and LVEF values, labelled.
* **Events** — metastatic sites (Condition onset), ILD, disease progression
  (LOINC 97509-4 "worsened") and the metastatic diagnosis date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

LOINC = "http://loinc.org"
CYCLE_DAYS = 21

HER2_CODES = {"85319-2", "18474-7", "85318-4", "31150-6", "96893-3", "49683-6", "74860-8", "48676-1"}
ER_CODES = {"85337-4", "40556-3", "16112-5", "85329-1"}
PR_CODES = {"85339-0", "40557-1", "16113-3", "85325-9"}
LVEF_CODES = {"10230-1", "18043-0", "8808-8", "8810-4", "8811-2", "8806-2"}
PIK3CA_CODE = "69548-6"
DISEASE_STATUS = "97509-4"
WORSENED = "271299001"

# (class label, colour, lower-case name fragments). Order matters: the
# antibody-drug conjugates must match before plain trastuzumab.
DRUG_CLASSES: list[tuple[str, str, tuple[str, ...]]] = [
    ("HER2 ADC", "#7b3294", ("deruxtecan", "emtansine", "enhertu", "kadcyla", "t-dxd", "t-dm1")),
    ("HER2 TKI", "#c2185b", ("tucatinib", "lapatinib", "neratinib", "pyrotinib")),
    ("anti-HER2 antibody", "#1f5fa8", ("trastuzumab", "pertuzumab", "phesgo", "herceptin", "perjeta",
                                        "margetuximab")),
    ("taxane", "#e66101", ("docetaxel", "paclitaxel", "taxel")),
    ("CDK4/6 inhibitor", "#1a9850", ("palbociclib", "ribociclib", "abemaciclib")),
    ("endocrine", "#4dac26", ("letrozole", "anastrozole", "exemestane", "tamoxifen", "fulvestrant",
                               "elacestrant", "goserelin", "leuprolide")),
    ("PI3K inhibitor", "#66bd63", ("alpelisib", "inavolisib", "capivasertib")),
    ("chemotherapy", "#fdb863", ("capecitabine", "vinorelbine", "eribulin", "gemcitabine",
                                  "carboplatin", "cyclophosphamide", "doxorubicin", "epirubicin")),
]
OTHER_COLOUR = "#878787"
LINE_STARTERS = {"HER2 ADC", "HER2 TKI", "anti-HER2 antibody"}

WIDTH = 960
LEFT = 190          # room for lane labels
RIGHT = 30
ROW = 22


@dataclass(frozen=True)
class DrugSpan:
    name: str
    klass: str
    colour: str
    start: date
    end: date | None     # None = ongoing
    ref: str
    cycles: int | None = None          # completed cycles recorded on the medication
    period_days: float | None = None   # dosing interval, when recorded


@dataclass(frozen=True)
class Point:
    when: date
    label: str
    ref: str
    colour: str


# -- FHIR helpers (defensive: resources may be malformed) -----------------------

def _parse_date(value) -> date | None:
    """The date part of a FHIR date/dateTime; partial dates count as the first day."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    parts = value[:10].split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else 1
        day = int(parts[2]) if len(parts) > 2 else 1
        return date(year, month, day)
    except (ValueError, IndexError):
        return None


def _ref(res: dict) -> str:
    return f"{res.get('resourceType')}/{res.get('id')}"


def _codes(concept) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {c.get("code") for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")}


def _concept_text(concept) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"]:
        return concept["text"]
    for c in concept.get("coding") or []:
        if isinstance(c, dict) and (c.get("display") or c.get("code")):
            return str(c.get("display") or c.get("code"))
    return ""


def _period(res: dict, *names: str) -> tuple[date | None, date | None]:
    for name in names:
        value = res.get(name)
        if isinstance(value, dict):
            return _parse_date(value.get("start")), _parse_date(value.get("end"))
        if isinstance(value, str):
            d = _parse_date(value)
            return d, None
    return None, None


def drug_class(name: str) -> tuple[str, str]:
    """(class label, colour) of a drug by name fragments; colours only, no clinical logic."""
    low = name.lower()
    for label, colour, fragments in DRUG_CLASSES:
        if any(f in low for f in fragments):
            return label, colour
    return "other", OTHER_COLOUR


def _medication_name(res: dict) -> str:
    name = _concept_text(res.get("medicationCodeableConcept"))
    if not name:
        med = res.get("medicationReference")
        if isinstance(med, dict):
            name = str(med.get("display") or med.get("reference") or "")
    return name or "medication"


# -- extraction -----------------------------------------------------------------

# the criteria's class codes (terminology-based) → the drawing classes above
CLASS_CODES = [
    ("her2-adc", "HER2 ADC"), ("her2-tki", "HER2 TKI"), ("anti-her2-antibody", "anti-HER2 antibody"),
    ("taxane", "taxane"), ("cdk46-inhibitor", "CDK4/6 inhibitor"), ("pi3k-inhibitor", "PI3K inhibitor"),
    ("aromatase-inhibitor", "endocrine"), ("serm-serd", "endocrine"), ("gnrh-agonist", "endocrine"),
    ("endocrine", "endocrine"), ("chemotherapy", "chemotherapy"),
]
_COLOURS = {label: colour for label, colour, _ in DRUG_CLASSES}


def _episode_spans(profile) -> list[DrugSpan]:
    """Bars from the profile's normalized medication episodes (terminology-coded classes)."""
    spans = []
    for ep in getattr(profile, "medications", ()) or ():
        start = getattr(ep, "start", None)
        if not isinstance(start, date):
            continue
        classes = set(getattr(ep, "classes", ()) or ())
        klass = next((label for code, label in CLASS_CODES if code in classes), None)
        name = " + ".join(getattr(ep, "ingredients", ()) or ()) or getattr(ep, "text", "") or "medication"
        if klass is None:
            klass, _ = drug_class(name)
        end = getattr(ep, "end", None)
        if end is None and getattr(ep, "state", "") == "past":
            end = start
        spans.append(DrugSpan(name, klass, _COLOURS.get(klass, OTHER_COLOUR), start, end, ep.ref,
                              getattr(ep, "cycles", None), getattr(ep, "period_days", None)))
    spans.sort(key=lambda s: (s.start, s.name))
    return spans


def drug_spans(resources: list[dict], profile=None) -> list[DrugSpan]:
    """Medication bars: the profile's episodes when it has them, else MedicationStatements/Requests."""
    from_profile = _episode_spans(profile)
    if from_profile:
        return from_profile
    spans = []
    for res in resources:
        if not isinstance(res, dict):
            continue
        rtype = res.get("resourceType")
        if rtype == "MedicationStatement":
            if res.get("status") in ("entered-in-error", "not-taken"):
                continue
            start, end = _period(res, "effectivePeriod", "effectiveDateTime")
            start = start or _parse_date(res.get("dateAsserted"))
            if end is None and res.get("status") in ("completed", "stopped"):
                end = start  # finished, dates unknown: draw a short bar at the start
        elif rtype == "MedicationRequest":
            if res.get("status") in ("entered-in-error", "draft", "cancelled"):
                continue
            validity = (res.get("dispenseRequest") or {}).get("validityPeriod") if isinstance(
                res.get("dispenseRequest"), dict) else None
            start, end = (None, None)
            if isinstance(validity, dict):
                start, end = _parse_date(validity.get("start")), _parse_date(validity.get("end"))
            start = start or _parse_date(res.get("authoredOn"))
            if res.get("status") == "active":
                end = None
        else:
            continue
        if start is None:
            continue
        name = _medication_name(res)
        klass, colour = drug_class(name)
        spans.append(DrugSpan(name, klass, colour, start, end, _ref(res)))
    spans.sort(key=lambda s: (s.start, s.name))
    return spans


def _obs_label(res: dict, codes: set[str]) -> tuple[str, str] | None:
    """(short label, colour) for a biomarker Observation, or None if not one we draw."""
    value = _value_text(res)
    if codes & HER2_CODES:
        return f"HER2 {value}".strip(), "#1f5fa8"
    if codes & ER_CODES:
        return f"ER {value}".strip(), "#4dac26"
    if codes & PR_CODES:
        return f"PR {value}".strip(), "#66bd63"
    if PIK3CA_CODE in codes:
        return f"PIK3CA {value}".strip(), "#66bd63"
    if codes & LVEF_CODES:
        return f"LVEF {value}".strip(), "#d7191c"
    return None


def _value_text(res: dict) -> str:
    if isinstance(res.get("valueQuantity"), dict):
        q = res["valueQuantity"]
        unit = q.get("unit") or q.get("code") or ""
        value = q.get("value")
        if isinstance(value, (int, float)):
            value = f"{value:g}"
        return f"{value}{unit if unit == '%' else ' ' + unit if unit else ''}"
    for key in ("valueString", "valueInteger"):
        if key in res and res[key] is not None:
            return str(res[key])
    text = _concept_text(res.get("valueCodeableConcept"))
    if not text:
        for interp in res.get("interpretation") or []:
            text = _concept_text(interp)
            if text:
                break
    return text


def biomarker_points(resources: list[dict]) -> list[Point]:
    points = []
    for res in resources:
        if not isinstance(res, dict) or res.get("resourceType") != "Observation":
            continue
        if res.get("status") not in ("final", "amended", "corrected", None):
            continue
        label = _obs_label(res, _codes(res.get("code")))
        when = _period(res, "effectivePeriod", "effectiveDateTime")[0] or _parse_date(res.get("issued"))
        if label and when:
            points.append(Point(when, label[0], _ref(res), label[1]))
    points.sort(key=lambda p: (p.when, p.label))
    return points


def event_points(resources: list[dict], profile=None) -> list[Point]:
    """Metastatic sites, ILD, progression and the metastatic date from the profile."""
    points = []
    for res in resources:
        if not isinstance(res, dict):
            continue
        if res.get("resourceType") == "Condition":
            if _codes(res.get("verificationStatus")) & {"entered-in-error", "refuted"}:
                continue
            when = _period(res, "onsetPeriod", "onsetDateTime")[0] or _parse_date(res.get("recordedDate"))
            text = _concept_text(res.get("code"))
            low = text.lower()
            if when is None or not text:
                continue
            if "metasta" in low or "secondary" in low:
                points.append(Point(when, text, _ref(res), "#b2182b"))
            elif "interstitial" in low or "pneumonitis" in low:
                points.append(Point(when, text, _ref(res), "#762a83"))
            elif "carcinoma" in low or "neoplasm" in low or "cancer" in low:
                points.append(Point(when, text, _ref(res), "#404040"))
        elif res.get("resourceType") == "Observation" and DISEASE_STATUS in _codes(res.get("code")):
            if WORSENED in _codes(res.get("valueCodeableConcept")):
                when = _period(res, "effectivePeriod", "effectiveDateTime")[0]
                if when:
                    points.append(Point(when, "progression", _ref(res), "#b2182b"))
    metastatic_date = _fact_value(profile, "metastatic.date")
    when = _parse_date(metastatic_date)
    if when:
        points.append(Point(when, "metastatic (profile)", "profile: metastatic.date", "#b2182b"))
    points.sort(key=lambda p: (p.when, p.label))
    return points


def _fact_value(profile, name: str):
    facts = getattr(profile, "facts", None)
    if not facts or name not in facts:
        return None
    return getattr(facts[name], "value", None)


def therapy_lines(spans: list[DrugSpan], metastatic_date: date | None) -> list[tuple[int, date, date | None]]:
    """(line number, start, end-or-None) per line of therapy; see the module docstring."""
    if metastatic_date is None:
        return []
    lines: list[list] = []
    seen: set[str] = set()
    for span in spans:
        if span.start < metastatic_date - timedelta(days=14):
            continue
        key = span.name.lower()
        starts_line = span.klass in LINE_STARTERS or (span.klass in ("taxane", "chemotherapy") and not lines)
        if starts_line and key not in seen and (not lines or span.start > lines[-1][1] + timedelta(days=14)):
            lines.append([len(lines) + 1, span.start, span.end])
        elif lines:
            cur = lines[-1]
            cur[2] = None if (span.end is None or cur[2] is None) else max(cur[2], span.end)
        seen.add(key)
    # a line ends where the next one starts
    out = []
    for i, (n, start, end) in enumerate(lines):
        if i + 1 < len(lines):
            end = lines[i + 1][1]
        out.append((n, start, end))
    return out


# -- drawing --------------------------------------------------------------------

def _text(value: str) -> str:
    return escape(str(value))


def _attr(value: str) -> str:
    return quoteattr(str(value))


class _Axis:
    def __init__(self, first: date, last: date):
        self.first, self.last = first, last
        self.days = max((last - first).days, 1)

    def x(self, when: date) -> float:
        return round(LEFT + (WIDTH - LEFT - RIGHT) * (when - self.first).days / self.days, 1)


def render_svg(profile, resources: list[dict], today: date) -> str:
    """The whole picture as an SVG document (str). Pure; never raises on odd resources."""
    resources = [r for r in resources or [] if isinstance(r, dict)]
    spans = drug_spans(resources, profile)
    biomarkers = biomarker_points(resources)
    events = event_points(resources, profile)
    metastatic = _parse_date(_fact_value(profile, "metastatic.date"))
    if metastatic is None:
        mets = [p.when for p in events if "metasta" in p.label.lower() or "secondary" in p.label.lower()]
        metastatic = min(mets) if mets else None
    lines = therapy_lines(spans, metastatic)
    cycles = _fact_value(profile, "taxane.cycles")

    dates = [s.start for s in spans] + [s.end for s in spans if s.end] + [p.when for p in biomarkers + events]
    if not dates:
        return _empty_svg()
    first = min(dates) - timedelta(days=30)
    last = max(max(dates), today) + timedelta(days=30)
    axis = _Axis(first, last)

    drug_names = list(dict.fromkeys(s.name for s in spans))
    y = 30
    body: list[str] = []
    body.append(f'<text x="10" y="{y + 4}" class="lane">Lines of therapy</text>')
    for n, start, end in lines:
        x1, x2 = axis.x(start), axis.x(end or today)
        body.append(f'<g class="line"><title>{_text(f"Line {n} from {start.isoformat()} (heuristic)")}</title>'
                    f'<path d="M{x1},{y + 8} V{y} H{x2} V{y + 8}" fill="none" stroke="#333"/>'
                    f'<text x="{(x1 + x2) / 2}" y="{y - 3}" text-anchor="middle">L{n}</text></g>')
    if not lines:
        body.append(f'<text x="{LEFT}" y="{y + 4}" class="muted">no metastatic-setting therapy found</text>')
    y += 26
    for name in drug_names:
        body.append(f'<text x="10" y="{y + 4}" class="drug">{_text(_short(name, 28))}</text>')
        for span in (s for s in spans if s.name == name):
            x1 = axis.x(span.start)
            x2 = max(axis.x(span.end or today), x1 + 3)
            opacity = "" if span.end else ' fill-opacity="0.75"'
            status = f"{span.start.isoformat()} – {span.end.isoformat() if span.end else 'ongoing'}"
            body.append(f'<g class="drug-bar"><title>{_text(f"{span.name} ({span.klass}) {status} [{span.ref}]")}</title>'
                        f'<rect x="{x1}" y="{y - 7}" width="{round(x2 - x1, 1)}" height="12" rx="3" '
                        f'fill={_attr(span.colour)}{opacity}/></g>')
            if span.klass == "taxane":
                body.extend(_cycle_ticks(axis, span, today, cycles, y))
        y += ROW
    y += 6
    y = _point_lane(body, axis, "Biomarkers", biomarkers, y)
    y = _point_lane(body, axis, "Events", events, y)
    body.append(_axis_svg(axis, today, y))
    height = y + 40
    legend = _legend(height - 12)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Treatment timeline">'
        "<title>Treatment timeline</title>"
        "<style>text{font:11px sans-serif;fill:#222}.lane{font-weight:bold}.muted{fill:#777}"
        ".pt text{font-size:10px}</style>"
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>'
        + "".join(body) + legend + "</svg>"
    )


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _cycle_ticks(axis: _Axis, span: DrugSpan, today: date, cycles, y: int) -> list[str]:
    """One tick per cycle: the recorded count and interval when known, else every 21 days."""
    end = span.end or today
    interval = span.period_days if isinstance(span.period_days, (int, float)) and span.period_days >= 1 else CYCLE_DAYS
    count = int((end - span.start).days // interval) + 1
    if isinstance(span.cycles, int) and span.cycles >= 0:
        count = span.cycles
    elif isinstance(cycles, int) and cycles >= 0 and span.end is None:
        count = min(count, cycles)
    out = []
    for i in range(max(count, 0)):
        when = span.start + timedelta(days=round(interval * i))
        if (when > end and span.cycles is None) or when > axis.last:
            break
        x = axis.x(when)
        out.append(f'<line class="cycle" x1="{x}" y1="{y - 9}" x2="{x}" y2="{y + 7}" stroke="#000"><title>'
                   f'{_text(f"cycle {i + 1} ({when.isoformat()})")}</title></line>')
    return out


def _point_lane(body: list[str], axis: _Axis, label: str, points: list[Point], y: int) -> int:
    body.append(f'<text x="10" y="{y + 4}" class="lane">{_text(label)}</text>')
    if not points:
        body.append(f'<text x="{LEFT}" y="{y + 4}" class="muted">none recorded</text>')
        return y + ROW
    # stagger labels on up to three rows so that close points stay readable
    last_x = [-1e9, -1e9, -1e9]
    for p in points:
        x = axis.x(p.when)
        row = next((i for i, lx in enumerate(last_x) if x - lx > 90), 0)
        last_x[row] = x
        ty = y + row * 14
        body.append(f'<g class="pt"><title>{_text(f"{p.when.isoformat()}: {p.label} [{p.ref}]")}</title>'
                    f'<circle cx="{x}" cy="{y}" r="4" fill={_attr(p.colour)}/>'
                    f'<text x="{x + 6}" y="{ty + 4}">{_text(_short(p.label, 22))}</text></g>')
    return y + ROW + 28


def _axis_svg(axis: _Axis, today: date, y: int) -> str:
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#999"/>']
    yearly = axis.days > 730
    d = date(axis.first.year, axis.first.month, 1)
    while d <= axis.last:
        if d >= axis.first and (not yearly or d.month == 1):
            x = axis.x(d)
            label = str(d.year) if yearly or d.month == 1 else d.strftime("%b")
            parts.append(f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 4}" stroke="#999"/>'
                         f'<text x="{x}" y="{y + 15}" text-anchor="middle">{label}</text>')
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    x = axis.x(today)
    parts.append(f'<line class="today" x1="{x}" y1="20" x2="{x}" y2="{y}" stroke="#d7191c" stroke-dasharray="3,3">'
                 f'<title>today {today.isoformat()}</title></line>')
    return "".join(parts)


def _legend(y: int) -> str:
    x = 10
    parts = []
    for label, colour, _ in DRUG_CLASSES[:6]:
        parts.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{y + 1}">{label}</text>')
        x += 30 + 6 * len(label)
    return "".join(parts)


def _empty_svg() -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="60" viewBox="0 0 {WIDTH} 60" '
            'role="img" aria-label="Treatment timeline"><title>Treatment timeline</title>'
            '<rect width="100%" height="100%" fill="#fff"/>'
            '<text x="10" y="34" style="font:13px sans-serif">No dated therapy, biomarker or event found '
            'for this patient.</text></svg>')
