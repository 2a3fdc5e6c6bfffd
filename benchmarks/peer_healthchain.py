"""The peer: HealthChain's CDS Hooks service answering the benchmark's request with one fixed card.

HealthChain (PyPI ``healthchain``) is a Python framework a team might pick to
build a CDS Hooks service instead of writing one.  This app is what its
documentation shows (``HealthChainAPI`` + ``CDSHooksService`` + a ``@cds.hook``
handler) doing the least a hook can do: FastAPI/pydantic parse the request
into its ``CDSRequest`` model (hook, context, prefetch kept as plain JSON) and
the handler returns one fixed card.  So it is a *framework* floor, not a
competing decision-support service: what a peer stack costs before any
clinical work.

It does not run in the service's venv: HealthChain pins its own FastAPI,
pydantic and fhir.resources (8.1.0, the service has 8.3.0).  The benchmark runs
it out of process with the interpreter of a separate venv (``--peer-python``,
default ``/work/bench-venv/bin/python``; ``benchmarks/run.sh --peer`` creates it)::

    /work/bench-venv/bin/python -m uvicorn benchmarks.peer_healthchain:app --port 8080

Routes: ``POST /cds/cds-services/{id}`` for the three hooks, ``GET /healthz``.
"""

from __future__ import annotations

import logging
import uuid

from healthchain.gateway import CDSHooksService, HealthChainAPI
from healthchain.models import CDSRequest, CDSResponse
from healthchain.models.responses.cdsresponse import Card

logging.getLogger("healthchain").setLevel(logging.WARNING)

SERVICE_IDS = {"patient-view": "her2-mbc-patient-view", "order-select": "her2-mbc-order-select",
               "order-sign": "her2-mbc-order-sign"}

app = HealthChainAPI(title="benchmark peer", enable_events=False)
cds = CDSHooksService(use_events=False)


def _card() -> Card:
    return Card(uuid=str(uuid.uuid4()), summary="Fixed card from the benchmark peer (HealthChain)",
                indicator="info", source={"label": "her2-cds benchmark peer"})


def _fixed(request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[_card()])


for _hook, _sid in SERVICE_IDS.items():
    cds.hook(_hook, id=_sid)(_fixed)

app.register_service(cds)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
