"""The benchmark's machinery: timing loops, statistics, servers, the load generator, stage timings.

Nothing here knows what is measured (that is ``scenarios``) or how it is
shown (``report``).  Stage timings come from the service's own timing points
(``cds_service.core.instrumentation.stage``), installed with ``stage_times()``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from cds_service.core.instrumentation import recording

ROOT = Path(__file__).resolve().parent.parent
WRK_LUA = Path(__file__).resolve().parent / "wrk_post.lua"
PYTHON = sys.executable
HER2_CDS = str(Path(sys.executable).with_name("her2-cds"))


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


def paired_calls(floor_fn, fn, budget_s: float, min_n: int, max_n: int, warmup: int = 5,
                 before=None, block: int = 20) -> tuple[list[float], list[float]]:
    """Floor and service calls in alternating blocks of ``block`` calls: (floor seconds, service seconds).

    Other workers' test suites come and go on the machine within a second; two
    cells measured a few seconds apart can see a different machine.  In
    alternating blocks, the floor is measured under the same load as the
    service beside it, so their ratio stays put when both times move.  Blocks,
    not single calls in turn: a floor call right after a service call pays for
    the service's garbage (a GC pass) and cold CPU caches, and measured 35 %
    slower (0.54 vs 0.39 ms at 50 resources), which would flatter the ratio;
    within a block the median is the floor's own.  ``before`` runs untimed
    before each service call (the cold path's cache clearing).
    """
    for _ in range(warmup):
        floor_fn()
        if before:
            before()
        fn()
    fl: list[float] = []
    out: list[float] = []
    end = time.perf_counter() + budget_s
    while len(out) < max_n and (len(out) < min_n or time.perf_counter() < end):
        for _ in range(block):
            t0 = time.perf_counter()
            floor_fn()
            fl.append(time.perf_counter() - t0)
        for _ in range(block):
            if before:
                before()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return fl, out


def cold_cache() -> None:
    """Forget what the service has seen (the R4 validation cache, the memo of the record's history): the call
    is a first sight of the patient."""
    from cds_service.core import criteria
    from cds_service.core.parse import clear_check_cache

    clear_check_cache()
    if hasattr(criteria, "clear_history_memo"):  # absent before issue 23 (a run of older code, for comparison)
        criteria.clear_history_memo()


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


class Server:
    """A gunicorn server in its own process group; ``start()`` returns seconds to first 200 on /healthz."""

    def __init__(self, kind: str, tmp: Path, workers: int = 2, threads: int = 8, extra_env: dict | None = None,
                 python: str | None = None):
        self.kind, self.tmp, self.workers, self.threads = kind, tmp, workers, threads
        self.python = python or PYTHON  # the peer runs with its own venv's interpreter
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
        if self.kind == "peer":
            # HealthChain is FastAPI (ASGI): uvicorn with the same number of worker processes.
            return [self.python, "-m", "uvicorn", "benchmarks.peer_healthchain:app", "--host", "127.0.0.1",
                    "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning",
                    "--no-access-log"]
        return [HER2_CDS, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                str(self.workers), "--threads", str(self.threads)]

    def start(self, timeout: float = 30.0) -> float:
        env = dict(os.environ)
        env.update({"HER2CDS_AUTH": "disabled", "HER2CDS_DATABASE_URL": f"sqlite:///{self.tmp / f'svc-{self.port}.db'}",
                    "PYTHONPATH": str(ROOT), **{f"HER2CDS_{k.upper()}": v for k, v in LOOPBACK_FHIR.items()}})
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


def sequential_calls(url: str, body: bytes, calls: int, warmup: int = 20) -> list[float]:
    """Seconds per call, one after the other on one keep-alive connection (``http.client``).

    The one client every HTTP server of the peer comparison is measured with
    (floor, service, peer): the same bytes, the same connection handling, so
    the ratios compare the servers and not the clients.  Raises on a non-200.
    """
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    out: list[float] = []
    try:
        for i in range(warmup + calls):
            t0 = time.perf_counter()
            conn.request("POST", u.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            dt_ = time.perf_counter() - t0
            if resp.status != 200:
                raise RuntimeError(f"{url}: HTTP {resp.status} {data[:300]!r}")
            if i >= warmup:
                out.append(dt_)
    finally:
        conn.close()
    return out


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


# The fake FHIR server listens on loopback, which the egress policy refuses unless allowed.
LOOPBACK_FHIR = {"fhir_servers": "http://127.0.0.1:*", "fhir_allowed_networks": "127.0.0.0/8"}


def make_service_app(tmp: Path, **overrides):
    from cds_service import create_app

    overrides = {**LOOPBACK_FHIR, **overrides}
    app = create_app(auth=overrides.pop("auth", "disabled"), database_url=f"sqlite:///{tmp / 'inproc.db'}", **overrides)
    silence_service_log()
    return app

def rule_ids(cards: list[dict]) -> list[str | None]:
    """The rule id of each card (the benchmark checks the cards are the expected ones)."""
    return [((c.get("extension") or {}).get("org.her2-cds.rule") or {}).get("id") for c in cards]


def post(client, path: str, body: bytes, headers: dict | None = None):
    return client.post(path, data=body, content_type="application/json", headers=headers or {})



@contextmanager
def stage_times() -> Iterator[dict[str, float]]:
    """Seconds per pipeline stage (summed over the block), from the service's timing points."""
    acc: dict[str, float] = {}

    def add(name: str, seconds: float) -> None:
        acc[name] = acc.get(name, 0.0) + seconds

    with recording(add):
        yield acc
