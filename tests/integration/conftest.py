"""Real servers for the integration tests: sekmet-fhir, the service, a SMART auth server.

sekmet-fhir runs from its own virtualenv (``$HER2CDS_SEKMET_BIN``, default
``.fhir-venv/bin/sekmet``) on a free loopback port, with a temporary data
directory and bearer-token auth on.  If it is not installed these tests
FAIL: CI installs it (tests/run-all.sh), and a silent skip would hide a
broken integration.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from werkzeug.serving import make_server

from cds_service.cli import cli
from cds_service.commands.fixtures_cmd import default_fixtures_dir, find_bundles


def pytest_ignore_collect(collection_path, config):
    """The quick loop (``-m "not integration ..."``) does not even collect this tier.

    Every test here is marked ``integration``, so nothing would run anyway; but
    collecting costs seconds (Schemathesis builds its operation tests while
    collecting), and the inner loop should not pay for tests it deselects.
    """
    if "not integration" in (config.getoption("markexpr") or ""):
        return True
    return None

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
ARTIFACTS = ROOT / "test-artifacts"
SEKMET_TOKEN = "itest-sekmet-token"


def fixture_paths() -> list[Path]:
    """The repository's fixture patients plus this suite's own small Bundles."""
    paths = [DATA]
    fixtures = default_fixtures_dir()
    if fixtures.is_dir() and find_bundles([fixtures]):
        paths.insert(0, fixtures)
    return paths


def fixture_patient_ids() -> list[str]:
    """Every Patient id in the fixture Bundles (collected once, at import)."""
    ids = []
    for _, bundle in find_bundles(fixture_paths()):
        for entry in bundle.get("entry") or []:
            res = entry.get("resource") or {}
            if res.get("resourceType") == "Patient" and res.get("id"):
                ids.append(res["id"])
    return sorted(set(ids))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A WSGI app on a loopback port in a daemon thread (threaded: the browser opens several connections)."""

    def __init__(self, app, port: int = 0):
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Sekmet:
    def __init__(self, base: str, token: str, process: subprocess.Popen, log: Path):
        self.base, self.token, self.process, self.log = base, token, process, log


def _sekmet_bin() -> Path:
    return Path(os.environ.get("HER2CDS_SEKMET_BIN") or ROOT / ".fhir-venv" / "bin" / "sekmet")


def _wait_ready(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sekmet-fhir exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"sekmet-fhir did not answer {url} within {seconds} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory):
    """A fresh sekmet-fhir with bearer auth on a free port; stopped at the end of the session."""
    binary = _sekmet_bin()
    if not binary.exists():
        pytest.fail(f"sekmet-fhir is not installed at {binary}: run `python3 -m venv .fhir-venv && "
                    ".fhir-venv/bin/pip install sekmet-fhir==0.1.1` or set HER2CDS_SEKMET_BIN "
                    "(tests/run-all.sh does both).")
    workdir = tmp_path_factory.mktemp("sekmet")
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    settings = {
        "base_url": base, "host": "127.0.0.1", "port": port, "data_dir": str(workdir / "data"),
        "simulator": {"enabled": False}, "validation": {"inbound": "strict"},
        "server_auth": {"types": ["bearer"], "tokens": [SEKMET_TOKEN]},
    }
    (workdir / "settings.yaml").write_text(json.dumps(settings))  # JSON is YAML
    log = workdir / "sekmet.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(binary), "serve", "-c", str(workdir / "settings.yaml")], cwd=workdir,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(base + "/metadata", process, log)
        yield Sekmet(base, SEKMET_TOKEN, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_cli(*args: str):
    """Run ``her2-cds`` in-process; returns the click Result (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="session")
def loaded(sekmet):
    """sekmet with every fixture patient loaded through `her2-cds fixtures load`."""
    result = run_cli("fixtures", "load", "--fhir-server", sekmet.base, "--token", sekmet.token, "--quiet",
                     *map(str, fixture_paths()))
    assert result.exit_code == 0, result.output + result.stderr
    return sekmet


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """The CDS service over real HTTP (auth off: the JWT path has its own tests).

    The FHIR time budget is relaxed: these tests check *what* the service
    reads and answers on a shared, slow CI machine, not how fast.
    """
    from cds_service import create_app

    db = tmp_path_factory.mktemp("service") / "service.db"
    app = create_app(auth="disabled", database_url=f"sqlite:///{db}", fhir_time_budget=20.0,
                     fhir_connect_timeout=5.0, fhir_read_timeout=15.0,
                     fhir_servers="http://127.0.0.1:*", fhir_allowed_networks="127.0.0.0/8")  # sekmet on loopback
    server = ServerThread(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
