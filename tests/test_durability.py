"""Durability (issue 5): concurrent workers lose nothing; records survive a restart.

The worker test mirrors ``her2-cds serve``: the app is built once, its
database engine disposed, then four processes are forked from it (gunicorn's
``preload_app``) and post feedback through the full stack, JWT included, all
at the same moment.  Every row must be there exactly once, and entries that
all four post at once must be stored once.  It runs on a SQLite file and on
the PostgreSQL server named by ``HER2CDS_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import threading
import uuid

import pytest
from sqlalchemy import insert, select

from cds_service import create_app
from cds_service.auth.jwt_tokens import mint_token
from cds_service.storage import Store, issued_cards, jwt_replay
from cds_service.storage import audit as audit_table

from conftest import issue_card
from trusted_client import ISS, KID, issuer_file, signing_key  # noqa: F401 (fixtures)
from store_rows import feedback_rows, audit_rows

POSTGRES_ENV = "HER2CDS_TEST_POSTGRES_URL"
SERVICE = "her2-mbc-order-select"
FEEDBACK_URL = f"http://localhost/cds-services/{SERVICE}/feedback"
WORKERS = 4
POSTS_PER_WORKER = 40
SHARED = 5  # entries every worker posts at the same time: stored once


def postgres_url() -> str:
    """The test server's URL; without it the test fails (CI always has PostgreSQL)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.fail(f"{POSTGRES_ENV} is not set. Start PostgreSQL and export e.g. "
                    f"{POSTGRES_ENV}=postgresql+psycopg://her2cds:her2cds@127.0.0.1:5432/her2cds_test "
                    "(or deselect with -m 'not postgres').")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'durable.db'}"
    return postgres_url()


def feedback_item(card: str) -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}],
            "outcomeTimestamp": "2026-01-15T10:00:00Z"}


def _worker(app, pem: bytes, barrier, conn, worker_no: int, run_id: str) -> None:
    """One forked worker: wait for the others, then post feedback as fast as it can.

    Results go back through a Pipe (a synchronous send): a Queue's feeder
    thread would be killed by ``os._exit`` before it flushed.
    """
    try:
        client = app.test_client()
        barrier.wait(timeout=120)
        replies = []
        for i in range(POSTS_PER_WORKER):
            items = [feedback_item(f"{run_id}-w{worker_no}-{i}")]
            if i < SHARED:
                items.append(feedback_item(f"{run_id}-shared-{i}"))
            token = mint_token(pem, KID, ISS, FEEDBACK_URL)
            resp = client.post(f"/cds-services/{SERVICE}/feedback", json={"feedback": items},
                               headers={"Authorization": f"Bearer {token}"})
            replies.append((resp.status_code, resp.get_json()))
        conn.send((worker_no, replies))
    except BaseException as exc:  # report to the parent instead of dying silently
        conn.send((worker_no, f"worker crashed: {exc!r}"))
    finally:
        conn.close()
        os._exit(0)  # no pytest/atexit machinery in the forked child


def run_workers(app, pem: bytes, run_id: str) -> list:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    app.extensions["her2cds.store"].dispose()  # as `her2-cds serve` does before forking
    pipes = [ctx.Pipe(duplex=False) for _ in range(WORKERS)]
    procs = [ctx.Process(target=_worker, args=(app, pem, barrier, send, n, run_id))
             for n, (_, send) in enumerate(pipes)]
    for p in procs:
        p.start()
    replies = []
    for (recv, _), p in zip(pipes, procs):
        assert recv.poll(180), f"worker {p.name} sent nothing within 180 s"
        replies.append(recv.recv())
        p.join(timeout=30)
    for worker_no, outcome in replies:
        assert not isinstance(outcome, str), f"worker {worker_no}: {outcome}"
    return [r for _, outcome in replies for r in outcome]


def stale_replay_records(store, run_id: str, n: int = 2000) -> None:
    """Expired replay rows, as after a quiet night: every worker's first request races to purge them."""
    with store.engine.begin() as conn:
        conn.execute(insert(jwt_replay), [{"issuer": ISS, "jti": f"{run_id}-old-{i}", "expires_at": 1}
                                          for i in range(n)])


def test_four_workers_lose_no_feedback(database_url, issuer_file, signing_key):
    pem = signing_key[0]
    run_id = uuid.uuid4().hex[:12]
    app = create_app(auth="required", database_url=database_url, trusted_issuers=issuer_file)
    stale_replay_records(app.extensions["her2cds.store"], run_id)
    for card in ([f"{run_id}-w{w}-{i}" for w in range(WORKERS) for i in range(POSTS_PER_WORKER)]
                 + [f"{run_id}-shared-{i}" for i in range(SHARED)]):  # feedback is taken only for issued cards
        issue_card(app.extensions["her2cds.store"], card, SERVICE, suggestions=["s1"], iss=ISS)
    replies = run_workers(app, pem, run_id)

    assert len(replies) == WORKERS * POSTS_PER_WORKER
    bad = [r for r in replies if r[0] != 200]
    assert not bad, bad[:3]
    assert sum(body["stored"] for _, body in replies) == WORKERS * POSTS_PER_WORKER + SHARED
    assert sum(body["duplicates"] for _, body in replies) == (WORKERS - 1) * SHARED

    # A "restarted" service (a new app and engine on the same database) sees every row exactly once.
    restarted = create_app(auth="required", database_url=database_url, trusted_issuers=issuer_file)
    rows = [r for r in feedback_rows(restarted.extensions["her2cds.store"], SERVICE)
            if r["card_uuid"].startswith(run_id)]
    cards = sorted(r["card_uuid"] for r in rows)
    expected = sorted([f"{run_id}-w{w}-{i}" for w in range(WORKERS) for i in range(POSTS_PER_WORKER)]
                      + [f"{run_id}-shared-{i}" for i in range(SHARED)])
    assert cards == expected
    restarted.extensions["her2cds.store"].dispose()


def test_issued_cards_feedback_and_replay_cache_survive_a_restart(database_url, issuer_file, signing_key):
    pem = signing_key[0]
    card = f"card-{uuid.uuid4().hex}"
    first = create_app(auth="required", database_url=database_url, trusted_issuers=issuer_file)
    issue_card(first.extensions["her2cds.store"], card, SERVICE, suggestions=["s1"], iss=ISS)
    token = mint_token(pem, KID, ISS, FEEDBACK_URL)
    resp = first.test_client().post(f"/cds-services/{SERVICE}/feedback", json={"feedback": [feedback_item(card)]},
                                    headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.get_json()["stored"] == 1
    first.extensions["her2cds.store"].dispose()

    second = create_app(auth="required", database_url=database_url, trusted_issuers=issuer_file)
    store = second.extensions["her2cds.store"]
    with store.engine.connect() as conn:
        issued = conn.execute(select(issued_cards).where(issued_cards.c.card_uuid == card)).all()
        remembered = conn.execute(select(jwt_replay).where(jwt_replay.c.issuer == ISS)).all()
    assert len(issued) == 1 and issued[0].rule_id == "T1"
    assert any(row.expires_at > dt.datetime.now().timestamp() for row in remembered)
    assert [r["card_uuid"] for r in feedback_rows(store, SERVICE) if r["card_uuid"] == card] == [card]
    # the captured token cannot be replayed against the restarted service
    replay = second.test_client().post(f"/cds-services/{SERVICE}/feedback",
                                       json={"feedback": [feedback_item(card)]},
                                       headers={"Authorization": f"Bearer {token}"})
    assert replay.status_code == 401
    store.dispose()


def _hold_the_write_lock(url: str, held, release) -> None:
    """Forked child: take a write transaction, say so, wait, then write one audit row."""
    try:
        store = Store(url)
        with store.write() as conn:
            held.set()
            release.wait(10)
            conn.execute(insert(audit_table), {"request_id": "child", "at": dt.datetime.now(dt.timezone.utc),
                                               "status": 200, "outcome": "cards"})
    finally:
        os._exit(0)


def test_sqlite_writers_in_different_processes_take_turns(tmp_path):
    """A worker's write waits for another worker's open write transaction (the flock beside the file).

    The child opens its transaction first but writes its row only when told;
    the parent's write, started meanwhile, must land after it.  Without the
    cross-process lock the parent would reach SQLite first (the child has not
    written yet, so SQLite holds no lock) and its row would come first.
    """
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    parent = Store(url)
    parent.dispose()  # as before gunicorn forks
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_the_write_lock, args=(url, held, release))
    child.start()
    assert held.wait(10)
    waiter = threading.Thread(target=parent.record_invocation, args=(
        {"request_id": "parent", "status": 200, "outcome": "cards"}, "svc", "patient-view", []))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # blocked behind the child's transaction
    release.set()
    waiter.join(10)
    child.join(10)
    assert [r["request_id"] for r in audit_rows(parent)] == ["child", "parent"]
    assert (tmp_path / "turns.db-writelock").exists()
