"""The pure pipeline: resources → patient profile → recommendations → cards.

Nothing here does I/O; the HTTP layer hands in what prefetch gathered.
"""

from __future__ import annotations


def advise(hook: str, service_id: str, context: dict, resources: list[dict],
           findings: list | None = None, knowledge=None, base_url: str | None = None) -> list[dict]:
    """Return the CDS cards for one hook call. Placeholder until the rulebook lands."""
    return []
