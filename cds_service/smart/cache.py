"""A small per-process TTL cache for the page data (the page, then its timeline picture)."""

from __future__ import annotations

import threading
import time


class ExpiringStore:
    """A thread-safe, bounded dict whose entries expire.

    Only an *optimisation*: the patient data read for ``/smart/app`` is reused
    by the ``/smart/timeline.svg`` request that the page triggers, if it
    reaches the same worker; any other worker simply reads the FHIR server
    again.  Launches and sessions live in the database (``sessions.py``) so
    that any worker can serve any request.
    """

    def __init__(self, max_entries: int):
        self._data: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def put(self, key: str, value, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._purge(now)
            if len(self._data) >= self.max_entries:  # still full: drop the oldest-expiring
                oldest = min(self._data, key=lambda k: self._data[k][0])
                del self._data[oldest]
            self._data[key] = (now + ttl, value)

    def get(self, key: str | None):
        if not key:
            return None
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._data[key]
                return None
            return item[1]

    def _purge(self, now: float) -> None:
        for k in [k for k, (exp, _) in self._data.items() if exp < now]:
            del self._data[k]

    def __len__(self) -> int:
        return len(self._data)
