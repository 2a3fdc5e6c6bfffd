"""The shipped ``fhir_profiles/`` as the tests name it: one loaded Knowledge and its services.

Why here: the service keeps no default knowledge (the app and each command load
theirs from their settings), so the suite's names for the shipped one live with
the suite.  The same object every ``create_app`` of the session gets back
(``load_knowledge`` caches by folder and file stamps).
"""

from __future__ import annotations

from pathlib import Path

from cds_service.config import Settings
from cds_service.core.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = load_knowledge(Settings(profiles_dir=ROOT / "fhir_profiles"))
SERVICES = KNOWLEDGE.services.by_id  # service id → Service
PREFETCH = dict(KNOWLEDGE.services.templates)  # every prefetch key → its template, in published order
