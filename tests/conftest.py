"""Shared test fixtures: an app on a temporary database, request builders, Hypothesis profiles.

Speed: ``create_app`` is cheap after the first call because the loaded
Knowledge (terminology, rulebook, schemas) is cached per process for an
unchanged ``fhir_profiles/`` (``cds_service.core.knowledge.load_knowledge``), so the
per-test ``app`` fixture costs a copy of a migrated SQLite file
(``migrated_sqlite``) and a Flask object, not a parse or a migration.  The
quick loop may run on several workers (``pytest -n 3``): session fixtures are made
once per worker, in that worker's temporary directory.

Property tests: the default Hypothesis profile ``ci`` is derandomized (the
same examples on every run and machine, so a red CI run reproduces locally)
and runs a quarter of each test's nominal example count.  The ``explore``
profile (``HER2CDS_HYPOTHESIS_PROFILE=explore``) draws fresh random examples,
five times the nominal count, and keeps failures in Hypothesis's example
database: the longer hunt for new bugs, not part of the quick loop.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator

from cds_service import create_app

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "cds_service" / "schemas"

# The tests' scratch directories (tmp_path: SQLite files, issuer files, fixture copies) go to a RAM
# file system when the machine has one, unless PYTEST_DEBUG_TEMPROOT (pytest's own setting) or
# --basetemp says otherwise.  A quick run leaves ~3,700 files; pytest deletes the run before the last
# three at the end of each session, and on a disk mounted with ``discard`` that took 4 s of the
# session's wall time (0.04 s on tmpfs), besides SQLite's fsyncs during the run.  Set here, at import,
# because pytest reads it when the first temporary directory is made (and xdist's controller makes
# the workers' base directory).
_RAM_TMP = Path("/dev/shm")
if "PYTEST_DEBUG_TEMPROOT" not in os.environ and _RAM_TMP.is_dir() and os.access(_RAM_TMP, os.W_OK):
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(_RAM_TMP)

# profile name -> multiplier of a test's nominal example count (see ``examples``)
HYPOTHESIS_PROFILES = {"ci": 0.25, "explore": 5.0}
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
HYPOTHESIS_PROFILE = os.environ.get("HER2CDS_HYPOTHESIS_PROFILE", "ci")
if HYPOTHESIS_PROFILE not in HYPOTHESIS_PROFILES:
    raise pytest.UsageError(f"HER2CDS_HYPOTHESIS_PROFILE={HYPOTHESIS_PROFILE!r}: "
                            f"choose one of {sorted(HYPOTHESIS_PROFILES)}")
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(nominal: int) -> int:
    """A property test's example count under the active profile (``nominal`` × the profile's multiplier)."""
    return max(1, round(nominal * HYPOTHESIS_PROFILES[HYPOTHESIS_PROFILE]))


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


def postgres_url() -> str:
    """The PostgreSQL test server's URL; without it a postgres test fails rather than skips."""
    url = os.environ.get("HER2CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("HER2CDS_TEST_POSTGRES_URL is not set (or deselect with -m 'not postgres').")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request, db_url) -> str:
    """Each storage backend in turn: the test's own SQLite file, then the shared PostgreSQL test server."""
    return db_url if request.param == "sqlite" else postgres_url()


#: The fake FHIR servers listen on loopback, which the service refuses by default: allow it, explicitly.
LOOPBACK_FHIR = {"fhir_servers": "http://127.0.0.1:*,http://localhost:*",
                 "fhir_allowed_networks": "127.0.0.0/8,::1/128"}


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """An empty SQLite database already at the newest schema revision, made once per session (per worker).

    Running the migrations is most of what ``create_app`` costs on a new file
    (Alembic loads its environment and replays every revision); the per-test
    ``app`` starts from a copy of this instead.  The start-up path that
    migrates a brand-new file is still what tests taking ``db_url`` alone see.
    """
    path = tmp_path_factory.mktemp("migrated") / "template.db"
    create_app(auth="disabled", database_url=f"sqlite:///{path}").extensions["her2cds.store"].engine.dispose()
    return path


@pytest.fixture
def migrated_db_url(db_url, migrated_sqlite) -> str:
    """``db_url`` with the file already at the newest schema (a copy of ``migrated_sqlite``)."""
    shutil.copyfile(migrated_sqlite, db_url.removeprefix("sqlite:///"))
    return db_url


@pytest.fixture
def app(migrated_db_url):
    return create_app(auth="disabled", database_url=migrated_db_url, **LOOPBACK_FHIR)


@pytest.fixture
def client(app):
    return app.test_client()


def fixture_generator():
    """``fixtures/build_fixtures.py`` as a module (it is a script, not part of a package)."""
    if "her2_fixture_builder" in sys.modules:
        return sys.modules["her2_fixture_builder"]
    spec = importlib.util.spec_from_file_location("her2_fixture_builder", ROOT / "fixtures" / "build_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["her2_fixture_builder"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def fixtures_today():
    """``(patients, requests, table rows)`` rebuilt relative to today, once per session.

    "LVEF two weeks ago" must stay two weeks ago, so tests that post fixture
    requests use these, not the committed files (built for the generator's anchor date).
    """
    return fixture_generator().build(dt.date.today())


@pytest.fixture(scope="session")
def requests_today(fixtures_today):
    """The session's fixture requests built for today (shared: a test copies what it changes)."""
    return fixtures_today[1]


def card_rules(resp) -> list[str]:
    """The rule ids of a 200 hook response's cards, sorted (the rule travels in each card's extension)."""
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(c["extension"]["org.her2-cds.rule"]["id"] for c in resp.get_json()["cards"])


@pytest.fixture(scope="session")
def knowledge():
    """The shipped knowledge, loaded once per session (and shared with every ``create_app``)."""
    import shipped  # on use: xdist's controller, which runs no test, never loads the knowledge

    return shipped.KNOWLEDGE


@pytest.fixture(scope="session")
def response_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / "cds-response.schema.json").read_text()))


def searchset(*resources, next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
              "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def empty_prefetch(patient_id: str = "p1") -> dict:
    """Every prefetch key satisfied: a Patient and empty searchsets."""
    import shipped  # on use: xdist's controller never loads the knowledge

    out = {key: searchset() for key in shipped.PREFETCH}
    out["patient"] = {"resourceType": "Patient", "id": patient_id, "gender": "female", "birthDate": "1968-03-01"}
    return out


def hook_request(hook: str = "patient-view", patient_id: str = "p1", prefetch: dict | None = None,
                 draft_orders: list[dict] | None = None, selections: list[str] | None = None, **extra) -> dict:
    context = {"patientId": patient_id, "userId": "Practitioner/dr-1"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in draft_orders or []]}
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [
            f"{r['resourceType']}/{r['id']}" for r in draft_orders or []]
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def issue_card(store, card_uuid: str, service_id: str = "her2-mbc-patient-view", suggestions=(),
               iss: str | None = None, tenant: str | None = None, rule_id: str = "T1") -> str:
    """Record ``card_uuid`` as issued to the client ``iss``/``tenant`` (None: authentication disabled), as a
    hook call would: feedback is accepted only for such cards (issue 21)."""
    from sqlalchemy import insert

    from cds_service.storage import issued_cards

    with store.write() as conn:
        conn.execute(insert(issued_cards).values(
            card_uuid=card_uuid, service_id=service_id, hook=service_id.removeprefix("her2-mbc-"), rule_id=rule_id,
            rulebook_version="test", issued_at=dt.datetime.now(dt.timezone.utc), client_iss=iss,
            client_tenant=tenant, suggestion_ids=json.dumps(list(suggestions))))
    return card_uuid
