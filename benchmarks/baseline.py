"""The committed baseline of the benchmark's ratios, and the comparison that says when something got slower.

Issue 23: the features of one round cost 45 % of the warm path and nothing
measured it as a regression.  Times move with the machine and its load; the
ratio of the service to the floor measured in the same run moves much less,
so that is what is kept and compared: for each hook, patient size and path
(warm, cold), ``service median / floor median`` at the same size, in-process.

``benchmarks/baseline.json`` holds the ratios of a reference run (written by
``python -m benchmarks.run --write-baseline``).  Every run prints each ratio
beside its baseline and flags any that grew by more than ``TOLERANCE``
(20 %); ``--check`` turns a flag into a non-zero exit.  A ratio that got
*smaller* is reported as such and never flagged: committing a new baseline
after an improvement is a decision, not something the run does by itself.

This module is pure (numbers in, rows out) so ``tests/test_bench_baseline.py``
can check the comparison on synthetic numbers, without timing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BASELINE = Path(__file__).resolve().parent / "baseline.json"
TOLERANCE = 0.20  # a ratio more than 20 % above its baseline is flagged


def ratios(inprocess: dict) -> dict[str, float]:
    """``{"warm/patient-view/50": 5.6, …}``: service median / floor median at the same size.

    ``inprocess`` is the run's ``res["inprocess"]``: ``floor[n]`` and
    ``service[mode]["hook/n"]``, each with ``median_ms``.  A cell's own
    ``floor_median_ms`` (the floor measured in turn with it, call by call,
    under the same load: ``harness.paired_calls``) is preferred to ``floor[n]``.  Sizes the floor was not measured at
    are left out (no ratio without its floor).
    """
    floor = {int(n): v["median_ms"] for n, v in inprocess["floor"].items()}
    out: dict[str, float] = {}
    for mode, cells in inprocess["service"].items():
        for case, v in cells.items():
            hook, n = case.rsplit("/", 1)
            f = v.get("floor_median_ms") or floor.get(int(n))
            if f and f > 0:
                out[f"{mode}/{hook}/{int(n)}"] = round(v["median_ms"] / f, 3)
    return out


@dataclass(frozen=True)
class Row:
    """One ratio beside its baseline."""

    key: str
    baseline: float | None
    current: float | None
    tolerance: float = TOLERANCE

    @property
    def change(self) -> float | None:
        """Relative change (0.25 = 25 % above the baseline); None when either side is missing."""
        if self.baseline is None or self.current is None or self.baseline <= 0:
            return None
        return self.current / self.baseline - 1.0

    @property
    def flagged(self) -> bool:
        """Grew by more than the tolerance.  Missing on either side is not a regression (see ``status``)."""
        c = self.change
        return c is not None and c > self.tolerance

    @property
    def status(self) -> str:
        if self.current is None:
            return "not measured in this run"
        if self.baseline is None:
            return "new (no baseline)"
        if self.flagged:
            return f"SLOWER: +{self.change * 100:.0f} % (> {self.tolerance * 100:.0f} %)"
        c = self.change
        return f"{'+' if c >= 0 else '−'}{abs(c) * 100:.0f} %"


def median_ratios(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per key, the median over repeated runs (``--repeat``): one loaded moment does not set the baseline."""
    import statistics

    keys = list(dict.fromkeys(k for r in runs for k in r))
    return {k: round(statistics.median([r[k] for r in runs if k in r]), 3) for k in keys}


def compare(current: dict[str, float], baseline: dict[str, float], tolerance: float = TOLERANCE) -> list[Row]:
    """One row per key of either side, in the baseline's order, then keys new in this run."""
    keys = list(baseline) + [k for k in current if k not in baseline]
    return [Row(k, baseline.get(k), current.get(k), tolerance) for k in keys]


def flagged(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.flagged]


def load(path: Path = BASELINE) -> dict:
    """The baseline file (``{"meta": …, "tolerance": 0.2, "ratios": {…}}``), or ``{}`` when there is none."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}


def save(current: dict[str, float], meta: dict, path: Path = BASELINE) -> None:
    Path(path).write_text(json.dumps({"meta": meta, "tolerance": TOLERANCE, "ratios": current}, indent=1) + "\n")


def table(rows: list[Row], meta: dict | None = None) -> str:
    """The Markdown table the run prints: ratio now, baseline, change, flag."""
    L = ["## Ratios against the committed baseline (service / floor, in-process median)", ""]
    if meta:
        L.append(f"Baseline: run {meta.get('when', '?')} at {meta.get('git', '?')} "
                 f"({meta.get('note', 'benchmarks/baseline.json')}). A ratio more than "
                 f"{TOLERANCE * 100:.0f} % above its baseline is flagged; `--check` exits 1 then.")
        L.append("")
    L.append("| path / hook / resources | now | baseline | change |")
    L.append("|---|---|---|---|")
    for r in rows:
        now = f"{r.current:.2f}×" if r.current is not None else "—"
        base = f"{r.baseline:.2f}×" if r.baseline is not None else "—"
        st = f"**{r.status}**" if r.flagged else r.status
        L.append(f"| {r.key} | {now} | {base} | {st} |")
    bad = flagged(rows)
    L.append("")
    L.append(f"{len(bad)} of {len(rows)} ratios flagged" + (": " + ", ".join(r.key for r in bad) if bad else "."))
    return "\n".join(L)
