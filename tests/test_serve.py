"""``her2-cds serve`` as a newcomer and an operator meet it: real processes, real sockets.

* "listening" is said only once the port is bound; a port in use is one
  clear line and exit 1 (not five seconds of retries after announcing success);
* every stderr line is a JSON log record, access lines included, and none
  carries a token, a query string or patient data;
* on loopback with no issuer configured the service still requires a JWT but
  makes and trusts a local development issuer and prints the command for a
  first call; on another address it invents nothing (calls get 401);
* ``gunicorn -c python:cds_service.gunicorn_conf`` works directly, with the
  same one-line port error and no control socket under $HOME.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from served import Served, clean_env, first_call_command, run_first_call

# Real gunicorn processes and sockets: the integration tier, out of the quick inner loop.
pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
HER2CDS = str(BIN / "her2-cds")
GUNICORN = str(BIN / "gunicorn")
REQUEST = Path(__file__).resolve().parent.parent / "fixtures" / "requests" / "p01-de-novo-thp-order-select.json"
SERVE = [HER2CDS, "serve", "--port", "0", "--workers", "1", "--threads", "4"]


def _env(tmp_path: Path, **extra) -> dict:
    """No HER2CDS_* from the caller, and a HOME of our own so we can see nothing is written there."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = clean_env(HOME=str(home), **extra)
    env.pop("XDG_RUNTIME_DIR", None)
    return env


def _token(tmp_path: Path, aud: str) -> str:
    result = subprocess.run([HER2CDS, "dev-keys", "token", "--dir", str(tmp_path / "var" / "dev-keys"), "--aud", aud],
                            capture_output=True, text=True, check=True, cwd=tmp_path, env=_env(tmp_path))
    return result.stdout.strip()


def _taken_port():
    server = socket.create_server(("127.0.0.1", 0))
    return server, server.getsockname()[1]


def test_port_in_use_is_one_clear_line_and_exit_1(tmp_path):
    taken, port = _taken_port()
    with taken:
        result = subprocess.run([HER2CDS, "serve", "--port", str(port)], cwd=tmp_path, env=_env(tmp_path),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"her2-cds: cannot listen on 127.0.0.1:{port}: address already in use"]
    assert "listening" not in result.stdout
    assert not (tmp_path / "var").exists(), "nothing is loaded or written before the port is ours"


def test_gunicorn_with_the_shipped_config_fails_the_same_way(tmp_path):
    taken, port = _taken_port()
    with taken:
        served = Served([GUNICORN, "-c", "python:cds_service.gunicorn_conf", "--bind", f"127.0.0.1:{port}"],
                        tmp_path, _env(tmp_path, HER2CDS_AUTH="disabled", HER2CDS_DATA_DIR=str(tmp_path / "data")))
        assert served.wait_exit() == 1
    records = served.log_records()
    errors = [r for r in records if r["level"] == "ERROR"]
    assert [r["msg"] for r in errors] == [f"cannot listen on 127.0.0.1:{port}: address already in use"]
    assert not any("listening" in r["msg"].lower() for r in records)


def test_first_run_on_loopback_answers_with_a_dev_token_and_logs_only_json(tmp_path):
    served = Served(SERVE, tmp_path, _env(tmp_path))
    try:
        base = served.wait_listening()
        discovery = f"{base}/cds-services"
        assert requests.get(discovery, timeout=10).status_code == 401, "a JWT is still required"
        services = run_first_call(served)["services"]
        assert {s["id"] for s in services} == {"her2-mbc-patient-view", "her2-mbc-order-select", "her2-mbc-order-sign"}

        tokens = [_token(tmp_path, discovery), _token(tmp_path, f"{discovery}/her2-mbc-order-select")]
        seen = requests.get(discovery, headers={"Authorization": f"Bearer {tokens[0]}", "X-Request-Id": "trace-42"},
                            timeout=10)
        assert seen.status_code == 200 and seen.headers["X-Request-Id"] == "trace-42"
        cards = requests.post(f"{discovery}/her2-mbc-order-select", data=REQUEST.read_bytes(), timeout=30,
                              headers={"Authorization": f"Bearer {tokens[1]}", "Content-Type": "application/json"})
        assert cards.status_code == 200, cards.text
        forged = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ1cm46Zm9yZ2VkIn0.c2lnbmF0dXJl"
        assert requests.get(discovery, headers={"Authorization": f"Bearer {forged}"}, timeout=10).status_code == 401
        requests.get(f"{base}/smart/callback?code=SECRET-CODE&state=SECRET-STATE", timeout=10)
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    finally:
        assert served.stop() == 0

    records = served.log_records()  # every line parses, or this fails
    text = served.stderr()
    for secret in [*tokens, forged, "SECRET-CODE", "SECRET-STATE", "P01-De-Novo-Thp"]:
        assert secret not in text
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    traced = [r for r in access if r["request_id"] == "trace-42"]
    assert len(traced) == 1
    assert {k: traced[0][k] for k in ("method", "path", "status")} == {
        "method": "GET", "path": "/cds-services", "status": 200}
    assert isinstance(traced[0]["duration_ms"], float)
    assert any(r["path"] == "/smart/callback" for r in access), "logged, without its query string"
    assert all(r["request_id"] not in ("", "-") for r in access)

    assert first_call_command(served).count("dev-keys token") == 1
    keys = tmp_path / "var" / "dev-keys"
    assert json.loads((keys / "trusted-issuers.json").read_text()).keys() == {"urn:her2-cds:dev"}
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {"var", "serve.stdout", "serve.stderr"}, "writes only to the data directory"
    assert not any((tmp_path / "home").iterdir()), "no control socket or anything else under $HOME"

    jwks = (keys / "jwks.json").read_text()
    again = Served(SERVE, tmp_path, _env(tmp_path))
    try:
        again.wait_listening()
        run_first_call(again)
    finally:
        again.stop()
    assert (keys / "jwks.json").read_text() == jwks, "the second run reuses the development key"


def test_non_loopback_address_invents_no_issuer(tmp_path):
    served = Served([HER2CDS, "serve", "--host", "0.0.0.0", "--port", "0", "--workers", "1"], tmp_path,
                    _env(tmp_path))
    try:
        base = served.wait_listening()
        port = base.rsplit(":", 1)[1]
        assert requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=10).status_code == 401
    finally:
        served.stop()
    records = served.log_records()
    assert any(r["level"] == "ERROR" and "not creating a development issuer" in r["msg"] for r in records)
    assert "curl" not in served.stdout()
    assert not (tmp_path / "var" / "dev-keys").exists()


def test_gunicorn_runs_directly_with_the_shipped_config(tmp_path):
    served = Served([GUNICORN, "-c", "python:cds_service.gunicorn_conf", "--bind", "127.0.0.1:0", "--workers", "1"],
                    tmp_path, _env(tmp_path, HER2CDS_AUTH="disabled", HER2CDS_DATA_DIR=str(tmp_path / "data")))
    try:
        base = served.wait_listening()
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    finally:
        assert served.stop() == 0
    assert served.log_records()
    assert (tmp_path / "data" / "her2cds.db").is_file()
    assert not (tmp_path / "var").exists()
    assert not any((tmp_path / "home").iterdir())


def test_unusable_knowledge_is_one_json_error_and_exit_2(tmp_path):
    served = Served(SERVE, tmp_path, _env(tmp_path, HER2CDS_PROFILES_DIR=str(tmp_path / "nowhere")))
    assert served.wait_exit() == 2
    errors = [r for r in served.log_records() if r["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["msg"].startswith("cannot start: ")
    assert "Traceback" not in served.stderr() and "listening" not in served.stderr()
