"""The treatment timeline picture of the SMART app, drawn server-side as SVG.

Why SVG built by hand: the picture must be produced without a front-end
build or a plotting library in the service's environment, it must scale in
any browser, and every label in it comes from the EHR (untrusted text), so
each one goes through ``_text``/``_attr`` escaping here and nowhere else.

``render_svg(profile, today, width)`` is a pure function: the same profile
gives the same bytes, which is what the tests check.
It is laid out *for a width* (the page embeds a 1000- and a 440-unit
layout and CSS shows one): no label overlaps another or leaves the picture
(``_Lanes``; the browser test measures the rendered boxes), long labels
wrap, and ``_legend`` names every colour and mark drawn.

Nothing clinical is derived here: the picture *shows the profile*
(``cds_service.core.criteria``), so the timeline and the cards can never disagree.

* **Lines of therapy** — ``profile.lines``, the lines ``therapy.line`` counts.
* **Drugs** — ``profile.courses``: one bar per course, coloured by its drug
  class from ``CodeSystem-drug-class`` (open bars run to today).
* **Induction cycles** — tick marks on taxane bars: one per administration,
  else the course's cycle count (``Course.cycles``) at its recorded dosing
  interval (dashed when ``Course.cycles_estimated``).  Without either the bar
  has no ticks: the caption gives the profile's count, the picture invents no
  dose dates.
* **Biomarkers** — the HER2, ER, PR, PIK3CA and LVEF results the profile read
  (``profile.records``, sorted by ``profile.kinds``: which ValueSet each
  Observation is in), labelled with their recorded value.
* **Events** — metastatic, ILD and breast-cancer Conditions of ``profile.records``
  (by ValueSet), progression (``profile.progression``) and the metastatic
  diagnosis date.

The resources come from ``profile.records`` only (what the intake accepted,
flattened and de-duplicated once), never from the raw prefetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

from ..core import parse as fp
from ..core.criteria.readings import FINAL, condition_counts
from ..core.rules.rulebook import human_date

# (drug-class code of CodeSystem-drug-class, colour): which class a course is drawn as, and in
# which colour.  Order matters: the antibody-drug conjugates must match before the anti-HER2
# antibody.  The class's name on the picture is the CodeSystem's clinical short name
# (designation use clinical-short-name: "HER2 ADC"), read through the page's ``Words``.
CLASS_COLOURS: list[tuple[str, str]] = [
    ("her2-adc", "#7b3294"),
    ("her2-tki", "#c2185b"),
    ("anti-her2-antibody", "#1f5fa8"),
    ("taxane", "#e66101"),
    ("cdk46-inhibitor", "#1a9850"),
    ("endocrine", "#4dac26"),
    ("gnrh-agonist", "#4dac26"),
    ("pi3k-inhibitor", "#66bd63"),
    ("chemotherapy", "#fdb863"),
]
OTHER_COLOUR = "#878787"

# Observation kind (the ValueSet ids of fhir_profiles/terminology) → (label, colour)
BIOMARKER_STYLES = {
    "her2-interpretation": ("HER2", "#1f5fa8"), "her2-ihc": ("HER2", "#1f5fa8"), "her2-ish": ("HER2", "#1f5fa8"),
    "her2-ish-ratio": ("HER2", "#1f5fa8"), "her2-copy-number": ("HER2", "#1f5fa8"),
    "er-status": ("ER", "#4dac26"), "er-percent": ("ER", "#4dac26"),
    "pr-status": ("PR", "#4dac26"), "pr-percent": ("PR", "#4dac26"),
    "genetic-variant": ("PIK3CA", "#4dac26"),
    "lvef": ("LVEF", "#00838f"),
}
# Condition kind (ValueSet id) → colour
CONDITION_COLOURS = {"metastatic-disease": "#b2182b", "ild": "#762a83", "primary-breast-cancer": "#404040"}

WIDTH = 1000        # the full-screen picture (viewBox units = CSS px at 1000 px)
COMPACT_WIDTH = 440  # the narrow EHR side panel's picture
MARGIN = 12
FONT = 12           # px; lane headings bold, the same size
LINE_H = 16         # one text line
ROW = 20            # one bar row
# Legend entries of the point markers: (label, colour)
POINT_LEGEND = [("HER2 result", "#1f5fa8"), ("ER / PR / PIK3CA result", "#4dac26"), ("LVEF result", "#00838f"),
                ("metastasis / progression", "#b2182b"), ("interstitial lung disease", "#762a83"),
                ("primary breast cancer", "#404040")]


@dataclass(frozen=True)
class DrugSpan:
    name: str
    klass: str           # the class as the picture names it (the CodeSystem's short name)
    colour: str
    start: date
    end: date | None     # None = ongoing
    ref: str
    cycles: int | None = None          # the profile's cycle count of the course
    period_days: float | None = None   # dosing interval, when recorded
    doses: tuple[date, ...] = ()       # administration dates
    estimated: bool = False            # Course.cycles_estimated: the count assumes every dose was given
    weeks: int | None = None           # weekly courses: weeks given (never cycles)
    class_code: str | None = None      # the CodeSystem-drug-class code it is drawn as (None: other)


@dataclass(frozen=True)
class Point:
    when: date
    label: str
    ref: str
    colour: str


# -- what the profile says --------------------------------------------------------

def drug_style(classes) -> tuple[str | None, str]:
    """(drug-class code, colour) a course is drawn as, by its drug-class codes; colours only, no clinical logic."""
    for code, colour in CLASS_COLOURS:
        if code in classes:
            return code, colour
    return None, OTHER_COLOUR


def drug_spans(profile, words=None) -> list[DrugSpan]:
    """One bar per course of the profile (dated courses only); ``words`` names the classes."""
    spans = []
    for course in getattr(profile, "courses", ()) or ():
        if not isinstance(course.start, date):
            continue
        code, colour = drug_style(set(course.classes))
        klass = (words.drug_class(code) if words is not None and code else code) or "other"
        name = " + ".join(course.ingredients) or course.text or "medication"
        spans.append(DrugSpan(name, klass, colour, course.start, course.end, ", ".join(course.refs),
                              course.cycles, course.period_days, tuple(course.doses),
                              bool(getattr(course, "cycles_estimated", False)), getattr(course, "weeks", None),
                              code))
    spans.sort(key=lambda s: (s.start, s.name))
    return spans


def therapy_lines(profile) -> list[tuple[int, date, date | None]]:
    """(line number, start, end-or-None) of each line of therapy in the profile."""
    return [(ln.number, ln.start, ln.end) for ln in getattr(profile, "lines", ()) or ()]


def value_text(res: dict) -> str:
    """An Observation's value as short text (the timeline's labels and the page's result tables)."""
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


def _records(profile, resource_type: str) -> list[dict]:
    """The profile's records of one type, in the order the intake read them."""
    records = getattr(profile, "records", None) or {}
    return [r for r in records.values() if r.get("resourceType") == resource_type]


def biomarker_points(profile, words=None) -> list[Point]:
    """The profile's biomarker results (PIK3CA: the variant results it read as PIK3CA), labelled by value.

    ``words`` (the page's ``presenter.Words``) names a result by its clinical
    short name from the ValueSet designations ("HER2 IHC 3+"); without it, by
    the marker's lane name ("HER2 3+").
    """
    kinds = _kinds(profile)
    pik3ca_refs = set(getattr((getattr(profile, "facts", None) or {}).get("pik3ca"), "refs", ()) or ())
    points = []
    for res in _records(profile, "Observation"):
        ref = fp.reference_of(res)
        style = BIOMARKER_STYLES.get(kinds.get(ref))
        if style is None or res.get("status") not in FINAL:  # the results the criteria read, no others
            continue
        if kinds.get(ref) == "genetic-variant" and ref not in pik3ca_refs:
            continue
        when = fp.observation_date(res)
        if when:
            name = (words.short_name(res.get("code")) if words is not None else "") or style[0]
            points.append(Point(when, f"{name} {value_text(res)}".strip(), ref, style[1]))
    points.sort(key=lambda p: (p.when, p.label))
    return points


def event_points(profile, words=None) -> list[Point]:
    """Metastatic, ILD and breast-cancer Conditions, progression, and the metastatic date from the profile.

    A Condition is named as ``words`` names a concept (its text, a display, the
    terminology's display), else by its text or code.
    """
    kinds = _kinds(profile)
    points = []
    metastatic_dates = set()
    for res in _records(profile, "Condition"):
        kind = kinds.get(fp.reference_of(res))
        colour = CONDITION_COLOURS.get(kind)
        if colour is None or not condition_counts(res):
            continue
        when = fp.condition_onset(res)
        text = (words.concept(res.get("code")) if words is not None else "") or fp.label(res.get("code"))
        if when and text:
            points.append(Point(when, text, fp.reference_of(res), colour))
            if kind == "metastatic-disease":
                metastatic_dates.add(when)
    for when, ref in getattr(profile, "progression", ()) or ():
        points.append(Point(when, "progression", ref, "#b2182b"))
    # The metastatic date the recommendations use, when no metastatic Condition drawn above carries
    # it (it can come from a TNM M1 or a disease-status result): its sources, never a profile key.
    when = fp.parse_date(_fact_value(profile, "metastatic.date"))
    if when and when not in metastatic_dates:
        fact = (getattr(profile, "facts", None) or {}).get("metastatic.date")
        points.append(Point(when, "metastatic disease", ", ".join(getattr(fact, "refs", ()) or ()), "#b2182b"))
    points.sort(key=lambda p: (p.when, p.label))
    return points


def _fact_value(profile, name: str):
    facts = getattr(profile, "facts", None)
    if not facts or name not in facts:
        return None
    return getattr(facts[name], "value", None)


# -- drawing --------------------------------------------------------------------
#
# Every label is placed by ``_Lanes``: a label goes on the first text row
# where it overlaps nothing already placed (with a gap), and is kept inside
# the picture; a label wider than the picture wraps on words.  Widths are
# estimated from the characters (DejaVu Sans / Verdana metrics, on the
# generous side), and the browser test measures the real boxes.

_WIDE = set("MWmw@%")
_NARROW = set("il.,:;|!'()[]/ ")


def text_width(text: str, size: float = FONT) -> float:
    """A generous estimate of the rendered width of ``text`` in px."""
    w = 0.0
    for ch in text:
        if ch in _WIDE:
            w += 0.95
        elif ch in _NARROW:
            w += 0.36
        elif ch.isupper() or ch.isdigit():
            w += 0.72
        else:
            w += 0.62
    return w * size


def wrap(text: str, max_width: float) -> list[str]:
    """Words on as few lines as fit ``max_width``; a single overlong word is cut with '…' (never overflows)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if text_width(trial) <= max_width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    out = []
    for line in lines or [""]:
        while text_width(line) > max_width and len(line) > 1:
            line = line[:-2] + "…"
        out.append(line)
    return out


def _text(value: str) -> str:
    return escape(str(value))


def _attr(value: str) -> str:
    return quoteattr(str(value))


class _Axis:
    def __init__(self, first: date, last: date, width: int):
        self.first, self.last, self.width = first, last, width
        self.days = max((last - first).days, 1)
        self.left, self.right = MARGIN + 4, width - MARGIN - 4

    def x(self, when: date) -> float:
        return round(self.left + (self.right - self.left) * (when - self.first).days / self.days, 1)


class _Lanes:
    """Text rows below a band: place each label where it overlaps nothing already placed."""

    GAP = 8

    def __init__(self, width: int):
        self.width = width
        self.rows: list[list[tuple[float, float]]] = []

    def place(self, x: float, lines: list[str]) -> tuple[float, int]:
        """(left x, first row) for a label of ``lines`` anchored near ``x``; marks the rows used."""
        w = max(text_width(ln) for ln in lines)
        x0 = min(max(x + 4, MARGIN), self.width - MARGIN - w)  # right of the leader line when it fits
        x1 = x0 + w
        row = 0
        while True:
            span = range(row, row + len(lines))
            if all(self._free(r, x0, x1) for r in span):
                for r in span:
                    while len(self.rows) <= r:
                        self.rows.append([])
                    self.rows[r].append((x0, x1))
                return x0, row
            row += 1

    def _free(self, r: int, x0: float, x1: float) -> bool:
        if r >= len(self.rows):
            return True
        return all(x1 + self.GAP <= a or x0 >= b + self.GAP for a, b in self.rows[r])

    @property
    def height(self) -> int:
        return len(self.rows) * LINE_H


def _label(x: float, y: float, lines: list[str], cls: str = "") -> str:
    """A possibly multi-line <text> whose first baseline is ``y``."""
    klass = f' class="{cls}"' if cls else ""
    if len(lines) == 1:
        return f'<text x="{round(x, 1)}" y="{y}"{klass}>{_text(lines[0])}</text>'
    spans = "".join(f'<tspan x="{round(x, 1)}" dy="{0 if i == 0 else LINE_H}">{_text(ln)}</tspan>'
                    for i, ln in enumerate(lines))
    return f'<text x="{round(x, 1)}" y="{y}"{klass}>{spans}</text>'


def render_svg(profile, today: date, width: int = WIDTH, words=None) -> str:
    """The whole picture of ``profile`` as an SVG document (str), laid out for ``width`` px. Pure; never raises.

    ``words``: the page's ``presenter.Words`` (clinical names from the terminology), optional.
    """
    spans = drug_spans(profile, words)
    biomarkers = biomarker_points(profile, words)
    events = event_points(profile, words)
    lines = therapy_lines(profile)

    dates = [s.start for s in spans] + [s.end for s in spans if s.end] + [p.when for p in biomarkers + events]
    if not dates:
        return _empty_svg(width)
    first = min(dates) - timedelta(days=30)
    last = max(max(dates), today) + timedelta(days=30)
    axis = _Axis(first, last, width)
    plot = width - 2 * MARGIN

    body: list[str] = []
    y = 6
    # -- lines of therapy: brackets with "L1", "L2" on lanes above nothing else
    y = _heading(body, "Lines of anti-HER2 therapy (metastatic setting)", y)
    if lines:
        lanes = _Lanes(width)
        placed = []
        for n, start, end in lines:
            x1, x2 = axis.x(start), axis.x(end or today)
            lx, row = lanes.place((x1 + x2) / 2 - text_width(f"L{n}") / 2 - 4, [f"L{n}"])
            placed.append((n, start, x1, x2, lx, row))
        top = y + lanes.height
        for n, start, x1, x2, lx, row in placed:
            body.append(f'<g class="line"><title>{_text(f"Line {n} from {human_date(start)}")}</title>'
                        f'<path d="M{x1},{top + 10} V{top + 2} H{max(x2, x1 + 2)} V{top + 10}" fill="none" '
                        f'stroke="#333"/>{_label(lx, y + row * LINE_H + FONT, [f"L{n}"])}</g>')
        y = top + 14
    else:
        body.append(_label(MARGIN, y + FONT, ["no anti-HER2 line of therapy on record"], "muted"))
        y += LINE_H + 4

    # -- courses: the name (and cycle count) on its own line, the bar below it
    y = _heading(body, "Treatment courses", y + 4)
    if not spans:
        body.append(_label(MARGIN, y + FONT, ["none recorded"], "muted"))
        y += LINE_H + 4
    for name in dict.fromkeys(s.name for s in spans):
        group = [s for s in spans if s.name == name]
        caption = wrap(name + _cycles_caption(group), plot)
        body.append(_label(MARGIN, y + FONT, caption, "drug"))
        y += len(caption) * LINE_H + 2
        bar_y = y + 6
        for span in group:
            x1 = axis.x(span.start)
            x2 = max(axis.x(span.end or today), x1 + 3)
            status = f"{human_date(span.start)} – {human_date(span.end) if span.end else 'ongoing'}"
            pattern = ' fill-opacity="0.55" stroke-dasharray="4,2"' if span.end is None else ""
            body.append(f'<g class="drug-bar"><title>{_text(f"{span.name} ({span.klass}) {status} [{span.ref}]")}'
                        f'</title><rect x="{x1}" y="{bar_y - 6}" width="{round(x2 - x1, 1)}" height="12" rx="3" '
                        f'fill={_attr(span.colour)} stroke={_attr(span.colour)}{pattern}/></g>')
            if span.class_code == "taxane":
                body.extend(_cycle_ticks(axis, span, today, bar_y))
        y += ROW
    # -- results and events: markers on a band, labels on lanes below
    y = _point_lane(body, axis, "Results (HER2, ER, PR, PIK3CA, LVEF)", biomarkers, y + 4)
    y = _point_lane(body, axis, "Diagnoses and events", events, y)
    axis_svg, y = _axis_svg(axis, today, y)
    body.append(axis_svg)
    legend, y = _legend(spans, width, y + 8)
    height = y + 8
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Treatment timeline" class="timeline-svg">'
        "<title>Treatment timeline</title>"
        f"<style>text{{font:{FONT}px 'DejaVu Sans',Verdana,sans-serif;fill:#1b1b1b}}.lane{{font-weight:bold}}"
        ".muted{fill:#666}</style>"
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
        + "".join(body) + legend + "</svg>"
    )


def _heading(body: list[str], text: str, y: int) -> int:
    body.append(_label(MARGIN, y + FONT, [text], "lane"))
    return y + LINE_H + 2


def _cycles_caption(group: list[DrugSpan]) -> str:
    """' — 6 cycles', ' — about 6 cycles (estimated)' or ' — 12 weeks' for taxane courses, as the profile counts them.

    One count per course (a drug restarted in a later line has two courses,
    written '6 cycles; 4 cycles'); nothing is re-counted here.
    """
    if not group or group[0].class_code != "taxane":
        return ""
    parts = []
    for s in group:
        if isinstance(s.cycles, int):
            parts.append(f"about {s.cycles} cycles (estimated)" if s.estimated else f"{s.cycles} cycles")
        elif isinstance(s.weeks, int):
            parts.append(f"{s.weeks} weeks")
    return f" — {'; '.join(parts)}" if parts else ""


def _cycle_ticks(axis: _Axis, span: DrugSpan, today: date, y: int) -> list[str]:
    """One tick per administration; else the profile's count at the recorded interval; else none.

    Without administrations or a recorded dosing interval the dose dates are
    unknown: the caption gives the count, the picture draws no guessed dates.
    """
    if span.doses:
        return [_tick(axis, when, f"dose {i + 1}", y) for i, when in enumerate(span.doses) if when <= axis.last]
    interval = span.period_days
    if not (isinstance(span.cycles, int) and span.cycles >= 0 and isinstance(interval, (int, float)) and interval >= 1):
        return []
    out = []
    for i in range(min(span.cycles, 1000)):
        offset = interval * i
        if offset > (axis.last - span.start).days:  # also keeps an absurd interval from overflowing a date
            break
        when = span.start + timedelta(days=round(offset))
        label = f"cycle {i + 1}" + (" (estimated)" if span.estimated else "")
        out.append(_tick(axis, when, label, y, span.estimated))
    return out


def _tick(axis: _Axis, when: date, what: str, y: int, estimated: bool = False) -> str:
    x = axis.x(when)
    dash = ' stroke-dasharray="2,2"' if estimated else ""
    return (f'<line class="cycle" x1="{x}" y1="{y - 9}" x2="{x}" y2="{y + 9}" stroke="#000"{dash}><title>'
            f'{_text(f"{what} ({human_date(when)})")}</title></line>')


def _point_lane(body: list[str], axis: _Axis, heading: str, points: list[Point], y: int) -> int:
    y = _heading(body, heading, y)
    if not points:
        body.append(_label(MARGIN, y + FONT, ["none recorded"], "muted"))
        return y + LINE_H + 6
    band = y + 6
    lanes = _Lanes(axis.width)
    plot = axis.width - 2 * MARGIN
    top = band + 10
    parts = []
    for p in points:
        x = axis.x(p.when)
        text = wrap(p.label, plot)
        lx, row = lanes.place(x, text)
        ty = top + row * LINE_H + FONT
        parts.append(f'<g class="pt"><title>{_text(f"{human_date(p.when)}: {p.label}" + (f" [{p.ref}]" if p.ref else ""))}</title>'
                     f'<circle cx="{x}" cy="{band}" r="5" fill={_attr(p.colour)}/>'
                     f'<line x1="{x}" y1="{band + 5}" x2="{x}" y2="{ty - FONT + 1}" stroke={_attr(p.colour)} '
                     f'stroke-width="0.8"/>'
                     f'{_label(lx, ty, text)}</g>')
    body.append(f'<line x1="{axis.left}" y1="{band}" x2="{axis.right}" y2="{band}" stroke="#ddd"/>')
    body.extend(parts)
    return top + lanes.height + 8


def _axis_svg(axis: _Axis, today: date, y: int) -> tuple[str, int]:
    """The date axis: ticks every month/year, labels thinned so none overlaps; a dashed 'today' line."""
    parts = [f'<line x1="{axis.left}" y1="{y}" x2="{axis.right}" y2="{y}" stroke="#999"/>']
    yearly = axis.days > 730 or (axis.right - axis.left) / max(axis.days / 30.4, 1) < 34
    d = date(axis.first.year, axis.first.month, 1)
    last_end = -1e9
    while d <= axis.last:
        if d >= axis.first and (not yearly or d.month == 1):
            x = axis.x(d)
            label = str(d.year) if yearly or d.month == 1 else d.strftime("%b")
            w = text_width(label)
            parts.append(f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 4}" stroke="#999"/>')
            if x - w / 2 > last_end + 6 and x - w / 2 >= MARGIN and x + w / 2 <= axis.width - MARGIN:
                parts.append(f'<text x="{x}" y="{y + 4 + FONT}" text-anchor="middle">{label}</text>')
                last_end = x + w / 2
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    x = axis.x(today)
    parts.append(f'<line class="today" x1="{x}" y1="6" x2="{x}" y2="{y}" stroke="#d7191c" stroke-dasharray="3,3">'
                 f'<title>today {human_date(today)}</title></line>')
    return "".join(parts), y + 4 + LINE_H


def _legend(spans: list[DrugSpan], width: int, y: int) -> tuple[str, int]:
    """Every colour and marker the picture uses, flowed into rows that fit ``width``."""
    items: list[tuple[str, str]] = []
    for label, colour in dict.fromkeys((s.klass, s.colour) for s in spans):
        items.append((f'<rect x="0" y="-9" width="12" height="10" rx="2" fill="{colour}"/>', f"{label} (course)"))
    for label, colour in POINT_LEGEND:
        items.append((f'<circle cx="6" cy="-4" r="5" fill="{colour}"/>', label))
    items += [
        ('<rect x="0" y="-9" width="12" height="10" rx="2" fill="#878787" fill-opacity="0.55" stroke="#878787" '
         'stroke-dasharray="4,2"/>', "ongoing course"),
        ('<line x1="6" y1="-12" x2="6" y2="3" stroke="#000"/>', "taxane cycle or dose"),
        ('<line x1="6" y1="-12" x2="6" y2="3" stroke="#000" stroke-dasharray="2,2"/>', "cycle estimated"),
        ('<path d="M0,2 V-8 H12 V2" fill="none" stroke="#333"/>', "L1, L2…: line of therapy"),
        ('<line x1="6" y1="-12" x2="6" y2="3" stroke="#d7191c" stroke-dasharray="3,3"/>', "today"),
    ]
    parts = [_label(MARGIN, y + FONT, ["Legend"], "lane")]
    y += LINE_H + 4
    x = MARGIN
    for mark, label in items:
        w = 18 + text_width(label)
        if x + w > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + LINE_H + 2
        parts.append(f'<g class="legend-item" transform="translate({round(x, 1)},{y + FONT})">{mark}'
                     f'<text x="18" y="0">{_text(label)}</text></g>')
        x += w + 14
    return "".join(parts), y + LINE_H + 4


def _empty_svg(width: int = WIDTH) -> str:
    lines = wrap("No dated therapy, biomarker or event found for this patient.", width - 2 * MARGIN)
    height = 24 + LINE_H * len(lines)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="Treatment timeline" class="timeline-svg">'
            f"<title>Treatment timeline</title><style>text{{font:{FONT}px 'DejaVu Sans',Verdana,sans-serif}}</style>"
            '<rect width="100%" height="100%" fill="#fff"/>'
            + _label(MARGIN, 12 + FONT, lines) + "</svg>")
