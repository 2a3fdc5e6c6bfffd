"""How the benchmark's numbers are shown: the targets of issue 7, the Markdown table, the chart."""

from __future__ import annotations

import math
from pathlib import Path

from . import patients as P

TARGETS = {
    "inproc_vs_floor": 3.0,       # median in-process latency, 50 resources, ≤ 3× the floor's
    "http_p99_c8_ms": 50.0,       # HTTP p99 at concurrency 8, 50 resources
    "max_loglog_slope": 1.10,     # latency grows no worse than linearly (10 % slack for noise)
    "fallback_ratio": 1.5,        # fallback latency < 1.5× the slowest single query
    "fallback_slow_p95_s": 5.0,   # fallback at 600 ms/query: 200 with the cards, p95 < Da Vinci CRD's 5 s
    "startup_s": 2.0,             # process start → first 200
}



def loglog_slopes(svc: dict, hook: str, sizes) -> list[float]:
    med = [svc[f"{hook}/{n}"]["median_ms"] for n in sizes]
    return [round(math.log(med[i + 1] / med[i]) / math.log(sizes[i + 1] / sizes[i]), 3) for i in range(len(sizes) - 1)]


def evaluate_targets(res: dict, sizes) -> list[dict]:
    t = []
    floor50 = res["inprocess"]["floor"][50]["median_ms"]
    for mode in ("cold", "warm"):
        for hook in P.HOOKS:
            cell = res["inprocess"]["service"][mode][f"{hook}/50"]
            m = cell["median_ms"]
            floor = cell.get("floor_median_ms") or floor50  # the floor measured beside the cell, as the baseline reads it
            t.append({"target": f"in-process median, {hook}, 50 resources, {mode} ≤ {TARGETS['inproc_vs_floor']:g}× floor",
                      "value": f"{m:.2f} ms = {m / floor:.2f}× floor ({floor:.2f} ms, measured beside it)",
                      "met": m / floor <= TARGETS["inproc_vs_floor"]})
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
                  "met": f["ratio_to_slowest"] < TARGETS["fallback_ratio"] and not f.get("non_200")
                  and f.get("cards_as_prefetch") == f["n"], "info": info})
    slow = res.get("fallback_slow")
    if slow:
        for n, f in slow["inprocess"].items():
            info = n != 50
            t.append({"target": f"fallback at {slow['delay_ms']:g} ms/query, {n} resources: 200 with cards, p95 < "
                                f"{TARGETS['fallback_slow_p95_s']:g} s"
                                + (" (information: the target is for the typical 50)" if info else ""),
                      "value": f"{statuses(f)}, cards = prefetch in {f['cards_as_prefetch']} of {f['n']}, "
                               f"p50 {f['median_ms']:.0f} / p95 {f['p95_ms']:.0f} / max {f['max_ms']:.0f} ms",
                      "met": not f["non_200"] and f["cards_as_prefetch"] == f["n"] and bool(f["prefetch_cards"])
                      and f["p95_ms"] < TARGETS["fallback_slow_p95_s"] * 1000, "info": info})
    st = res.get("startup", {}).get("service")
    if st:
        t.append({"target": f"start-up < {TARGETS['startup_s']:g} s", "value": f"{st['startup_median_s']:.2f} s",
                  "met": st["startup_median_s"] < TARGETS["startup_s"]})
    return t


def statuses(f: dict) -> str:
    """``"20 × 200"`` or ``"18 × 200, 2 × 412"``: the status of every fallback call."""
    return ", ".join(f"{v} × {k}" for k, v in f["statuses"].items())


def fallback_rows(fb: dict) -> list[str]:
    """One fallback scenario (a fake FHIR server at ``fb['delay_ms']`` per query) as table rows."""
    L = [f"### No prefetch; a local FHIR server answers each query after {fb['delay_ms']:g} ms "
         f"(patient-view, cold)", "",
         "| case | service p50 / p95 / max | slowest single query (median) | ratio | the queries in series "
         "| statuses | cards = prefetch | every call < 5 s |",
         "|---|---|---|---|---|---|---|---|"]
    for n, f in fb["inprocess"].items():
        L.append(f"| in-process, {n} res | {f['median_ms']:.1f} / {f['p95_ms']:.1f} / {f['max_ms']:.1f} ms | "
                 f"{f['slowest_query_median_ms']:.1f} ms | {f['ratio_to_slowest']:.2f}× | "
                 f"{f['sum_of_queries_ms']:.0f} ms | {statuses(f)} | {f['cards_as_prefetch']} of {f['n']} "
                 f"({', '.join(map(str, f['prefetch_cards']))}) | "
                 + ("yes" if not f["over_crd_5s"] else f"**no: {f['over_crd_5s']} calls ≥ 5 s**") + " |")
    for label, key in (("", "http"), (", HER2CDS_FHIR_MAX_WORKERS=64", "http_fhir_max_workers_64")):
        for c, r in fb.get(key, {}).items():
            L.append(f"| HTTP c={c}, 50 res{label} | p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} / max "
                     f"{r['max_ms']:.1f} ms, {r['rps']:.0f} req/s | {fb['delay_ms']:g} ms (nominal) | "
                     f"{r['p50_ms'] / fb['delay_ms']:.2f}× (p50) | — | {r['requests']} calls, {r['non_2xx']} not 2xx, "
                     f"{r['errors'] - r['non_2xx']} other errors | not checked (wrk) | "
                     + ("— (no call completed in the run)" if not r["requests"] else
                        "yes" if r["max_ms"] < 5000 and r["errors"] == r["non_2xx"] else "**no**") + " |")
    return L


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
    if res.get("fallback"):
        L.append("")
        L.append("## Fallback: no prefetch, the service fetches from a local FHIR server (shipped FHIR timeouts)")
        for key in ("fallback", "fallback_slow"):
            if res.get(key):
                L.append("")
                L += fallback_rows(res[key])
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



def cprofile_table(cp: dict) -> str:
    """The cProfile split per stage: share of the whole call (ms per call under the profiler)."""
    cases = list(cp)
    labels = list(next(iter(cp.values()))["ms_per_call"])
    L = ["## Where the time goes, by cProfile: share of the call (ms per call under the profiler)", "",
         "Each line is the cumulative time of the functions doing that work (`scenarios.PROFILE_GROUPS`). "
         "cProfile inflates Python-level calls, so read the shares; criteria include the FHIR validation "
         "(also shown on its own).", "",
         "| stage | " + " | ".join(cases) + " |", "|---|" + "---|" * len(cases)]
    for label in labels:
        L.append(f"| {label} | " + " | ".join(
            f"{cp[c]['share'][label] * 100:.0f} % ({cp[c]['ms_per_call'][label]:.2f})" for c in cases) + " |")
    return "\n".join(L)


def peer_table(peer: dict) -> str:
    """Service / peer (HealthChain) / floor over HTTP with one client."""
    L = ["## A peer beside us: HealthChain CDS Hooks (fixed card) vs the service vs the floor, over HTTP", "",
         f"One client for all (`harness.sequential_calls`: http.client, one keep-alive connection, one call at a "
         f"time, {peer['calls']} calls after 20 warm-up); each server runs out of process with 2 worker processes "
         "(floor and service: gunicorn gthread 2 × 8; peer: uvicorn). The service is warm (the same body again).", ""]
    if peer.get("peer_skipped"):
        L += [f"**Peer not measured**: {peer['peer_skipped']}", ""]
    L += ["| case | floor | peer (HealthChain) | service | peer / floor | service / floor | service / peer |",
          "|---|---|---|---|---|---|---|"]
    for case, cell in peer["cells"].items():
        def ms(k):
            v = cell.get(k)
            return f"{v['median_ms']:.2f} / {v['p95_ms']:.2f}" if v else "—"
        r = cell["ratios"]
        L.append(f"| {case} | {ms('floor')} | {ms('peer')} | {ms('service')} | "
                 + " | ".join(f"{r[k]:.2f}×" if k in r else "—" for k in ("peer/floor", "service/floor", "service/peer"))
                 + " |")
    L.append("")
    L.append("ms: median / p95.")
    return "\n".join(L)


def next_selection_table(nxt: dict, ip: dict) -> str:
    """The order composer's next selection beside the warm cell (the same request again)."""
    warm = ip["service"]["warm"].get("order-select/50", {})
    rows = ["## order-select, the next selection (in-process, 50 resources)", "",
            "The same prefetch with a new draft id on every call (the order composer's next selection): the "
            "history is remembered, the draft and what depends on it read fresh. Not in the baseline; beside "
            "it, the warm cell (the same request again).", "",
            "| case | median / p95 ms | floor ms | ratio | cards |", "|---|---|---|---|---|",
            f"| a new selection each call | {nxt['median_ms']} / {nxt['p95_ms']} | {nxt['floor_median_ms']} | "
            f"{nxt['ratio']}× | {', '.join(str(c) for c in nxt['cards'])} |"]
    if warm:
        rows.append(f"| the same request again (warm) | {warm['median_ms']} / {warm['p95_ms']} | "
                    f"{warm['floor_median_ms']} | {round(warm['median_ms'] / warm['floor_median_ms'], 2)}× | |")
    return "\n".join(rows)
