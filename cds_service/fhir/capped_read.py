"""Read a streamed ``requests.Response`` body with a byte cap and a deadline.

Why one function for it: the FHIR client and the SMART app's token/configuration
exchanges both stream bodies from servers they do not control, and both must stop
a huge or trickling answer from holding a worker.  The rule for when to stop lives
here once; each caller turns ``BodyNotRead.reason`` into its own error type and
wording (``FhirError`` for the log of a FHIR read, ``TransportError`` for SMART).
"""

from __future__ import annotations

import time

import requests

OVER_CAP = "over cap"    # the body grew past ``max_bytes``
DEADLINE = "deadline"    # the deadline passed while the body was arriving (what arrived may be partial)
BROKEN = "broken"        # the stream failed (``cause`` says how; the deadline may have passed too)


class BodyNotRead(Exception):
    """The body was not read whole.  ``reason`` is one of the constants above;
    ``cause`` is the ``requests`` exception when ``reason`` is ``BROKEN``."""

    def __init__(self, reason: str, cause: requests.RequestException | None = None):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


def read_capped(resp: requests.Response, max_bytes: int, ends: float, chunk_size: int) -> bytes:
    """The whole body, or ``BodyNotRead`` once it passes ``max_bytes`` or the monotonic ``ends``.

    The deadline is checked after every chunk and once more at the end: a transport
    that shuts the socket at the deadline (``egress.EgressAdapter``'s watchdog) makes
    the stream end quietly, and what arrived then is not all of it.
    """
    chunks, size = [], 0
    try:
        for chunk in resp.iter_content(chunk_size):
            size += len(chunk)
            if size > max_bytes:
                raise BodyNotRead(OVER_CAP)
            if time.monotonic() >= ends:
                raise BodyNotRead(DEADLINE)
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise BodyNotRead(BROKEN, exc) from None
    if time.monotonic() >= ends:
        raise BodyNotRead(DEADLINE)
    return b"".join(chunks)
