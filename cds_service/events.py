"""What the service reports while it works, for whoever the app installed to listen.

Why a seam: the hooks, the feedback endpoint and the FHIR client used to
import ``metrics``, which in turn imported the discovery table to name
services — arrows running back up the layers.  Now those modules only call
``events.hook_invocation(…)`` and friends; the app installs one ``Listener``
(``metrics.init_app`` installs the counting one when metrics are on) and the
FHIR client is handed its callback when it is built, as HAPI's prefetch hands
results to interceptors.  With nothing installed every call is a no-op.
"""

from __future__ import annotations

from typing import Iterable

from flask import current_app, has_app_context

EXTENSION = "her2cds.events"


class Listener:
    """The events, each a no-op here; a subclass overrides what it counts."""

    def hook_invocation(self, service_id: str, outcome: str, seconds: float, rule_ids: list[str]) -> None:
        """One CDS service call: its outcome, duration and the rules of the cards it sent."""

    def feedback_received(self, service_id: str, outcomes: list[str], stored: int) -> None:
        """One feedback POST: the outcome of each entry, and how many were new."""

    def fhir_queries(self, results: Iterable) -> None:
        """The FetchResults of one FHIR fallback round (each ``.ok`` or not)."""


QUIET = Listener()


def install(app, listener: Listener) -> None:
    app.extensions[EXTENSION] = listener


def listener() -> Listener:
    """The current app's listener; outside an app (tools, tests of the client), the quiet one."""
    return current_app.extensions.get(EXTENSION, QUIET) if has_app_context() else QUIET


def hook_invocation(service_id: str, outcome: str, seconds: float, rule_ids: list[str]) -> None:
    listener().hook_invocation(service_id, outcome, seconds, rule_ids)


def feedback_received(service_id: str, outcomes: list[str], stored: int) -> None:
    listener().feedback_received(service_id, outcomes, stored)
