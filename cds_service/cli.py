"""The ``her2-cds`` command.

``serve`` lives here; every other command is a module in
``cds_service/commands/`` exposing a click ``command`` and is found
automatically, so adding a command never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from . import commands as commands_pkg


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """her2-cds: CDS Hooks 2.0 decision support for HER2-positive metastatic breast cancer."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per worker.")
@click.option("--dev", is_flag=True, help="Run Flask's debug server instead of gunicorn.")
def serve(host: str, port: int, workers: int, threads: int, dev: bool) -> None:
    """Run the service (gunicorn, threaded workers, app preloaded)."""
    from .app import create_app
    from .config import ConfigError
    from .knowledge import KnowledgeError

    try:
        app = create_app(bind=f"{host}:{port}")  # the accepted JWT aud without HER2CDS_PUBLIC_URL
    except (ConfigError, KnowledgeError) as exc:
        click.echo(f"her2-cds: cannot start: {exc}", err=True)
        sys.exit(2)
    if dev:
        # No interactive debugger: it would expose a Python console over HTTP.
        app.run(host=host, port=port, debug=True, use_debugger=False, use_reloader=False)
        return

    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "preload_app": True,
                "timeout": 30,
                "accesslog": None,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    # Each worker opens its own database connections after fork.
    app.extensions["her2cds.store"].dispose()
    _tune_gc()
    click.echo(f"her2-cds listening on http://{host}:{port}/cds-services", err=True)
    _Server().run()


def _tune_gc() -> None:
    """Freeze the preloaded app's objects before forking the workers.

    The FHIR models, terminology and rulebook are a few hundred thousand
    long-lived objects; ``gc.freeze`` takes them out of the collector's view,
    so full collections in a worker do not walk them (and do not dirty the
    copy-on-write pages the workers share with the master).
    """
    import gc

    gc.collect()
    gc.freeze()


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
