"""The ``her2-cds`` command.

``serve`` lives here; every other command is a module in
``cds_service/commands/`` exposing a click ``command`` and is found
automatically, so adding a command never means editing this file.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import pkgutil
import socket
import sys

import click
from gunicorn.app.base import Application
from gunicorn.util import import_app

from . import commands as commands_pkg

log = logging.getLogger("her2cds.serve")

#: The readable gunicorn settings shipped in the package (cds_service/gunicorn_conf.py).
GUNICORN_CONFIG = "python:cds_service.gunicorn_conf"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """her2-cds: CDS Hooks 2.0 decision support for HER2-positive metastatic breast cancer."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port; the log line says which).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="gunicorn worker processes.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1), help="Threads per worker.")
@click.option("--dev", is_flag=True, help="Run Flask's debug server instead of gunicorn.")
def serve(host: str, port: int, workers: int, threads: int, dev: bool) -> None:
    """Run the service: gunicorn with cds_service/gunicorn_conf.py (threaded workers, app preloaded).

    The port is bound first, so a port in use is one error line and exit 1
    before anything is loaded.  On loopback with authentication required and
    no HER2CDS_TRUSTED_ISSUERS, a local development issuer in the data
    directory is made (or reused) and trusted, and the first-call command is
    printed; on any other address no issuer is invented.
    """
    from .commands.dev_keys import first_run_issuer
    from .config import ConfigError, from_env

    try:
        settings = from_env()
        listener = _bind(host, port)
        issuers_file = first_run_issuer(settings, host)
    except ConfigError as exc:
        click.echo(f"her2-cds: cannot start: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        click.echo(f"her2-cds: cannot listen on {host}:{port}: {reason}", err=True)
        sys.exit(1)
    # The app (loaded by gunicorn from the environment) accepts tokens for the
    # address actually bound: the port is known only now when --port 0.
    bound = _address(host, listener.getsockname()[1])
    os.environ["HER2CDS_BIND"] = bound
    if issuers_file is not None:
        os.environ["HER2CDS_TRUSTED_ISSUERS"] = str(issuers_file)
    elif settings.auth_enabled and not settings.trusted_issuers:
        from .logs import configure_logging

        configure_logging(settings.log_level)
        log.error("not creating a development issuer: %s is not a loopback address; configure "
                  "HER2CDS_TRUSTED_ISSUERS (until then every /cds-services call gets 401)", host)
    if dev:
        listener.close()
        _serve_dev(host, int(bound.rpartition(":")[2]), bound)
        return
    _Gunicorn({"bind": [f"fd://{listener.fileno()}"], "workers": workers, "threads": threads}).run()


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when host is an IPv6 address); raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host.strip("[]"), port), family=family, backlog=2048)


def _address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _serve_dev(host: str, port: int, bound: str) -> None:
    from .app import create_app
    from .commands.dev_keys import first_call_hint
    from .config import ConfigError
    from .core.knowledge import KnowledgeError

    try:
        app = create_app(bind=bound)  # the accepted JWT aud without HER2CDS_PUBLIC_URL
    except (ConfigError, KnowledgeError) as exc:
        click.echo(f"her2-cds: cannot start: {exc}", err=True)
        sys.exit(2)
    hint = first_call_hint(f"http://{host}:{port}/cds-services")
    if hint:
        click.echo(f"First call (mints a token with the local development key, then calls discovery):\n  {hint}")
    # No interactive debugger: it would expose a Python console over HTTP.
    app.run(host=host, port=port, debug=True, use_debugger=False, use_reloader=False)


class _Gunicorn(Application):
    """gunicorn with the shipped config file, then ``her2-cds serve``'s options on top."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        self.load_config_from_module_name_or_filename(GUNICORN_CONFIG)
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return import_app(self.cfg.wsgi_app)


def _register_commands() -> None:
    for info in pkgutil.iter_modules(commands_pkg.__path__):
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if command is not None:
            cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="her2-cds")


if __name__ == "__main__":
    main()
