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
5. the targets of issue 7, each printed as met or not.

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
from .report import chart, evaluate_targets, table
from .scenarios import (
    auth_overhead, bodies_for, fallback_http, fallback_inprocess, http_runs, inprocess, profiles, stages, startup,
)

RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (about two minutes)")
    ap.add_argument("--duration", type=float, help="seconds per wrk run (default 5, quick 1)")
    ap.add_argument("--skip-http", action="store_true", help="in-process, fallback and start-up only")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    quick = args.quick
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    duration = args.duration or (1.0 if quick else 5.0)
    budget = 0.3 if quick else 2.0
    sizes = list(P.SIZES)
    delay = 0.05
    slow_delay = 0.6  # issue 12: an EHR FHIR server taking 600 ms per search
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
        res["stages"] = stages(tmp, bodies, [50, max(sizes)], 20 if quick else 100)
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
    res["meta"]["load_after"] = loadavg()
    res["targets"] = evaluate_targets(res, sizes)
    text = table(res, sizes)
    res["table_markdown"] = text
    (out_dir / "latest.json").write_text(json.dumps(res, indent=1, default=str))
    (out_dir / "latest.md").write_text(text + "\n")
    chart(res, sizes, out_dir / "latest.png")
    print(text)
    print(f"\nwrote {out_dir / 'latest.json'}, latest.md and latest.png")
    return 0 if all(t["met"] or t.get("info") for t in res["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
