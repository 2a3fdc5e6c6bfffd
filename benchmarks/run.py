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
   server after 50 ms; the service's latency against the slowest single query;
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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from . import patients as P

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
WRK_LUA = Path(__file__).resolve().parent / "wrk_post.lua"
PYTHON = sys.executable
HER2_CDS = str(Path(sys.executable).with_name("her2-cds"))

TARGETS = {
    "inproc_vs_floor": 3.0,       # median in-process latency, 50 resources, ≤ 3× the floor's
    "http_p99_c8_ms": 50.0,       # HTTP p99 at concurrency 8, 50 resources
    "max_loglog_slope": 1.10,     # latency grows no worse than linearly (10 % slack for noise)
    "fallback_ratio": 1.5,        # fallback latency < 1.5× the slowest single query
    "startup_s": 2.0,             # process start → first 200
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """Percentile by linear interpolation (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(samples_s: list[float]) -> dict:
    ms = [x * 1000 for x in samples_s]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3), "p95_ms": round(pct(ms, 95), 3),
            "p99_ms": round(pct(ms, 99), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def timed_calls(fn, budget_s: float, min_n: int, max_n: int, warmup: int = 5, before=None) -> list[float]:
    """Call ``fn`` until the budget is spent (at least ``min_n`` times); ``before`` runs untimed before each call."""
    for _ in range(warmup):
        if before:
            before()
        fn()
    out: list[float] = []
    end = time.perf_counter() + budget_s
    while len(out) < max_n and (len(out) < min_n or time.perf_counter() < end):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def cold_cache() -> None:
    """Forget what the service has seen (the R4 validation cache): the call is a first sight of the patient."""
    try:
        from cds_service.fhir.parse import clear_check_cache
    except ImportError:  # before the cache existed
        return
    clear_check_cache()


MODES = {"cold": cold_cache, "warm": None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def silence_service_log() -> None:
    """Keep the service's JSON log lines (still formatted: that is real cost) off the terminal."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    for h in logging.getLogger("her2cds").handlers:
        if isinstance(h, logging.StreamHandler):
            h.setStream(devnull)


def proc_mem(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) // 1024
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Pss:", "Private_Dirty:")):
                out[line.split(":")[0]] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"rss_mb": out.get("VmRSS"), "pss_mb": out.get("Pss"), "private_dirty_mb": out.get("Private_Dirty")}


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------
class Server:
    """A gunicorn server in its own process group; ``start()`` returns seconds to first 200 on /healthz."""

    def __init__(self, kind: str, tmp: Path, workers: int = 2, threads: int = 8, extra_env: dict | None = None):
        self.kind, self.tmp, self.workers, self.threads = kind, tmp, workers, threads
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.logfile = tmp / f"{kind}-{self.port}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "floor":
            # The same gunicorn settings as `her2-cds serve` (cli.py).
            return [PYTHON, "-m", "gunicorn", "-k", "gthread", "-w", str(self.workers), "--threads",
                    str(self.threads), "--preload", "--timeout", "30", "-b", f"127.0.0.1:{self.port}",
                    "benchmarks.floor_app:app"]
        return [HER2_CDS, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                str(self.workers), "--threads", str(self.threads)]

    def start(self, timeout: float = 30.0) -> float:
        env = dict(os.environ)
        env.update({"HER2CDS_AUTH": "disabled", "HER2CDS_DATABASE_URL": f"sqlite:///{self.tmp / f'svc-{self.port}.db'}",
                    "PYTHONPATH": str(ROOT)})
        env.update(self.extra_env)
        log_fh = open(self.logfile, "ab")  # noqa: SIM115
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log_fh, stderr=log_fh,
                                     start_new_session=True)
        session = requests.Session()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode}; see {self.logfile}")
            try:
                if session.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except requests.RequestException:
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{self.kind} server did not answer /healthz in {timeout}s; see {self.logfile}")
            time.sleep(0.005)

    def wait_workers(self, timeout: float = 10.0) -> list[int]:
        end = time.time() + timeout
        while time.time() < end:
            kids = children(self.proc.pid)
            if len(kids) >= self.workers:
                return kids
            time.sleep(0.05)
        return children(self.proc.pid)

    def memory(self) -> dict:
        kids = self.wait_workers()
        return {"master": proc_mem(self.proc.pid), "workers": [proc_mem(k) for k in kids]}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wrk(url: str, body_path: Path, conc: int, duration: float, unique: str | None = None) -> dict:
    """One wrk run; ``unique`` (the patient id) makes every request a patient not seen before."""
    threads = max(1, min(conc, 2))
    cmd = ["wrk", "-t", str(threads), "-c", str(conc), "-d", f"{max(1, round(duration))}s", "--timeout", "5s", "-s", str(WRK_LUA), url]
    env = dict(os.environ, BENCH_BODY=str(body_path), BENCH_UNIQUE=unique or "")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith('{"requests"')), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(line)
    secs = r["duration_us"] / 1e6
    errors = r["errors_status"] + r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
    return {"concurrency": conc, "duration_s": round(secs, 2), "requests": r["requests"],
            "rps": round(r["requests"] / secs, 1), "p50_ms": round(r["p50_us"] / 1000, 2),
            "p90_ms": round(r["p90_us"] / 1000, 2), "p99_ms": round(r["p99_us"] / 1000, 2),
            "max_ms": round(r["max_us"] / 1000, 2), "errors": errors, "non_2xx": r["errors_status"]}


# ---------------------------------------------------------------------------
# 1. in-process
# ---------------------------------------------------------------------------
def make_service_app(tmp: Path, **overrides):
    from cds_service import create_app

    app = create_app(auth=overrides.pop("auth", "disabled"), database_url=f"sqlite:///{tmp / 'inproc.db'}", **overrides)
    silence_service_log()
    return app


def bodies_for(sizes) -> dict:
    out = {}
    for n in sizes:
        p = P.patient(n)
        for hook in P.HOOKS:
            out[(hook, n)] = json.dumps(P.request(hook, p, f"bench-{n}")).encode()
    return out


def post(client, path: str, body: bytes, headers: dict | None = None):
    return client.post(path, data=body, content_type="application/json", headers=headers or {})


def inprocess(tmp: Path, bodies: dict, sizes, budget: float, quick: bool) -> tuple[dict, dict, dict]:
    from .floor_app import create_app as floor_create

    floor = floor_create().test_client()
    app = make_service_app(tmp)
    client = app.test_client()
    floor_res, svc_res, cards = {}, {"cold": {}, "warm": {}}, {}
    for n in sizes:
        body = bodies[("patient-view", n)]
        samples = timed_calls(lambda: post(floor, "/cds-services/x", body), budget, 30, 5000)
        floor_res[n] = summary_ms(samples)
        log(f"in-process floor n={n}: {floor_res[n]['median_ms']} ms")
    for hook in P.HOOKS:
        path = f"/cds-services/{P.SERVICE_OF[hook]}"
        for n in sizes:
            body = bodies[(hook, n)]
            resp = post(client, path, body)
            if resp.status_code != 200:
                raise RuntimeError(f"{hook} n={n}: HTTP {resp.status_code}: {resp.get_data(as_text=True)[:500]}")
            cards[f"{hook}/{n}"] = [((c.get("extension") or {}).get("org.her2-cds.rule") or {}).get("id")
                                    for c in resp.get_json()["cards"]]
            for mode, before in MODES.items():
                samples = timed_calls(lambda: post(client, path, body), budget, 20 if n < 1000 else 10, 5000,
                                      before=before)
                svc_res[mode][f"{hook}/{n}"] = summary_ms(samples)
            log(f"in-process {hook} n={n}: cold {svc_res['cold'][f'{hook}/{n}']['median_ms']} ms, warm "
                f"{svc_res['warm'][f'{hook}/{n}']['median_ms']} ms, cards {cards[f'{hook}/{n}']}")
    return floor_res, svc_res, cards


STAGE_WRAPS = [
    ("cds_service.protocol.hooks", "read_json", "parse body"),
    ("cds_service.protocol.hooks", "check", "request schema"),
    ("cds_service.protocol.prefetch", "gather", "prefetch"),
    ("cds_service.criteria", "build_profile", "criteria"),
    ("cds_service.rules.rulebook", "evaluate", "rules"),
    ("cds_service.cards", "render", "cards"),
    ("cds_service.protocol.hooks", "card_is_valid", "card schema"),
    ("cds_service.storage.Store", "record_invocation", "db: audit + issued cards"),
]


@contextlib.contextmanager
def stage_timers():
    """Wrap the pipeline's functions (wherever they are imported by name) with timers."""
    import importlib

    acc: dict[str, float] = {}
    patches = []

    def wrap(fn, label):
        def inner(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                acc[label] = acc.get(label, 0.0) + time.perf_counter() - t0
        inner.__wrapped__ = fn
        return inner

    mods = [m for m in ("cds_service.protocol.hooks", "cds_service.advice", "cds_service.protocol.prefetch", "cds_service.criteria",
                        "cds_service.rules.rulebook", "cds_service.cards")]
    for target, name, label in STAGE_WRAPS:
        if target.endswith(".Store"):
            from cds_service.storage import Store
            orig = getattr(Store, name)
            patches.append((Store, name, orig))
            setattr(Store, name, wrap(orig, label))
            continue
        try:
            mod = importlib.import_module(target)
        except ImportError:
            continue
        orig = getattr(mod, name, None)
        if orig is None:
            continue
        wrapped = wrap(orig, label)
        # Patch the defining module and every module that imported the name directly.
        for mname in mods:
            try:
                m = importlib.import_module(mname)
            except ImportError:
                continue
            if getattr(m, name, None) is orig:
                patches.append((m, name, orig))
                setattr(m, name, wrapped)
            sub = getattr(m, target.rsplit(".", 1)[1], None)
            if sub is mod and (mod, name, orig) not in patches:
                patches.append((mod, name, orig))
                setattr(mod, name, wrapped)
    try:
        yield acc
    finally:
        for obj, name, orig in reversed(patches):
            setattr(obj, name, orig)


def stages(tmp: Path, bodies: dict, sizes, calls: int) -> dict:
    app = make_service_app(tmp)
    client = app.test_client()
    out = {}
    for mode, before in MODES.items():
        for hook in P.HOOKS:
            for n in sizes:
                body = bodies[(hook, n)]
                path = f"/cds-services/{P.SERVICE_OF[hook]}"
                for _ in range(3):
                    post(client, path, body)
                k = calls if n < 1000 else max(5, calls // 4)
                per: dict[str, list[float]] = {}
                totals = []
                for _ in range(k):
                    if before:
                        before()
                    with stage_timers() as acc:
                        t0 = time.perf_counter()
                        post(client, path, body)
                        totals.append(time.perf_counter() - t0)
                    for label, v in acc.items():
                        per.setdefault(label, []).append(v)
                row = {label: round(statistics.median(v) * 1000, 3) for label, v in per.items()}
                total = statistics.median(totals) * 1000
                row["total"] = round(total, 3)
                row["other (Flask, JSON out, glue)"] = round(
                    total - sum(v for k_, v in row.items() if k_ != "total"), 3)
                out[f"{hook}/{n} {mode}"] = row
                log(f"stages {hook} n={n} {mode}: {row}")
    return out


def profiles(tmp: Path, bodies: dict, sizes) -> dict:
    try:
        from pyinstrument import Profiler
    except ImportError:
        log("pyinstrument is not installed; no profiles (pip install pyinstrument)")
        return {}
    app = make_service_app(tmp)
    client = app.test_client()
    written = {}
    for hook, n, calls in (("order-sign", 50, 200), ("patient-view", max(sizes), 20)):
        body = bodies[(hook, n)]
        path = f"/cds-services/{P.SERVICE_OF[hook]}"
        post(client, path, body)
        prof = Profiler(interval=0.0002)
        prof.start()
        for _ in range(calls):
            cold_cache()  # profile the first sight of a patient: the expensive case
            post(client, path, body)
        prof.stop()
        name = f"profile-{hook}-{n}.txt"
        (RESULTS / name).write_text(prof.output_text(unicode=False, color=False, show_all=False))
        written[f"{hook}/{n}"] = f"benchmarks/results/{name}"
    return written


def auth_overhead(tmp: Path, bodies: dict, calls: int) -> dict:
    """Median in-process latency with a fresh ES384 client JWT per call vs auth disabled."""
    from cds_service.auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk

    key = generate_private_key("ES384")
    issuers = tmp / "issuers.json"
    issuers.write_text(json.dumps({"https://bench-ehr.example": {"jwks": {"keys": [public_jwk(key, "k1", "ES384")]}}}))
    app = make_service_app(tmp, auth="required", trusted_issuers=str(issuers))
    client = app.test_client()
    pem = private_key_pem(key)
    hook = "patient-view"
    path = f"/cds-services/{P.SERVICE_OF[hook]}"
    body = bodies[(hook, 50)]
    tokens = [mint_token(pem, "k1", "https://bench-ehr.example", "http://localhost" + path) for _ in range(calls + 5)]
    it = iter(tokens)
    first = post(client, path, body, {"Authorization": f"Bearer {next(it)}"})
    if first.status_code != 200:
        raise RuntimeError(f"auth run: HTTP {first.status_code} {first.get_data(as_text=True)[:300]}")
    samples = timed_calls(lambda: post(client, path, body, {"Authorization": f"Bearer {next(it)}"}), 1e9, calls,
                          calls, warmup=3)
    return summary_ms(samples)


# ---------------------------------------------------------------------------
# 2. fallback
# ---------------------------------------------------------------------------
def fallback_inprocess(tmp: Path, sizes, calls: int, delay: float) -> dict:
    from .fake_fhir import DelayedFhir

    app = make_service_app(tmp)
    client = app.test_client()
    out = {}
    for n in sizes:
        p = P.patient(n)
        resources = [r for v in p.values() for r in v]
        with DelayedFhir(resources, delay) as fhir:
            hook = "patient-view"
            path = f"/cds-services/{P.SERVICE_OF[hook]}"
            body = json.dumps(P.request(hook, None, f"bench-{n}", fhir_server=fhir.base)).encode()
            first = post(client, path, body)
            if first.status_code != 200:
                raise RuntimeError(f"fallback n={n}: HTTP {first.status_code} {first.get_data(as_text=True)[:300]}")
            lat, slowest, queries = [], [], []
            for _ in range(3):
                post(client, path, body)
            for _ in range(calls):
                fhir.reset()
                cold_cache()
                t0 = time.perf_counter()
                resp = post(client, path, body)
                lat.append(time.perf_counter() - t0)
                assert resp.status_code == 200
                with fhir.lock:
                    durs = [d for _, d in fhir.durations]
                slowest.append(max(durs) if durs else float("nan"))
                queries.append(len(durs))
            s = summary_ms(lat)
            s.update(slowest_query_median_ms=round(statistics.median(slowest) * 1000, 2),
                     queries_per_call=statistics.median(queries), sum_of_queries_ms=round(
                         statistics.median(queries) * delay * 1000, 1),
                     ratio_to_slowest=round(statistics.median(lat) / statistics.median(slowest), 3),
                     cards=[((c.get("extension") or {}).get("org.her2-cds.rule") or {}).get("id")
                            for c in first.get_json()["cards"]])
            out[n] = s
            log(f"fallback in-process n={n}: {s}")
    return out


def fallback_http(server: Server, tmp: Path, n: int, concs, duration: float, delay: float) -> dict:
    from .fake_fhir import DelayedFhir

    p = P.patient(n)
    resources = [r for v in p.values() for r in v]
    out = {}
    with DelayedFhir(resources, delay) as fhir:
        body_path = tmp / f"fallback-{n}.json"
        body_path.write_bytes(json.dumps(P.request("patient-view", None, f"bench-{n}", fhir_server=fhir.base)).encode())
        url = f"{server.base}/cds-services/{P.SERVICE_OF['patient-view']}"
        for c in concs:
            r = wrk(url, body_path, c, duration, unique=f"bench-{n}")
            out[c] = r
            log(f"fallback HTTP n={n} c={c}: {r}")
    return out


# ---------------------------------------------------------------------------
# 3. start-up and memory
# ---------------------------------------------------------------------------
def startup(tmp: Path, kind: str, repeats: int) -> dict:
    times, mem = [], None
    for _ in range(repeats):
        s = Server(kind, tmp)
        try:
            times.append(s.start())
            mem = s.memory()
        finally:
            s.stop()
    return {"startup_s": [round(t, 3) for t in times], "startup_median_s": round(statistics.median(times), 3),
            "memory_idle": mem}


# ---------------------------------------------------------------------------
# 4. HTTP
# ---------------------------------------------------------------------------
def http_runs(server: Server, tmp: Path, bodies: dict, keys, concs, duration: float, cold: bool = False) -> dict:
    """wrk runs; ``cold``: every request a patient never seen before (else the same request repeated)."""
    out = {}
    for hook, n in keys:
        body_path = tmp / f"body-{hook}-{n}.json"
        body_path.write_bytes(bodies[(hook, n)])
        url = f"{server.base}/cds-services/{P.SERVICE_OF[hook]}"
        # Prime both workers.
        for _ in range(4):
            requests.post(url, data=bodies[(hook, n)], headers={"Content-Type": "application/json"}, timeout=30)
        for c in concs:
            r = wrk(url, body_path, c, duration, unique=f"bench-{n}" if cold else None)
            out[f"{hook}/{n}/c{c}"] = r
            log(f"HTTP {server.kind} {'cold' if cold else 'warm'} {hook} n={n} c={c}: {r['rps']} req/s p50 {r['p50_ms']} p99 {r['p99_ms']} "
                f"errors {r['errors']} load {loadavg()}")
    return out


# ---------------------------------------------------------------------------
# targets, table, chart
# ---------------------------------------------------------------------------
def loglog_slopes(svc: dict, hook: str, sizes) -> list[float]:
    med = [svc[f"{hook}/{n}"]["median_ms"] for n in sizes]
    return [round(math.log(med[i + 1] / med[i]) / math.log(sizes[i + 1] / sizes[i]), 3) for i in range(len(sizes) - 1)]


def evaluate_targets(res: dict, sizes) -> list[dict]:
    t = []
    floor50 = res["inprocess"]["floor"][50]["median_ms"]
    for mode in ("cold", "warm"):
        for hook in P.HOOKS:
            m = res["inprocess"]["service"][mode][f"{hook}/50"]["median_ms"]
            t.append({"target": f"in-process median, {hook}, 50 resources, {mode} ≤ {TARGETS['inproc_vs_floor']:g}× floor",
                      "value": f"{m:.2f} ms = {m / floor50:.1f}× floor ({floor50:.2f} ms)",
                      "met": m / floor50 <= TARGETS["inproc_vs_floor"]})
    http = res.get("http") or {}
    for mode, key in (("cold", "service_cold"), ("warm", "service")):
        for hook in P.HOOKS:
            r = http.get(key, {}).get(f"{hook}/50/c8")
            if r:
                t.append({"target": f"HTTP p99 at c=8, {hook}, 50 resources, {mode} < {TARGETS['http_p99_c8_ms']:g} ms",
                          "value": f"{r['p99_ms']:.1f} ms ({r['rps']:.0f} req/s, {r['errors']} errors)",
                          "met": r["p99_ms"] < TARGETS["http_p99_c8_ms"] and r["errors"] == 0})
    if len(sizes) > 1:
        for mode in ("cold", "warm"):
            slopes = {h: loglog_slopes(res["inprocess"]["service"][mode], h, sizes) for h in P.HOOKS}
            worst = max(max(v) for v in slopes.values())
            t.append({"target": f"latency grows no worse than linearly, {mode} (log-log slope ≤ "
                                f"{TARGETS['max_loglog_slope']:g})",
                      "value": f"steepest slope {worst:.2f}", "met": worst <= TARGETS["max_loglog_slope"]})
    for n, f in res.get("fallback", {}).get("inprocess", {}).items():
        info = n != 50
        t.append({"target": f"fallback, {n} resources, cold < {TARGETS['fallback_ratio']:g}× slowest query"
                            + (" (information: the target is for the typical 50)" if info else ""),
                  "value": f"{f['median_ms']:.1f} ms vs {f['slowest_query_median_ms']:.1f} ms = "
                           f"{f['ratio_to_slowest']:.2f}× (the {f['queries_per_call']:g} queries in series: "
                           f"{f['sum_of_queries_ms']:.0f} ms)",
                  "met": f["ratio_to_slowest"] < TARGETS["fallback_ratio"], "info": info})
    st = res.get("startup", {}).get("service")
    if st:
        t.append({"target": f"start-up < {TARGETS['startup_s']:g} s", "value": f"{st['startup_median_s']:.2f} s",
                  "met": st["startup_median_s"] < TARGETS["startup_s"]})
    return t


def table(res: dict, sizes) -> str:
    L = []
    ip = res["inprocess"]
    meta = res["meta"]
    L.append(f"Run {meta['when']} at {meta['git']} ({'quick' if meta['quick'] else 'full'}), Python {meta['python']}, "
             f"{meta['cpus']} CPUs, load average {meta['load_before']} before, {meta.get('load_after')} after; "
             f"auth {meta['auth']}.")
    L.append("")
    L.append("## In-process latency (Flask test client), ms: median / p95 / p99")
    L.append("")
    L.append("cold = first sight of the patient (validation cache cleared before each call); "
             "warm = the same request again (a later hook of the same chart).")
    L.append("")
    L.append("| case | " + " | ".join(f"{n} res" for n in sizes) + " |")
    L.append("|---|" + "---|" * len(sizes))
    L.append("| floor (parse + fixed card) | " + " | ".join(
        "{median_ms:.2f} / {p95_ms:.2f} / {p99_ms:.2f}".format(**ip["floor"][n]) for n in sizes) + " |")
    for mode in ("cold", "warm"):
        for hook in P.HOOKS:
            L.append(f"| {hook}, {mode} | " + " | ".join(
                "{median_ms:.2f} / {p95_ms:.2f} / {p99_ms:.2f}".format(**ip["service"][mode][f"{hook}/{n}"])
                for n in sizes) + " |")
    if len(sizes) > 1:
        L.append("")
        L.append("Log-log slope of the median between successive sizes (1.0 = linear; cold): " + "; ".join(
            f"{h} {loglog_slopes(ip['service']['cold'], h, sizes)}" for h in P.HOOKS))
    L.append("")
    L.append("Cards per case: " + "; ".join(f"{k} {v}" for k, v in ip["cards"].items() if k.endswith("/50")))
    if res.get("auth"):
        a = res["auth"]
        base = ip["service"]["warm"]["patient-view/50"]["median_ms"]
        L.append("")
        L.append(f"JWT auth (ES384, a fresh token per call, replay-cache insert), patient-view 50 res warm: median "
                 f"{a['median_ms']:.2f} ms vs {base:.2f} ms with auth disabled (+{a['median_ms'] - base:.2f} ms).")
    if res.get("stages"):
        labels = []
        for row in res["stages"].values():
            labels += [k for k in row if k not in labels and k != "total"]
        L.append("")
        L.append("## Where the time goes (in-process, median ms per stage)")
        L.append("")
        L.append("| case | " + " | ".join(labels) + " | total |")
        L.append("|---|" + "---|" * (len(labels) + 1))
        for case, row in res["stages"].items():
            L.append(f"| {case} | " + " | ".join(f"{row.get(k, 0):.2f}" for k in labels) + f" | {row['total']:.2f} |")
    http = res.get("http")
    if http:
        L.append("")
        L.append("## HTTP through gunicorn (gthread, 2 workers × 8 threads, preload), wrk on loopback: "
                 "req/s, p50 / p99 ms")
        L.append("")
        L.append(f"{meta['wrk_duration_s']:g} s per cell; wrk (2 threads) runs on the same 2 cores as the server. "
                 "warm: the same request repeated; cold: every request a different patient.")
        L.append("")
        concs = sorted({int(k.rsplit("/c", 1)[1]) for k in http["service"]})
        L.append("| case | " + " | ".join(f"c={c}" for c in concs) + " |")
        L.append("|---|" + "---|" * len(concs))

        def cell(r):
            if not r:
                return "—"
            err = f" **{r['errors']} errors**" if r["errors"] else ""
            return f"{r['rps']:.0f}/s, {r['p50_ms']:.1f} / {r['p99_ms']:.1f}{err}"

        L.append("| floor, 50 res | " + " | ".join(cell(http["floor"].get(f"floor/50/c{c}")) for c in concs) + " |")
        for label, key in (("cold", "service_cold"), ("warm", "service")):
            for hook in P.HOOKS:
                for n in sizes:
                    if any(f"{hook}/{n}/c{c}" in http.get(key, {}) for c in concs):
                        L.append(f"| {hook}, {n} res, {label} | " + " | ".join(
                            cell(http[key].get(f"{hook}/{n}/c{c}")) for c in concs) + " |")
    fb = res.get("fallback")
    if fb:
        L.append("")
        L.append(f"## Fallback: no prefetch; a local FHIR server answers each query after "
                 f"{fb['delay_ms']:g} ms (patient-view, cold)")
        L.append("")
        L.append("| case | service median / p95 | slowest single query (median) | ratio | the queries in series |")
        L.append("|---|---|---|---|---|")
        for n, f in fb["inprocess"].items():
            L.append(f"| in-process, {n} res | {f['median_ms']:.1f} / {f['p95_ms']:.1f} ms | "
                     f"{f['slowest_query_median_ms']:.1f} ms | {f['ratio_to_slowest']:.2f}× | "
                     f"{f['sum_of_queries_ms']:.0f} ms |")
        for label, key in (("", "http"), (", HER2CDS_FHIR_MAX_WORKERS=64", "http_fhir_max_workers_64")):
            for c, r in fb.get(key, {}).items():
                L.append(f"| HTTP c={c}, 50 res{label} | p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms, "
                         f"{r['rps']:.0f} req/s | {fb['delay_ms']:g} ms (nominal) | {r['p50_ms'] / fb['delay_ms']:.2f}× "
                         f"(p50) | — |")
    st = res.get("startup")
    if st:
        L.append("")
        L.append("## Start-up (process start → first 200 on /healthz) and memory")
        L.append("")
        L.append("| server | start-up median (runs) | master RSS | each worker idle: RSS / PSS / private dirty "
                 "| each worker after the HTTP runs: RSS / PSS |")
        L.append("|---|---|---|---|---|")
        for kind, s_ in st.items():
            mi = s_["memory_idle"]
            w = mi["workers"][0] if mi["workers"] else {}
            after = (res.get("memory_after_load") or {}).get(kind) or {}
            aw = ", ".join(f"{x['rss_mb']} / {x['pss_mb']} MB" for x in after.get("workers", [])) or "—"
            L.append(f"| {kind} | {s_['startup_median_s']:.2f} s ({', '.join(map(str, s_['startup_s']))}) | "
                     f"{mi['master']['rss_mb']} MB | {w.get('rss_mb')} / {w.get('pss_mb')} / "
                     f"{w.get('private_dirty_mb')} MB | {aw} |")
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for t in res["targets"]:
        met = "yes" if t["met"] else ("no (information)" if t.get("info") else "**NO**")
        L.append(f"| {t['target']} | {t['value']} | {met} |")
    return "\n".join(L)


def chart(res: dict, sizes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    ip = res["inprocess"]
    colors = dict(zip(P.HOOKS, ("tab:blue", "tab:orange", "tab:green")))
    ax = axes[0][0]
    ax.plot(sizes, [ip["floor"][n]["median_ms"] for n in sizes], "k--", marker="o", label="floor")
    for hook in P.HOOKS:
        for mode, ls in (("cold", "-"), ("warm", ":")):
            med = [ip["service"][mode][f"{hook}/{n}"]["median_ms"] for n in sizes]
            ax.plot(sizes, med, marker="o", ls=ls, color=colors[hook], label=f"{hook} {mode}")
    ref = ip["service"]["cold"][f"patient-view/{sizes[0]}"]["median_ms"]
    ax.plot(sizes, [ref * n / sizes[0] for n in sizes], color="grey", alpha=0.25, lw=6, label="linear from smallest")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("resources in prefetch")
    ax.set_ylabel("median ms")
    ax.set_title("In-process latency vs patient size (solid: cold, dotted: warm)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[0][1]
    http = res.get("http")
    if http:
        concs = sorted({int(k.rsplit("/c", 1)[1]) for k in http["service"]})
        series = [("floor", http["floor"], "floor/50", "k")]
        series += [(f"{h} cold", http.get("service_cold", {}), f"{h}/50", colors[h]) for h in P.HOOKS]
        series += [(f"{h} warm", http["service"], f"{h}/50", colors[h]) for h in P.HOOKS]
        width = 0.9 / len(series)
        for i, (label, d, key, color) in enumerate(series):
            xs = [j + i * width for j in range(len(concs))]
            p50 = [d.get(f"{key}/c{c}", {}).get("p50_ms", 0) for c in concs]
            p99 = [d.get(f"{key}/c{c}", {}).get("p99_ms", 0) for c in concs]
            hatch = "//" if label.endswith("warm") else None
            ax.bar(xs, p99, width, color=color, alpha=0.3, hatch=hatch)
            ax.bar(xs, p50, width, color=color, alpha=0.9, hatch=hatch, label=label)
        ax.axhline(TARGETS["http_p99_c8_ms"], color="red", ls="--", lw=1, label="p99 target (c=8)")
        ax.set_xticks([j + 0.45 - width / 2 for j in range(len(concs))], [f"c={c}" for c in concs])
        ax.set_ylabel("ms (dark: p50, pale: p99)")
        ax.set_title("HTTP latency, 50-resource patient (gunicorn 2×8, wrk, loopback)")
        ax.legend(fontsize=7, ncol=2)

    ax = axes[1][0]
    if http:
        for hook in P.HOOKS:
            xs = [n for n in sizes if f"{hook}/{n}/c8" in http["service"]]
            ax.plot(xs, [http["service"][f"{hook}/{n}/c8"]["rps"] for n in xs], marker="o", ls=":",
                    color=colors[hook], label=f"{hook} warm")
            xs = [n for n in sizes if f"{hook}/{n}/c8" in http.get("service_cold", {})]
            ax.plot(xs, [http["service_cold"][f"{hook}/{n}/c8"]["rps"] for n in xs], marker="s", ls="none",
                    color=colors[hook], label=f"{hook} cold")
        fl = http["floor"].get("floor/50/c8")
        if fl:
            ax.axhline(fl["rps"], color="k", ls="--", label="floor (50 res)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("resources in prefetch")
        ax.set_ylabel("requests/s at c=8")
        ax.set_title("HTTP throughput (2 shared cores, load generator included)")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)

    ax = axes[1][1]
    st = res.get("stages") or {}
    cases = list(st)
    if cases:
        labels = []
        for c in cases:
            labels += [k for k in st[c] if k not in labels and k != "total"]
        cmap = plt.get_cmap("tab20")
        left = [0.0] * len(cases)
        for i, label in enumerate(labels):
            vals = [max(st[c].get(label, 0), 0) / st[c]["total"] * 100 for c in cases]
            ax.barh(range(len(cases)), vals, left=left, label=label, color=cmap(i))
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(range(len(cases)), [f"{c} ({st[c]['total']:.1f} ms)" for c in cases], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("% of in-process time (median per stage)")
        ax.set_title("Where the time goes")
        ax.legend(fontsize=6, loc="lower center", bbox_to_anchor=(0.5, -0.42), ncol=4)
    meta = res["meta"]
    fig.suptitle(f"her2-cds benchmark {meta['when']} ({meta['git']}, {'quick' if meta['quick'] else 'full'} run, "
                 f"{meta['cpus']} CPUs, load {meta['load_before']} → {meta.get('load_after')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (about two minutes)")
    ap.add_argument("--duration", type=float, help="seconds per wrk run (default 5, quick 1)")
    ap.add_argument("--skip-http", action="store_true", help="in-process, fallback and start-up only")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    global RESULTS
    if args.out:
        RESULTS = Path(args.out)
    quick = args.quick
    out_dir = RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    duration = args.duration or (1.0 if quick else 5.0)
    budget = 0.3 if quick else 2.0
    sizes = list(P.SIZES)
    delay = 0.05
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
        floor_res, svc_res, cards = inprocess(tmp, bodies, sizes, budget, quick)
        res["inprocess"] = {"floor": floor_res, "service": svc_res, "cards": cards}
        res["stages"] = stages(tmp, bodies, [50, max(sizes)], 20 if quick else 100)
        res["profiles"] = profiles(tmp, bodies, sizes)
        try:
            res["auth"] = auth_overhead(tmp, bodies, 50 if quick else 300)
        except Exception as exc:  # optional measurement
            log(f"auth overhead not measured: {exc}")
        res["fallback"] = {"delay_ms": delay * 1000,
                           "inprocess": fallback_inprocess(tmp, [50, max(sizes)], 10 if quick else 40, delay)}
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
