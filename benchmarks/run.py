"""One command for issue 7: where the time goes, and how far the service is from the floor.

    .venv/bin/python -m benchmarks.run            # full run (about 7 minutes on 2 cores)
    .venv/bin/python -m benchmarks.run --quick    # smoke run (about 2 minutes)

Measures, in this order, and prints one table:

1. in-process latency (Flask test client, same process) of the floor app
   (``benchmarks/floor_app.py``) and of each hook with full prefetch for
   synthetic patients of 10/50/200/1000 resources; a per-stage breakdown
   (body parse, request schema, prefetch, criteria, rules, cards, card
   schema, database) and pyinstrument profiles in ``benchmarks/results/``;
2. the fallback path: no prefetch, every query answered by a local FHIR
   server after 50 ms (the service's latency against the slowest single
   query) and after 600 ms (a slow EHR FHIR server: every call still 200 with
   the prefetch cards, within Da Vinci CRD's 5 s), with the shipped FHIR
   timeouts;
3. start-up (process start → first 200 on ``/healthz``) and resident memory
   per gunicorn worker, for the floor and the service;
4. HTTP through the production server (``her2-cds serve``: gunicorn gthread,
   2 workers × 8 threads, preloaded) with ``wrk`` on loopback at concurrency
   1, 8 and 32: requests/s, p50, p99; the floor app under the same settings;
5. the peer (issue 23): HealthChain's CDS Hooks service answering the same
   requests with one fixed card, beside the service and the floor, over HTTP
   with one client (``scenarios.peer_comparison``), run out of process from
   its own venv, or skipped with the reason printed;
6. the targets of issue 7, each printed as met or not, and each
   service/floor ratio beside the committed baseline
   (``benchmarks/baseline.json``), flagging any that grew more than 20 %
   (``--check``: exit 1 then).

    .venv/bin/python -m benchmarks.run --ratios --check   # in-process ratios only (about 1 minute)

The service runs with ``HER2CDS_AUTH=disabled`` for the main numbers (the JWT
check is measured separately, in-process); the database is a fresh SQLite file
in a temporary folder.  The load generator (wrk) shares the machine's cores
with the server.  Results go to ``benchmarks/results/latest.json`` and
``latest.png``.

The code is in three parts: ``harness`` (timing loops, statistics, servers,
wrk, stage timings from the service's ``instrumentation.stage`` points),
``scenarios`` (what is measured) and ``report`` (targets, table, chart); this
module only runs them in order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import patients as P
from .harness import ROOT, Server, loadavg, log
from . import baseline
from .report import chart, cprofile_table, evaluate_targets, next_selection_table, peer_table, table
from .scenarios import (
    auth_overhead, bodies_for, cprofile_stages, next_selection, fallback_http, fallback_inprocess, http_runs, inprocess,
    peer_comparison, profiles, stages, startup,
)

PEER_PYTHON = "/work/bench-venv/bin/python"

RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (about two minutes)")
    ap.add_argument("--duration", type=float, help="seconds per wrk run (default 5, quick 1)")
    ap.add_argument("--skip-http", action="store_true", help="in-process, fallback and start-up only")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    ap.add_argument("--ratios", action="store_true",
                    help="only what the baseline compares: in-process floor and service, warm and cold, "
                         "plus the stage tables (no fallback, start-up, HTTP, peer)")
    ap.add_argument("--sizes", default=None, help="comma-separated patient sizes (default 10,50,200,1000)")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 when a service/floor ratio grew more than {baseline.TOLERANCE:.0%} "
                         "against benchmarks/baseline.json (targets not met do not fail the run then)")
    ap.add_argument("--write-baseline", action="store_true",
                    help="write this run's ratios to benchmarks/baseline.json (commit it with a reason)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the in-process cells N times; the ratios compared are the median per cell")
    ap.add_argument("--peer-python", default=PEER_PYTHON,
                    help="interpreter of the venv with healthchain installed (the peer runs out of process)")
    ap.add_argument("--skip-peer", action="store_true", help="leave out the HealthChain peer")
    args = ap.parse_args(argv)
    quick = args.quick
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    duration = args.duration or (1.0 if quick else 5.0)
    budget = 0.3 if quick else 2.0
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else list(P.SIZES)
    delay = 0.05
    slow_delay = 0.6  # issue 12: an EHR FHIR server taking 600 ms per search
    if args.ratios:
        args.skip_http = True
    if shutil.which("wrk") is None and not args.skip_http:
        print("wrk is not installed: apt-get install -y wrk (or pass --skip-http)", file=sys.stderr)
        return 2
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "cds_service", "fhir_profiles"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    res: dict = {"meta": {"when": dt.datetime.now().isoformat(timespec="seconds"), "git": git + ("+dirty" if dirty else ""),
                          "quick": quick, "python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_before": loadavg(), "auth": "disabled (JWT measured separately, in-process)",
                          "wrk_duration_s": duration, "inproc_budget_s": budget}}
    log(f"start: load {loadavg()}, git {res['meta']['git']}")
    bodies = bodies_for(sizes)
    res["meta"]["body_bytes"] = {f"{h}/{n}": len(b) for (h, n), b in bodies.items()}
    with tempfile.TemporaryDirectory(prefix="her2cds-bench-") as tmpname:
        tmp = Path(tmpname)
        floor_res, svc_res, cards = inprocess(tmp, bodies, sizes, budget)
        res["inprocess"] = {"floor": floor_res, "service": svc_res, "cards": cards}
        res["ratio_runs"] = [baseline.ratios(res["inprocess"])]
        for i in range(1, args.repeat):
            log(f"in-process repeat {i + 1} of {args.repeat}")
            f2, s2, _ = inprocess(tmp, bodies, sizes, budget)
            res["ratio_runs"].append(baseline.ratios({"floor": f2, "service": s2}))
        if 50 in sizes:
            res["next_selection"] = next_selection(tmp, bodies, 50, budget)
        stage_sizes = sorted({n for n in (50, max(sizes)) if n in sizes})
        res["stages"] = stages(tmp, bodies, stage_sizes, 20 if quick else 100)
        res["cprofile"] = cprofile_stages(tmp, bodies, [(h, n, m) for m in ("warm", "cold") for h in P.HOOKS
                                                        for n in stage_sizes], 50 if quick else 200)
        if args.ratios:
            return finish(res, sizes, out_dir, args)
        res["profiles"] = profiles(tmp, bodies, sizes, out_dir)
        try:
            res["auth"] = auth_overhead(tmp, bodies, 50 if quick else 300)
        except Exception as exc:  # optional measurement
            log(f"auth overhead not measured: {exc}")
        prefetch_cards = {n: cards[f"patient-view/{n}"] for n in sizes}
        res["fallback"] = {"delay_ms": delay * 1000,
                           "inprocess": fallback_inprocess(tmp, [50, max(sizes)], 10 if quick else 40, delay,
                                                           prefetch_cards)}
        res["fallback_slow"] = {"delay_ms": slow_delay * 1000,
                                "inprocess": fallback_inprocess(tmp, [50] if quick else [50, max(sizes)],
                                                                5 if quick else 20, slow_delay, prefetch_cards,
                                                                warmup=1)}
        res["startup"] = {k: startup(tmp, k, 1 if quick else 3) for k in ("floor", "service")}
        log(f"start-up: {res['startup']}")
        if not args.skip_http:
            res["http"] = {}
            res["memory_after_load"] = {}
            concs = (1, 8, 32)
            floor = Server("floor", tmp)
            try:
                floor.start()
                res["http"]["floor"] = {k.replace("patient-view", "floor"): v for k, v in
                                        http_runs(floor, tmp, bodies, [("patient-view", 50)], concs, duration).items()}
                res["memory_after_load"]["floor"] = floor.memory()
            finally:
                floor.stop()
            svc = Server("service", tmp)
            try:
                svc.start()
                res["http"]["service_cold"] = http_runs(svc, tmp, bodies, [(h, 50) for h in P.HOOKS]
                                                        + [("patient-view", max(sizes))], concs, duration, cold=True)
                res["http"]["service"] = http_runs(svc, tmp, bodies, [(h, n) for h in P.HOOKS for n in sizes],
                                                   concs, duration)
                res["fallback"]["http"] = fallback_http(svc, tmp, 50, (1, 8), duration, delay)
                # At 600 ms a call takes ≈0.7 s: a 1 s wrk run would hold one or two calls per connection.
                res["fallback_slow"]["http"] = fallback_http(svc, tmp, 50, (1, 8), max(duration, 3.0), slow_delay)
                res["memory_after_load"]["service"] = svc.memory()
            finally:
                svc.stop()
            # The same fallback load with a FHIR thread pool big enough for 8 calls × 8 queries per worker.
            wide = Server("service", tmp, extra_env={"HER2CDS_FHIR_MAX_WORKERS": "64"})
            try:
                wide.start()
                res["fallback"]["http_fhir_max_workers_64"] = fallback_http(wide, tmp, 50, (8,), duration, delay)
            finally:
                wide.stop()
        if not args.skip_peer:
            res["peer"] = peer_comparison(tmp, bodies, [(h, 50) for h in P.HOOKS] + [("patient-view", max(sizes))],
                                          100 if quick else 400, args.peer_python)
    return finish(res, sizes, out_dir, args)


def finish(res: dict, sizes, out_dir: Path, args) -> int:
    """Targets, the baseline comparison, the files; the exit status."""
    res["meta"]["load_after"] = loadavg()
    res["targets"] = evaluate_targets(res, sizes)
    text = table(res, sizes)
    if res.get("next_selection"):
        text += "\n\n" + next_selection_table(res["next_selection"], res["inprocess"])
    if res.get("cprofile"):
        text += "\n\n" + cprofile_table(res["cprofile"])
    if res.get("peer"):
        text += "\n\n" + peer_table(res["peer"])
    current = baseline.median_ratios(res.get("ratio_runs") or [baseline.ratios(res["inprocess"])])
    res["ratios"] = current
    base = baseline.load()
    rows = baseline.compare(current, base.get("ratios", {}))
    res["baseline"] = {"meta": base.get("meta"), "flagged": [r.key for r in baseline.flagged(rows)]}
    text += "\n\n" + baseline.table(rows, base.get("meta"))
    if args.write_baseline:
        baseline.save(current, {k: res["meta"][k] for k in ("when", "git", "quick", "python", "cpus", "load_before",
                                                             "load_after")} | {"note": "python -m benchmarks.run"
                                                                               + (" --ratios" if args.ratios else "")
                                                                               + f" --repeat {args.repeat}"})
        log(f"wrote {baseline.BASELINE}")
    res["table_markdown"] = text
    stem = "ratios" if args.ratios else "latest"  # a --ratios run does not overwrite the full run's files
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1, default=str))
    (out_dir / f"{stem}.md").write_text(text + "\n")
    try:
        chart(res, sizes, out_dir / f"{stem}.png")
    except ImportError:
        log("matplotlib is not installed; no chart (pip install -e '.[bench]')")
    print(text)
    print(f"\nwrote {out_dir / stem}.json, {stem}.md and {stem}.png")
    if args.check:
        return 1 if res["baseline"]["flagged"] else 0
    return 0 if all(t["met"] or t.get("info") for t in res["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
