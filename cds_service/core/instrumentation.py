"""Named timing points in the request pipeline, free unless someone listens.

The pipeline marks its steps where they happen::

    with stage("criteria"):
        profile = build_profile(...)

With no recorder installed (production, tests) ``stage`` returns one shared
do-nothing context manager: a global read and two empty method calls.  The
benchmark installs a recorder to get a per-stage breakdown::

    with recording(lambda name, seconds: ...):
        client.post(...)

Stages are named here, at the code that does the work, so renaming or moving
a function cannot silently drop it from the benchmark's table (the benchmark
used to wrap functions by name).  The recorder is process-wide and sees every
thread's stages; it is meant for a single-threaded in-process benchmark.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

Recorder = Callable[[str, float], None]

# The pipeline's stages, in request order (the benchmark's table columns).
STAGES = ("parse body", "request schema", "prefetch", "criteria", "rules", "cards", "card schema",
          "db: audit + issued cards")

_recorder: Recorder | None = None


class _Off:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False


_OFF = _Off()


class _Timed:
    __slots__ = ("name", "recorder", "started")

    def __init__(self, name: str, recorder: Recorder):
        self.name, self.recorder = name, recorder

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc) -> bool:
        self.recorder(self.name, time.perf_counter() - self.started)
        return False


def stage(name: str):
    """Context manager timing one pipeline step for the installed recorder, if any."""
    recorder = _recorder
    if recorder is None:
        return _OFF
    return _Timed(name, recorder)


@contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Install ``recorder(name, seconds)`` for the block; the previous one is restored after."""
    global _recorder
    previous, _recorder = _recorder, recorder
    try:
        yield recorder
    finally:
        _recorder = previous
