"""gunicorn settings for her2-cds.

``her2-cds serve`` reads this file and applies its ``--host/--port/--workers/
--threads`` options on top.  Operators can run gunicorn with it directly and
override any setting on the command line or in their own file:

    gunicorn -c python:cds_service.gunicorn_conf --bind 0.0.0.0:8080 --workers 4

(or copy it: ``python -c "import cds_service.gunicorn_conf as c; print(c.__file__)"``).

What it sets, and why:

* threaded workers (``gthread``), the app loaded once in the master and
  forked (``preload_app``): the knowledge is a few hundred thousand objects
  the workers then share copy-on-write (docs/performance.md);
* error and access logs as the same JSON lines as the app's, on stderr
  (``cds_service.logs.logconfig``); access lines carry request id, method,
  path (never the query string), status and duration, never a header;
* no control socket (gunicorn would create one under ``$HOME``): the service
  writes only to its data directory;
* "listening" is logged only once the sockets are bound, and an address in
  use is one error line and exit 1 instead of five retries.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import sys

from gunicorn import sock as _sock
from gunicorn import util as _util

from cds_service import logs as _logs

wsgi_app = "cds_service.wsgi:app"
bind = ["127.0.0.1:8080"]
workers = 2
threads = 8
worker_class = "gthread"
preload_app = True
timeout = 30
accesslog = "-"
loglevel = os.environ.get("HER2CDS_LOG_LEVEL", "INFO").lower()
logconfig_dict = _logs.logconfig()
control_socket_disable = True

# Python warnings (a library's DeprecationWarning, say) become JSON log lines
# too, instead of plain text in the middle of the stream.
logging.captureWarnings(True)

_log = logging.getLogger("her2cds.serve")


def on_starting(server):
    """Bind the configured addresses once, before gunicorn would retry each for five seconds.

    Skipped when the sockets come from elsewhere: ``fd://`` (``her2-cds
    serve`` binds before loading the app), systemd socket activation, or a
    re-executing master handing over its sockets.
    """
    _logs.configure_logging(loglevel)
    cfg = server.cfg
    inherited = (server.master_pid or os.environ.get("LISTEN_FDS")
                 or any(isinstance(a, int) for a in cfg.address) or cfg.reuse_port)
    if server.LISTENERS or inherited:
        return
    listeners = []
    for address in cfg.address:
        if isinstance(address, tuple):
            kind = _sock.TCP6Socket if _util.is_ipv6(address[0]) else _sock.TCPSocket
        else:
            kind = _sock.UnixSocket
        try:
            listeners.append(kind(address, cfg, server.log))
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else address
            _log.error("cannot listen on %s: %s", where, reason)
            sys.exit(1)
    server.LISTENERS = listeners


def when_ready(server):
    """The sockets are bound and the app is loaded: say where, then prepare the fork."""
    from cds_service.commands.dev_keys import first_call_hint

    urls = [f"{listener}/cds-services" for listener in server.LISTENERS]
    _log.info("listening on %s", ", ".join(urls), extra={"urls": urls, "workers": server.cfg.workers})
    hint = first_call_hint(urls[0]) if urls else None
    if hint:
        _log.info("no issuer configured; trusting the local development issuer (loopback only); "
                  "the first-call command is on stdout")
        print(f"First call (mints a token with the local development key, then calls discovery):\n  {hint}",
              flush=True)
    app = _preloaded_app(server)
    if app is not None:
        # The master's connections must not be shared with the workers.
        app.extensions["her2cds.store"].dispose()
    # The preloaded knowledge lives as long as the process: keep it out of the
    # collector's walks (and its copy-on-write pages clean) in every worker.
    gc.collect()
    gc.freeze()


def post_fork(server, worker):
    """Per-worker clients: the database pool starts empty in each worker (SQLAlchemy's fork recipe)."""
    app = _preloaded_app(server)
    if app is not None:
        app.extensions["her2cds.store"].engine.dispose(close=False)


def child_exit(server, worker):
    """A worker ended: prometheus_client's per-worker clean-up (its counters stay, so totals never drop)."""
    from cds_service.metrics import child_exit as metrics_child_exit
    metrics_child_exit(server, worker)


def _preloaded_app(server):
    """The Flask app when gunicorn loaded it in the master (``preload_app``), else None."""
    return getattr(server.app, "callable", None)
