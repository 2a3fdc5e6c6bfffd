"""Metrics from a real ``her2-cds serve --workers 2``: each worker writes its own sample files,
and one scrape (answered by either worker) adds them up to exactly the calls made."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict

from test_metrics import samples

from .served import start

pytestmark = pytest.mark.integration

TOKEN = "two-worker-metrics-token"
SERVICE = "her2-mbc-patient-view"
BATCH = 40


def _hook_counts_by_pid(directory: Path) -> dict[str, float]:
    """Per worker pid: the hook-invocation count in its own counter file."""
    out = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            name, *_ = json.loads(key)
            if name == "her2cds_hook_invocations":
                total += value
        if total:
            out[path.stem.split("_", 1)[1]] = total
    return out


def test_two_workers_scrape_adds_up(tmp_path):
    prom = tmp_path / "prometheus"
    prom.mkdir()
    served = start(tmp_path, workers=2, env={"HER2CDS_METRICS": "enabled", "HER2CDS_METRICS_TOKEN": TOKEN,
                                              "PROMETHEUS_MULTIPROC_DIR": str(prom)})
    path = f"/cds-services/{SERVICE}"

    # A patient whose chart opening gets one card (D1: no HER2 result): feedback is accepted only for a
    # card the service issued to this client (issue 21), so each call answers the card it received.
    body = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "requests"
                       / "p08-no-her2-patient-view.json").read_text())

    def call(_):
        resp = requests.post(served.url + path, json=body,
                             headers={**served.headers(path), "Connection": "close"}, timeout=30)
        assert resp.status_code == 200, resp.text
        card = resp.json()["cards"][0]["uuid"]
        feedback_path = path + "/feedback"
        entry = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
        for _ in range(2):  # the second one is a duplicate: received, not stored
            resp = requests.post(served.url + feedback_path, headers=served.headers(feedback_path), timeout=30,
                                 json={"feedback": [entry]})
            assert resp.status_code == 200, resp.text

    try:
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(5):  # until both workers have answered some calls (almost always the first batch)
                list(pool.map(call, range(BATCH)))
                sent += BATCH
                if len(_hook_counts_by_pid(prom)) == 2:
                    break
        per_worker = _hook_counts_by_pid(prom)
        assert len(per_worker) == 2, per_worker
        assert sum(per_worker.values()) == sent

        assert requests.get(served.url + "/metrics", timeout=10).status_code == 401
        for _ in range(4):  # whichever worker answers the scrape, it reports the sum over both
            resp = requests.get(served.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                                   "Connection": "close"}, timeout=10)
            assert resp.status_code == 200
            got = samples(resp.text)
            assert got[("her2cds_hook_invocations_total", (("outcome", "cards"), ("service", SERVICE)))] == sent
            assert got[("her2cds_hook_duration_seconds_count", (("outcome", "cards"), ("service", SERVICE)))] == sent
            assert got[("her2cds_feedback_received_total", (("outcome", "overridden"), ("service", SERVICE)))] == 2 * sent
            assert got[("her2cds_feedback_stored_total", (("service", SERVICE),))] == sent
    finally:
        served.stop()
