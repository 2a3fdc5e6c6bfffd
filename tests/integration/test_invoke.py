"""`her2-cds invoke` against the running service and sekmet-fhir.

The central check: for every fixture patient and every hook, the cards are
the same whether the client fills the prefetch or the service fetches the
data itself with the bearer token.
"""

from __future__ import annotations

import json

import pytest

from shipped import PREFETCH

from .conftest import DATA, ROOT, fixture_patient_ids, run_cli

pytestmark = pytest.mark.integration

HOOKS = ["her2-mbc-patient-view", "her2-mbc-order-select", "her2-mbc-order-sign"]
DRAFT = str(DATA / "draft-tucatinib.json")


REQUESTS = ROOT / "fixtures" / "requests"


def draft_orders_for(patient: str, hook: str, tmp_path) -> str:
    """The patient's own scenario drafts from fixtures/requests (this hook's first, then any order hook),
    else a generic tucatinib draft, as a Bundle file for --draft-order."""
    candidates = sorted(REQUESTS.glob(f"{patient}-{hook}*.json")) + sorted(REQUESTS.glob(f"{patient}-order-*.json"))
    for path in candidates:
        drafts = json.loads(path.read_text()).get("context", {}).get("draftOrders")
        if drafts and drafts.get("entry"):
            out = tmp_path / f"drafts-{patient}-{hook}.json"
            out.write_text(json.dumps(drafts))
            return str(out)
    return DRAFT


def invoke_json(service, sekmet, service_id: str, patient: str, *extra: str, drafts: str = DRAFT) -> dict:
    args = ["invoke", service_id, "--patient", patient, "--fhir-server", sekmet.base, "--token", sekmet.token,
            "--service", service.url, "--json", *extra]
    if service_id != "her2-mbc-patient-view":
        args += ["--draft-order", drafts]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def comparable(cards: list[dict]) -> list[dict]:
    """Cards without the per-call random uuids, in a stable order."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "uuid"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return sorted((strip(c) for c in cards), key=lambda c: json.dumps(c, sort_keys=True))


def test_every_fixture_patient_is_collected():
    ids = fixture_patient_ids()
    assert {"itest-alpha", "itest-beta"} <= set(ids)
    repo_patients = sorted((ROOT / "fixtures" / "patients").glob("*.json"))
    assert len(ids) >= len(repo_patients) + 2


def test_the_equivalence_check_sees_real_cards(loaded, service, tmp_path):
    """Guard against a vacuous equivalence: across the fixtures, the service does answer with cards."""
    total = 0
    for patient in fixture_patient_ids()[:12]:
        total += len(invoke_json(service, loaded, "her2-mbc-order-select", patient,
                                 drafts=draft_orders_for(patient, "order-select", tmp_path))["cards"])
    assert total >= 5


@pytest.mark.parametrize("patient", fixture_patient_ids())
@pytest.mark.parametrize("service_id", HOOKS)
def test_prefetch_filled_and_fetched_give_the_same_cards(loaded, service, patient, service_id, tmp_path):
    drafts = draft_orders_for(patient, service_id.removeprefix("her2-mbc-"), tmp_path)
    # Two clinicians: a card shown once per event to each clinician (the next-line card after a
    # progression, the ER/PR ask) is then answered to both calls, so the comparison sees it twice.
    filled = invoke_json(service, loaded, service_id, patient, "--user", f"Practitioner/filled-{service_id}",
                         drafts=drafts)
    fetched = invoke_json(service, loaded, service_id, patient, "--no-prefetch", "--user",
                          f"Practitioner/fetched-{service_id}", drafts=drafts)
    assert comparable(filled["cards"]) == comparable(fetched["cards"])


def test_invoke_prints_cards_readably(loaded, service):
    result = run_cli("invoke", "patient-view", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--token", loaded.token, "--service", service.url)
    assert result.exit_code == 0, result.output + result.stderr
    out = result.stdout.splitlines()
    assert out[0].endswith("card(s)")
    count = int(out[0].split()[0])
    assert sum(1 for line in out if line.startswith("[")) == count
    assert "patient-view -> her2-mbc-patient-view" in result.stderr
    assert f"prefetch filled by client ({len(PREFETCH)} keys)" in result.stderr


def test_show_request_redacts_the_token(loaded, service):
    result = run_cli("invoke", "patient-view", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--token", loaded.token, "--service", service.url, "--show-request", "--no-prefetch", "--json")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stderr[: result.stderr.rindex("}") + 1])
    assert request["fhirAuthorization"]["access_token"] == "***"
    assert "prefetch" not in request
    assert loaded.token not in result.stderr


def test_no_prefetch_without_token_reports_the_services_412(loaded, service):
    result = run_cli("invoke", "patient-view", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--service", service.url, "--no-prefetch")
    assert result.exit_code == 1
    assert "HTTP 412" in result.stderr


def test_unknown_hook_lists_the_offered_ones(loaded, service):
    result = run_cli("invoke", "encounter-start", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--service", service.url)
    assert result.exit_code == 2
    assert "her2-mbc-order-sign" in result.stderr


def test_order_hooks_need_a_draft_order(loaded, service):
    result = run_cli("invoke", "order-sign", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--service", service.url)
    assert result.exit_code == 2
    assert "needs at least one --draft-order" in result.stderr


def test_service_down_is_a_clear_error(loaded):
    result = run_cli("invoke", "patient-view", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--service", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the CDS service" in result.stderr


@pytest.fixture(scope="module")
def secured_service(tmp_path_factory):
    """The service with authentication on, trusting a fresh `her2-cds dev-keys init` key pair."""
    from cds_service import create_app

    from .conftest import ServerThread, free_port

    keys = tmp_path_factory.mktemp("keys")
    result = run_cli("dev-keys", "init", "--dir", str(keys))
    assert result.exit_code == 0, result.output
    port = free_port()  # known before start-up: the JWT aud is http://127.0.0.1:<port>/…, never the Host header
    app = create_app(auth="required", trusted_issuers=str(keys / "trusted-issuers.json"),
                     database_url=f"sqlite:///{keys / 'db.sqlite'}", fhir_time_budget=20.0,
                     fhir_connect_timeout=5.0, fhir_read_timeout=15.0, bind=f"127.0.0.1:{port}",
                     fhir_servers="http://127.0.0.1:*", fhir_allowed_networks="127.0.0.0/8")
    server = ServerThread(app, port)
    server.keys = keys
    yield server
    server.stop()


def test_invoke_signs_each_call_with_the_dev_key(loaded, secured_service):
    result = run_cli("invoke", "patient-view", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--token", loaded.token, "--service", secured_service.url,
                     "--dev-keys", str(secured_service.keys))
    assert result.exit_code == 0, result.stderr
    assert "signed JWT" in result.stderr


def test_invoke_without_key_is_refused_by_a_secured_service(loaded, secured_service):
    result = run_cli("invoke", "patient-view", "--patient", "itest-alpha", "--fhir-server", loaded.base,
                     "--token", loaded.token, "--service", secured_service.url)
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr
