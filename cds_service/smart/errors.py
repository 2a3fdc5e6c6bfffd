"""The one exception the SMART app's modules raise for the user to see."""

from __future__ import annotations


class SmartError(Exception):
    """A problem the user must see as a page: ``status`` and a plain-language ``title`` and ``message``.

    The message is shown to whoever holds the browser, so it never carries a
    token, and never a network detail that would tell an open port from a
    closed one: that goes in ``detail``, which only the service log sees,
    under the request id the page shows (never a token or a body in it).
    """

    def __init__(self, status: int, title: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.status, self.title, self.message, self.detail = status, title, message, detail
