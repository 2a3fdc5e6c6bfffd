"""The built distribution is software an integrator can deploy.

Builds the sdist and, from it, the wheel (``python -m build``: the wheel
therefore proves the sdist is complete), installs the wheel into a fresh
virtualenv, and runs the installed ``her2-cds serve`` from an empty temporary
directory outside the checkout: liveness, readiness, discovery with a token
minted by the command the service prints, a hook call (JSON Schemas, rulebook
and terminology all read from the installed package), the SMART app's HTML
template — and afterwards, nothing new inside site-packages.

Needs PyPI (or the pip cache) for the build backend and the dependencies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import requests

from served import Served, clean_env, run_first_call

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REQUEST = ROOT / "fixtures" / "requests" / "p01-de-novo-thp-order-select.json"


def _run(*argv, cwd: Path) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def _site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel built from this checkout's sdist installed in it."""
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    log = _run(sys.executable, "-m", "build", "--outdir", dist, ROOT, cwd=work)
    warnings = [line for line in log.splitlines()
                if "warn" in line.lower() and "byte-compiling is disabled" not in line]
    assert not warnings, "\n".join(warnings)
    assert len(list(dist.glob("*.tar.gz"))) == 1
    wheel = next(dist.glob("her2_cds-*.whl"))
    env = work / "venv"
    venv.create(env, with_pip=True)
    log = _run(env / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=work)
    assert "deprecat" not in log.lower(), log
    return env


def test_installed_wheel_starts_outside_the_checkout_and_serves(installed, tmp_path):
    site = _site_packages(installed)
    before = _files(site)
    assert (site / "cds_service" / "fhir_profiles" / "rulebook" / "rulebook.yaml").is_file()
    assert not (site / "fhir_profiles").exists(), "no generic top-level name in site-packages"

    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(HOME=str(home))
    env.pop("XDG_RUNTIME_DIR", None)
    env.pop("PYTHONPATH", None)
    served = Served([installed / "bin" / "her2-cds", "serve", "--port", "0", "--workers", "1"], tmp_path, env)
    try:
        base = served.wait_listening()
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        services = run_first_call(served)["services"]
        assert len(services) == 3

        aud = f"{base}/cds-services/her2-mbc-order-select"
        token = _run(installed / "bin" / "her2-cds", "dev-keys", "token", "--dir", tmp_path / "var" / "dev-keys",
                     "--aud", aud, cwd=tmp_path).strip()
        cards = requests.post(aud, data=REQUEST.read_bytes(), timeout=30,
                              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert cards.status_code == 200, cards.text
        assert cards.json()["cards"], "the installed rulebook and terminology produce cards"
        page = requests.get(f"{base}/smart/launch", timeout=10)
        assert page.status_code < 500 and "text/html" in page.headers["Content-Type"]
    finally:
        assert served.stop() == 0

    served.log_records()  # one JSON stream from the installed package too
    assert token not in served.stderr()
    assert _files(site) == before, "nothing written into site-packages"
    assert (tmp_path / "var" / "her2cds.db").is_file(), "the database lives in the data directory"
    assert not any(home.iterdir())
    origin = _run(installed / "bin" / "python", "-c", "import cds_service, json; print(json.dumps(cds_service.__file__))",
                  cwd=tmp_path)
    assert json.loads(origin).startswith(str(site)), "the installed package ran, not the checkout"
