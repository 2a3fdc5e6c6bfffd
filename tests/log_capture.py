"""Capture one service logger's records in a test (the ``her2cds`` loggers do not propagate to root)."""

from __future__ import annotations

import contextlib
import logging


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def capture_log(name: str):
    handler = Capture()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
