"""Prometheus metrics in one process: off by default, token-protected when a token is set, and
counting calls, outcomes, cards per rule, FHIR fallback queries and feedback."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_service.core.advice import Advice
from cds_service.core.cards import IssuedCard
from cds_service import create_app
from cds_service.protocol import hooks

from conftest import LOOPBACK_FHIR, empty_prefetch, hook_request

TOKEN = "metrics-test-token"


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of a Prometheus exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def metrics_app(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    (tmp_path / "prom").mkdir()
    return create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 'm.db'}",
                      metrics="enabled", metrics_token=TOKEN, **LOOPBACK_FHIR)


def scrape(client) -> dict:
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    return samples(resp.get_data(as_text=True))


def test_metrics_are_off_by_default(client):
    resp = client.get("/metrics")
    assert resp.status_code == 404 and resp.get_json()["resourceType"] == "OperationOutcome"


def test_a_token_protects_the_endpoint(metrics_app):
    client = metrics_app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "WWW-Authenticate" in client.get("/metrics").headers


def test_calls_cards_feedback_and_fallback_queries_are_counted(metrics_app, monkeypatch, httpserver):
    client = metrics_app.test_client()
    card = {"uuid": "c-1", "summary": "Test", "indicator": "info", "source": {"label": "her2-cds"},
            "extension": {"org.her2-cds.rule": {"id": "M2", "rulebookVersion": "2026.11"}}}
    real_advise = hooks.advice.advise
    monkeypatch.setattr(hooks.advice, "advise", lambda *a, **k: Advice((IssuedCard(card, "M2", "2026.11"),), None))
    assert client.post("/cds-services/her2-mbc-patient-view",
                       json=hook_request(prefetch=empty_prefetch())).status_code == 200
    monkeypatch.setattr(hooks.advice, "advise", real_advise)
    assert client.post("/cds-services/her2-mbc-patient-view", json=hook_request()).status_code == 412
    assert client.post("/cds-services/no-such-service", json=hook_request()).status_code == 404
    # one prefetch key missing: fetched from the FHIR server, which fails it
    prefetch = empty_prefetch()
    del prefetch["conditions"]
    httpserver.expect_request("/fhir/Condition").respond_with_data("nope", status=500)
    assert client.post("/cds-services/her2-mbc-patient-view", json=hook_request(
        prefetch=prefetch, fhirServer=httpserver.url_for("/fhir"))).status_code in (200, 412)
    feedback = {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    for _ in range(2):
        assert client.post("/cds-services/her2-mbc-patient-view/feedback", json=feedback).status_code == 200

    got = scrape(client)
    pv = "her2-mbc-patient-view"
    assert got[("her2cds_hook_invocations_total", (("outcome", "cards"), ("service", pv)))] == 1
    assert got[("her2cds_hook_invocations_total", (("outcome", "incomplete"), ("service", pv)))] >= 1
    assert got[("her2cds_hook_invocations_total", (("outcome", "not-found"), ("service", "unknown")))] == 1
    assert got[("her2cds_cards_issued_total", (("rule", "M2"), ("service", pv)))] == 1
    assert got[("her2cds_fhir_fallback_queries_total", (("result", "failed"),))] == 1
    assert got[("her2cds_feedback_received_total", (("outcome", "overridden"), ("service", pv)))] == 2
    assert got[("her2cds_feedback_stored_total", (("service", pv),))] == 1
    assert got[("her2cds_hook_duration_seconds_count", (("outcome", "cards"), ("service", pv)))] == 1
    route = "/cds-services/<service_id>"
    assert got[("her2cds_http_requests_total", (("method", "POST"), ("route", route), ("status", "200")))] >= 1
    assert not any("no-such-service" in str(key) for key in got)  # labels never carry caller-made values


def test_metrics_setting_is_checked():
    from cds_service.config import ConfigError, from_env
    with pytest.raises(ConfigError, match="HER2CDS_METRICS"):
        from_env({"HER2CDS_METRICS": "yes"})


def test_made_up_methods_share_one_label(metrics_app):
    client = metrics_app.test_client()
    for i in range(30):
        client.open("/healthz", method=f"BREW{i}")
    methods = {dict(labels).get("method") for (name, labels) in scrape(client)
               if name.startswith("her2cds_http_requests")}
    assert "other" in methods and not any(m and m.startswith("BREW") for m in methods)
