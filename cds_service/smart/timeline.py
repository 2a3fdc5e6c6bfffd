"""The treatment timeline picture of the SMART app, drawn server-side as SVG.

Why SVG built by hand: the picture must be produced without a front-end
build or a plotting library in the service's environment, it must scale in
any browser, and every label in it comes from the EHR (untrusted text), so
each one goes through ``_text``/``_attr`` escaping here and nowhere else.

``render_svg(profile, resources, today)`` is a pure function: the same
profile and resources give the same bytes, which is what the tests check.

Nothing clinical is derived here: the picture *shows the profile*
(``cds_service.criteria``), so the timeline and the cards can never disagree.

* **Lines of therapy** — ``profile.lines``, the lines ``therapy.line`` counts.
* **Drugs** — ``profile.courses``: one bar per course, coloured by its drug
  class from ``CodeSystem-drug-class`` (open bars run to today).
* **Induction cycles** — tick marks on taxane bars: one per administration,
  else the course's cycle count at its dosing interval; only when the profile
  has neither, a drawn estimate of one per 21 days (capped by ``taxane.cycles``).
* **Biomarkers** — the HER2, ER, PR, PIK3CA and LVEF results the profile read
  (``profile.kinds``: which ValueSet each Observation is in), labelled with
  their recorded value.
* **Events** — metastatic, ILD and breast-cancer Conditions (by ValueSet),
  progression (``profile.progression``) and the metastatic diagnosis date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

from ..fhir import parse as fp

CYCLE_DAYS = 21  # drawing estimate only, when the profile has no count or interval

# (drug-class code of CodeSystem-drug-class, drawing label, colour). Order
# matters: the antibody-drug conjugates must match before the anti-HER2 antibody.
CLASS_STYLES: list[tuple[str, str, str]] = [
    ("her2-adc", "HER2 ADC", "#7b3294"),
    ("her2-tki", "HER2 TKI", "#c2185b"),
    ("anti-her2-antibody", "anti-HER2 antibody", "#1f5fa8"),
    ("taxane", "taxane", "#e66101"),
    ("cdk46-inhibitor", "CDK4/6 inhibitor", "#1a9850"),
    ("endocrine", "endocrine", "#4dac26"),
    ("gnrh-agonist", "endocrine", "#4dac26"),
    ("pi3k-inhibitor", "PI3K inhibitor", "#66bd63"),
    ("chemotherapy", "chemotherapy", "#fdb863"),
]
OTHER_COLOUR = "#878787"
FINAL = ("final", "amended", "corrected", None)

# Observation kind (the ValueSet ids of fhir_profiles/terminology) → (label, colour)
BIOMARKER_STYLES = {
    "her2-interpretation": ("HER2", "#1f5fa8"), "her2-ihc": ("HER2", "#1f5fa8"), "her2-ish": ("HER2", "#1f5fa8"),
    "her2-ish-ratio": ("HER2", "#1f5fa8"), "her2-copy-number": ("HER2", "#1f5fa8"),
    "er-status": ("ER", "#4dac26"), "er-percent": ("ER", "#4dac26"),
    "pr-status": ("PR", "#66bd63"), "pr-percent": ("PR", "#66bd63"),
    "genetic-variant": ("PIK3CA", "#66bd63"),
    "lvef": ("LVEF", "#d7191c"),
}
# Condition kind (ValueSet id) → colour
CONDITION_COLOURS = {"metastatic-disease": "#b2182b", "ild": "#762a83", "primary-breast-cancer": "#404040"}

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
    cycles: int | None = None          # the profile's cycle count of the course
    period_days: float | None = None   # dosing interval, when recorded
    doses: tuple[date, ...] = ()       # administration dates


@dataclass(frozen=True)
class Point:
    when: date
    label: str
    ref: str
    colour: str


# -- what the profile says --------------------------------------------------------

def drug_style(classes) -> tuple[str, str]:
    """(drawing label, colour) of a course by its drug-class codes; colours only, no clinical logic."""
    for code, label, colour in CLASS_STYLES:
        if code in classes:
            return label, colour
    return "other", OTHER_COLOUR


def drug_spans(profile) -> list[DrugSpan]:
    """One bar per course of the profile (dated courses only)."""
    spans = []
    for course in getattr(profile, "courses", ()) or ():
        if not isinstance(course.start, date):
            continue
        klass, colour = drug_style(set(course.classes))
        name = " + ".join(course.ingredients) or course.text or "medication"
        spans.append(DrugSpan(name, klass, colour, course.start, course.end, ", ".join(course.refs),
                              course.cycles, course.period_days, tuple(course.doses)))
    spans.sort(key=lambda s: (s.start, s.name))
    return spans


def therapy_lines(profile) -> list[tuple[int, date, date | None]]:
    """(line number, start, end-or-None) of each line of therapy in the profile."""
    return [(ln.number, ln.start, ln.end) for ln in getattr(profile, "lines", ()) or ()]


def _value_text(res: dict) -> str:
    q = res.get("valueQuantity")
    if isinstance(q, dict):
        unit = q.get("unit") or q.get("code") or ""
        number = fp.quantity_number(q)
        value = f"{number:g}" if number is not None else ("?" if "value" in q else "")
        return f"{value}{unit if unit == '%' else ' ' + unit if unit else ''}"
    for key in ("valueString", "valueInteger"):
        if key in res and isinstance(res[key], (str, int)) and not isinstance(res[key], bool):
            return str(res[key])[:40]
    text = fp.label(res.get("valueCodeableConcept"))
    if not text:
        for interp in fp.first_codeable(res.get("interpretation")):
            text = fp.label(interp)
            if text:
                break
    return text


def _kinds(profile) -> dict:
    kinds = getattr(profile, "kinds", None)
    return kinds if kinds is not None else {}


def biomarker_points(profile, resources: list[dict]) -> list[Point]:
    """The profile's biomarker results (PIK3CA: the variant results it read as PIK3CA), labelled by value."""
    kinds = _kinds(profile)
    pik3ca_refs = set(getattr((getattr(profile, "facts", None) or {}).get("pik3ca"), "refs", ()) or ())
    points = []
    for res in resources:
        if not isinstance(res, dict) or res.get("resourceType") != "Observation":
            continue
        ref = fp.reference_of(res)
        style = BIOMARKER_STYLES.get(kinds.get(ref))
        if style is None or res.get("status") not in FINAL:
            continue
        if kinds.get(ref) == "genetic-variant" and ref not in pik3ca_refs:
            continue
        when = fp.observation_date(res)
        if when:
            points.append(Point(when, f"{style[0]} {_value_text(res)}".strip(), ref, style[1]))
    points.sort(key=lambda p: (p.when, p.label))
    return points


def event_points(profile, resources: list[dict]) -> list[Point]:
    """Metastatic, ILD and breast-cancer Conditions, progression, and the metastatic date from the profile."""
    kinds = _kinds(profile)
    points = []
    for res in resources:
        if not isinstance(res, dict) or res.get("resourceType") != "Condition":
            continue
        colour = CONDITION_COLOURS.get(kinds.get(fp.reference_of(res)))
        if colour is None or fp.codes(res.get("verificationStatus")) & {"entered-in-error", "refuted"}:
            continue
        when, text = fp.condition_onset(res), fp.label(res.get("code"))
        if when and text:
            points.append(Point(when, text, fp.reference_of(res), colour))
    for when, ref in getattr(profile, "progression", ()) or ():
        points.append(Point(when, "progression", ref, "#b2182b"))
    when = fp.parse_date(_fact_value(profile, "metastatic.date"))
    if when:
        points.append(Point(when, "metastatic (profile)", "profile: metastatic.date", "#b2182b"))
    points.sort(key=lambda p: (p.when, p.label))
    return points


def _fact_value(profile, name: str):
    facts = getattr(profile, "facts", None)
    if not facts or name not in facts:
        return None
    return getattr(facts[name], "value", None)


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
    spans = drug_spans(profile)
    biomarkers = biomarker_points(profile, resources)
    events = event_points(profile, resources)
    lines = therapy_lines(profile)
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
        body.append(f'<g class="line"><title>{_text(f"Line {n} from {start.isoformat()}")}</title>'
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
    """One tick per administration; else the profile's count at the interval; else an estimate every 21 days."""
    end = span.end or today
    if span.doses:
        return [_tick(axis, when, f"dose {i + 1}", y) for i, when in enumerate(span.doses) if when <= axis.last]
    interval = span.period_days if isinstance(span.period_days, (int, float)) and span.period_days >= 1 else CYCLE_DAYS
    count = int((end - span.start).days // interval) + 1
    if isinstance(span.cycles, int) and span.cycles >= 0:
        count = span.cycles
    elif isinstance(cycles, int) and cycles >= 0 and span.end is None:
        count = min(count, cycles)
    out = []
    for i in range(max(min(count, 1000), 0)):
        offset = interval * i
        if offset > (axis.last - span.start).days:  # also keeps an absurd interval from overflowing a date
            break
        when = span.start + timedelta(days=round(offset))
        if when > end and span.cycles is None:
            break
        out.append(_tick(axis, when, f"cycle {i + 1}", y))
    return out


def _tick(axis: _Axis, when: date, what: str, y: int) -> str:
    x = axis.x(when)
    return (f'<line class="cycle" x1="{x}" y1="{y - 9}" x2="{x}" y2="{y + 7}" stroke="#000"><title>'
            f'{_text(f"{what} ({when.isoformat()})")}</title></line>')


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
    for _, label, colour in CLASS_STYLES[:6]:
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
