"""The WSGI application for gunicorn: ``cds_service.wsgi:app``.

``cds_service/gunicorn_conf.py`` names it (``wsgi_app``), so both
``her2-cds serve`` and ``gunicorn -c python:cds_service.gunicorn_conf`` load
it, once, in the master (``preload_app``).  A setting or knowledge artifact
the service cannot use is one JSON error line and exit status 2 — not a
traceback per worker.
"""

from __future__ import annotations

import logging

from .app import create_app
from .config import ConfigError
from .core.knowledge import KnowledgeError
from .logs import configure_logging

try:
    app = create_app()
except (ConfigError, KnowledgeError) as exc:
    configure_logging()
    logging.getLogger("her2cds").error("cannot start: %s", exc)
    raise SystemExit(2) from None
