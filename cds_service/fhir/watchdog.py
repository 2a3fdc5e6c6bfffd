"""A total deadline per HTTP exchange: shut the socket down when it passes, whatever phase it is in.

Why more than ``requests``' timeouts: ``timeout=(connect, read)`` bounds each
wait for a byte, not the exchange.  A server that sends one byte every few
seconds (in the status line, the headers or the body) holds the thread for as
long as it likes; 16 such SMART launches once starved every worker for 75 s.
``egress.EgressAdapter`` therefore gives every exchange a ``Watch``: when its
deadline passes, the socket is shut down and the reading thread sees an error
or end-of-stream at once.

One timer thread per process serves every watch (a heap of deadlines), not a
thread per exchange: the hooks' reads (eight per call) pay a heap push, not a
thread start.  The thread is started lazily and again in a forked child.

A connection whose watch expired is never reused (``Watch.finish`` says so
under the same lock the timer takes), so a late shutdown cannot hit the next
exchange on a pooled keep-alive connection.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time

_LIVE, _EXPIRED, _DONE = 0, 1, 2


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock`` (it sees end-of-stream), from any thread.

    The plain socket-level shutdown, also for TLS sockets: it leaves the TLS
    object to the reading thread, which then fails with an ordinary error.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass  # already closed: the exchange is over


class Watch:
    """The deadline of one exchange and the socket it currently uses."""

    __slots__ = ("ends", "_sock", "_state", "_lock")

    def __init__(self, ends: float):
        self.ends = ends
        self._sock: socket.socket | None = None
        self._state = _LIVE
        self._lock = threading.Lock()

    @property
    def expired(self) -> bool:
        return self._state == _EXPIRED

    def attach(self, sock: socket.socket | None) -> None:
        """Watch ``sock`` (a connection opened or reused for this exchange); past the deadline: end it now."""
        if sock is None:
            return
        with self._lock:
            if self._state == _DONE:
                return
            self._sock = sock
            expired = self._state == _EXPIRED
        if expired:
            _shutdown(sock)

    def finish(self) -> bool:
        """Stop watching; True when the deadline had already shut the socket (do not reuse the connection)."""
        with self._lock:
            expired = self._state == _EXPIRED
            self._state = _DONE
            self._sock = None
        return expired

    def _expire(self) -> None:
        with self._lock:
            if self._state != _LIVE:
                return
            self._state = _EXPIRED
            sock = self._sock
        if sock is not None:
            _shutdown(sock)


class _Timer:
    """One daemon thread expiring watches in deadline order."""

    def __init__(self):
        self.pid = os.getpid()
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, ends: float) -> Watch:
        watch = Watch(ends)
        with self._cond:
            first = not self._heap or ends < self._heap[0][0]
            heapq.heappush(self._heap, (ends, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-watchdog", daemon=True)
                self._thread.start()
            elif first:
                self._cond.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                _, _, watch = heapq.heappop(self._heap)
            watch._expire()  # outside the heap's lock: a shutdown may take a moment

    def __len__(self) -> int:
        return len(self._heap)


_timer: _Timer | None = None
_timer_lock = threading.Lock()


def watch(ends: float) -> Watch:
    """A watch that shuts its socket down at the monotonic time ``ends``."""
    global _timer
    timer = _timer
    if timer is None or timer.pid != os.getpid():  # first use, or a forked child (threads do not survive fork)
        with _timer_lock:
            if _timer is None or _timer.pid != os.getpid():
                _timer = _Timer()
            timer = _timer
    return timer.schedule(ends)
