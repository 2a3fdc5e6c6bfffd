"""What the benchmark measures: one function per scenario, each returning plain numbers.

In-process latency (Flask test client) against the floor app, the per-stage
breakdown, pyinstrument profiles, the JWT check, the FHIR fallback path, start-up
and memory, and HTTP through gunicorn with wrk.  The machinery is in
``harness``; ``report`` turns the numbers into the table, targets and chart.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path

import requests

from cds_service.core.instrumentation import STAGES
from tests.fake_fhir import FakeFhir, PatientBehaviour

from . import patients as P
from .harness import (
    MODES, Server, cold_cache, log, loadavg, make_service_app, paired_calls, post, rule_ids, sequential_calls,
    stage_times,
    summary_ms, timed_calls, wrk,
)


def bodies_for(sizes) -> dict:
    out = {}
    for n in sizes:
        p = P.patient(n)
        for hook in P.HOOKS:
            out[(hook, n)] = json.dumps(P.request(hook, p, f"bench-{n}")).encode()
    return out


def inprocess(tmp: Path, bodies: dict, sizes, budget: float) -> tuple[dict, dict, dict]:
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
            cards[f"{hook}/{n}"] = rule_ids(resp.get_json()["cards"])
            floor_body = body  # the floor parses the same request (issue 23: "parses the same body")
            for mode, before in MODES.items():
                # The floor in turn with the service, call by call: the ratio divides by a floor
                # measured under the same machine load (other workers come and go during a run).
                floor_near, samples = paired_calls(lambda: post(floor, "/cds-services/x", floor_body),
                                                   lambda: post(client, path, body), budget,
                                                   20 if n < 1000 else 10, 5000, before=before)
                svc_res[mode][f"{hook}/{n}"] = dict(summary_ms(samples),
                                                    floor_median_ms=summary_ms(floor_near)["median_ms"])
            log(f"in-process {hook} n={n}: cold {svc_res['cold'][f'{hook}/{n}']['median_ms']} ms, warm "
                f"{svc_res['warm'][f'{hook}/{n}']['median_ms']} ms, cards {cards[f'{hook}/{n}']}")
    return floor_res, svc_res, cards


def next_selection(tmp: Path, bodies: dict, n: int, budget: float) -> dict:
    """order-select as the order composer sends it: the same prefetch, a new draft on every selection.

    The warm cells repeat one request, so its drafts are the same every time; here each call's
    T-DXd draft has a new id (the selection with it), rewritten untimed before the call: the
    history is remembered (no draft id names a record), the draft, its facts, the rules and
    cards about it are read fresh.  Paired with the floor parsing the same body.
    """
    from .floor_app import create_app as floor_create

    floor = floor_create().test_client()
    (tmp / "next").mkdir(exist_ok=True)
    client = make_service_app(tmp / "next").test_client()
    body = bodies[("order-select", n)]
    assert body.count(b'"draft-tdxd"') == 1 and body.count(b'MedicationRequest/draft-tdxd"') == 1
    current = {"body": body}
    counter = iter(range(10 ** 9))

    def next_body() -> None:
        i = next(counter)
        current["body"] = body.replace(b'"draft-tdxd"', b'"draft-tdxd-%d"' % i).replace(
            b'MedicationRequest/draft-tdxd"', b'MedicationRequest/draft-tdxd-%d"' % i)

    path = f"/cds-services/{P.SERVICE_OF['order-select']}"
    floor_near, samples = paired_calls(lambda: post(floor, "/cds-services/x", body),
                                       lambda: post(client, path, current["body"]), budget, 20, 5000,
                                       before=next_body)
    resp = post(client, path, current["body"])
    out = dict(summary_ms(samples), floor_median_ms=summary_ms(floor_near)["median_ms"],
               cards=rule_ids(resp.get_json()["cards"]))
    out["ratio"] = round(out["median_ms"] / out["floor_median_ms"], 2)
    log(f"in-process order-select n={n}, a new selection each call: {out['median_ms']} ms = {out['ratio']}× floor")
    return out


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
                    with stage_times() as acc:
                        t0 = time.perf_counter()
                        post(client, path, body)
                        totals.append(time.perf_counter() - t0)
                    for label, v in acc.items():
                        per.setdefault(label, []).append(v)
                row = {label: round(statistics.median(per[label]) * 1000, 3) for label in STAGES if label in per}
                total = statistics.median(totals) * 1000
                row["total"] = round(total, 3)
                row["other (Flask, JSON out, glue)"] = round(
                    total - sum(v for k_, v in row.items() if k_ != "total"), 3)
                out[f"{hook}/{n} {mode}"] = row
                log(f"stages {hook} n={n} {mode}: {row}")
    return out


def profiles(tmp: Path, bodies: dict, sizes, out_dir: Path) -> dict:
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
        (out_dir / name).write_text(prof.output_text(unicode=False, color=False, show_all=False))
        written[f"{hook}/{n}"] = str(out_dir / name)
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


def fake_ehr(resources: list[dict], delay: float) -> FakeFhir:
    """A local FHIR server answering each query for the patient after ``delay`` s (an EHR round trip).

    The transport of a production FHIR server: keep-alive (the service's pooled Session reuses
    connections), no Nagle (the body would wait for a delayed ACK, ~40 ms, an artifact of the fake)
    and a listen backlog of 128 (Linux's long-standing ``somaxconn``; Tomcat, under HAPI, accepts
    100) so bursts of 10 queries per call from 8 concurrent calls are queued, not dropped.
    """
    return FakeFhir(PatientBehaviour(resources, P.searchset, delay), keep_alive=True, nodelay=True,
                    backlog=128)


CRD_RESPONSE_S = 5.0  # Da Vinci CRD: the whole hook call answered within 5 s


def fallback_inprocess(tmp: Path, sizes, calls: int, delay: float, expected: dict, warmup: int = 3) -> dict:
    """Cold patient-view calls with no prefetch against ``fake_ehr(delay)``, with the shipped FHIR budget.

    ``expected[n]`` are the rule ids the same patient gets with full prefetch: every call is
    checked for status 200 and for those cards, so a budget that runs out (412, or cards lost to
    a data-quality finding) shows as a count, not as a fast-looking latency.
    """
    app = make_service_app(tmp)
    client = app.test_client()
    out = {}
    for n in sizes:
        p = P.patient(n)
        resources = [r for v in p.values() for r in v]
        with fake_ehr(resources, delay) as fhir:
            hook = "patient-view"
            path = f"/cds-services/{P.SERVICE_OF[hook]}"
            body = json.dumps(P.request(hook, None, f"bench-{n}", fhir_server=fhir.base)).encode()
            for _ in range(warmup):
                post(client, path, body)
            lat, slowest, queries, statuses, same_cards, got = [], [], [], Counter(), 0, None
            for _ in range(calls):
                fhir.reset()
                cold_cache()
                t0 = time.perf_counter()
                resp = post(client, path, body)
                lat.append(time.perf_counter() - t0)
                statuses[resp.status_code] += 1  # e.g. 412: the FHIR time budget ran out
                if resp.status_code == 200:
                    got = rule_ids(resp.get_json()["cards"])
                    same_cards += got == expected[n]
                durs = fhir.answered()
                slowest.append(max(durs) if durs else float("nan"))
                queries.append(len(durs))
            s = summary_ms(lat)
            s.update(slowest_query_median_ms=round(statistics.median(slowest) * 1000, 2),
                     queries_per_call=statistics.median(queries), sum_of_queries_ms=round(
                         statistics.median(queries) * delay * 1000, 1),
                     ratio_to_slowest=round(statistics.median(lat) / statistics.median(slowest), 3),
                     max_ms=round(max(lat) * 1000, 3), over_crd_5s=sum(x >= CRD_RESPONSE_S for x in lat),
                     statuses={str(k): v for k, v in sorted(statuses.items())},
                     non_200=calls - statuses[200], cards_as_prefetch=same_cards,
                     cards=got, prefetch_cards=expected[n])
            out[n] = s
            log(f"fallback in-process {delay * 1000:g} ms/query n={n}: {s}")
    return out


def fallback_http(server: Server, tmp: Path, n: int, concs, duration: float, delay: float) -> dict:
    p = P.patient(n)
    resources = [r for v in p.values() for r in v]
    out = {}
    with fake_ehr(resources, delay) as fhir:
        body_path = tmp / f"fallback-{n}.json"
        body_path.write_bytes(json.dumps(P.request("patient-view", None, f"bench-{n}", fhir_server=fhir.base)).encode())
        url = f"{server.base}/cds-services/{P.SERVICE_OF['patient-view']}"
        for c in concs:
            r = wrk(url, body_path, c, duration, unique=f"bench-{n}")
            out[c] = r
            log(f"fallback HTTP n={n} c={c}: {r}")
    return out


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


# Where the time goes, by cProfile: each group is the cumulative time of the functions that do that
# work (a function listed in two groups would be counted twice; none is). The timer stages above give
# milliseconds without profiler overhead; this splits what they lump together: FHIR validation inside
# "criteria", the JSON answer and logging inside "other".
PROFILE_GROUPS = (
    ("intake: body read + JSON parse + depth check", (("cds_service/protocol/validation.py", "read_json"),)),
    ("request schema", (("cds_service/protocol/validation.py", "check"),)),
    ("prefetch: Bundles → resources", (("cds_service/protocol/prefetch.py", "gather"),)),
    ("FHIR R4 validation (check_r4)", (("cds_service/core/parse.py", "check_r4"),)),
    ("criteria (build_profile)", (("cds_service/core/criteria/__init__.py", "build_profile"),)),
    ("rules", (("cds_service/core/rules/evaluate.py", "evaluate"), ("cds_service/core/advice.py", "_live_rules"))),
    ("cards", (("cds_service/core/cards.py", "render"),)),
    ("card schema", (("cds_service/protocol/hooks.py", "card_is_valid"),)),
    ("repeat keys + look-ups", (("cds_service/protocol/repeats.py", "keys_of"),
                                ("cds_service/protocol/repeats.py", "once_per_event"),
                                ("cds_service/protocol/hooks.py", "_order_sign_cards"),
                                ("cds_service/protocol/hooks.py", "_once_per_event_cards"))),
    ("JSON answer (cards_answer)", (("cds_service/protocol/hooks.py", "cards_answer"),)),
    ("storage (audit + issued cards)", (("cds_service/storage/audit.py", "record_invocation"),)),
    ("logging", (("logging/__init__.py", "callHandlers"),)),
    ("hook handler (all of the above)", (("cds_service/protocol/hooks.py", "invoke"),)),
    ("whole call (test client + Flask)", (("benchmarks/harness.py", "post"),)),
)


def cprofile_stages(tmp: Path, bodies: dict, cases, calls: int) -> dict:
    """Per case: ms per call of each ``PROFILE_GROUPS`` group under cProfile, and its share of the call.

    cProfile slows Python-level calls (many small ones most), so the milliseconds
    are inflated; the shares are what to read.  "criteria" includes the FHIR
    validation it calls (shown on its own line too).
    """
    import cProfile
    import pstats

    app = make_service_app(tmp)
    client = app.test_client()
    out = {}
    for hook, n, mode in cases:
        body = bodies[(hook, n)]
        path = f"/cds-services/{P.SERVICE_OF[hook]}"
        before = MODES[mode]
        for _ in range(3):
            post(client, path, body)
        k = calls if n < 1000 else max(5, calls // 10)
        prof = cProfile.Profile()
        for _ in range(k):
            if before:
                before()
            prof.enable()
            post(client, path, body)
            prof.disable()
        st = pstats.Stats(prof).stats
        row = {}
        for label, funcs in PROFILE_GROUPS:
            ct = sum(v[3] for (fname, _line, func), v in st.items()
                     if any(fname.endswith(suffix) and func == name for suffix, name in funcs))
            row[label] = round(ct / k * 1000, 3)
        whole = row["whole call (test client + Flask)"] or float("nan")
        out[f"{hook}/{n} {mode}"] = {"ms_per_call": row, "share": {k_: round(v / whole, 3) for k_, v in row.items()},
                                     "calls": k}
        log(f"cProfile {hook} n={n} {mode}: {row}")
    return out


def peer_comparison(tmp: Path, bodies: dict, keys, calls: int, peer_python: str) -> dict:
    """Service / peer (HealthChain) / floor over HTTP, each answered by its own server, one client.

    The three servers run out of process with two worker processes each
    (gunicorn gthread for the floor and the service, uvicorn for the FastAPI
    peer); ``harness.sequential_calls`` posts the same bytes to each, one call
    at a time on a keep-alive connection.  The service is warm (the same body
    repeated).  When the peer cannot be started the reason is returned, and
    the report prints it, instead of a number.
    """
    import os

    out: dict = {"calls": calls, "cells": {}}
    peer_ok = os.path.exists(peer_python)
    if not peer_ok:
        out["peer_skipped"] = (f"{peer_python} does not exist: HealthChain needs its own venv (it pins "
                               f"fhir.resources 8.1 and FastAPI); create it with "
                               f"`bash benchmarks/run.sh --peer` or pass --peer-python")
    servers = {"floor": Server("floor", tmp), "service": Server("service", tmp)}
    if peer_ok:
        servers["peer"] = Server("peer", tmp, python=peer_python)
    started = {}
    try:
        for name, s in servers.items():
            try:
                s.start(timeout=60)
                started[name] = s
            except Exception as exc:  # the peer may fail; the others must not
                if name != "peer":
                    raise
                tail = s.logfile.read_text(errors="replace")[-800:] if s.logfile.exists() else ""
                out["peer_skipped"] = f"the HealthChain peer did not start: {exc}; log tail: {tail.strip()}"
        for hook, n in keys:
            body = bodies[(hook, n)]
            cell = {}
            for name, s in started.items():
                path = (f"/cds/cds-services/{P.SERVICE_OF[hook]}" if name == "peer"
                        else f"/cds-services/{P.SERVICE_OF[hook]}" if name == "service" else "/cds-services/x")
                cell[name] = summary_ms(sequential_calls(s.base + path, body, calls))
            f = cell["floor"]["median_ms"]
            cell["ratios"] = {f"{k}/floor": round(v["median_ms"] / f, 2) for k, v in cell.items() if k != "floor"}
            if "peer" in cell:
                cell["ratios"]["service/peer"] = round(cell["service"]["median_ms"] / cell["peer"]["median_ms"], 2)
            out["cells"][f"{hook}/{n}"] = cell
            log(f"peer comparison {hook} n={n}: " + ", ".join(
                f"{k} {v['median_ms']} ms" for k, v in cell.items() if k != "ratios") + f"; {cell['ratios']}")
    finally:
        for s in started.values():
            s.stop()
    return out
