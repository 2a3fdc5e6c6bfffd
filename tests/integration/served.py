"""A real ``her2-cds serve`` process on a free loopback port, trusting one inline-JWKS test issuer.

Shared by the tests that must see the service as deployed (gunicorn
workers, real sockets): the Schemathesis run and the multi-worker metrics
test.  Every token is minted with ``auth.jwt_tokens`` like an EHR would:
``aud`` is the URL called and each token has a fresh ``jti``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from cds_service.auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk

ISSUER = "https://ehr.itest.example.org"
KID = "itest-key-1"
ALG = "ES384"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log: Path
    key_pem: bytes
    data_dir: Path

    def token(self, path: str) -> str:
        """A fresh single-use client JWT for a call to ``path``."""
        return mint_token(self.key_pem, KID, ISSUER, self.url + path, alg=ALG, ttl=120)

    def headers(self, path: str) -> dict:
        return {"Authorization": f"Bearer {self.token(path)}"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(workdir: Path, workers: int = 1, env: dict | None = None, seconds: float = 60,
          port: int | None = None, key=None) -> Served:
    """Start the service with its own SQLite database and issuer file; wait until /readyz answers 200.

    ``port`` and ``key`` (a private key) may be chosen beforehand by a caller that mints tokens
    before the server exists (Schemathesis builds some cases at collection time).
    """
    key = key or generate_private_key(ALG)
    issuers = workdir / "trusted-issuers.json"
    issuers.write_text(json.dumps({ISSUER: {"jwks": {"keys": [public_jwk(key, KID, ALG)]}}}))
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    port = port or free_port()
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("HER2CDS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environment.update({
        "HER2CDS_TRUSTED_ISSUERS": str(issuers),
        "HER2CDS_DATA_DIR": str(data_dir),
        "HER2CDS_DATABASE_URL": f"sqlite:///{data_dir / 'her2cds.db'}",
        "HER2CDS_LOG_LEVEL": "WARNING",
        **(env or {}),
    })
    log = workdir / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--threads", "4"],
            cwd=workdir, env=environment, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    served = Served(url, process, log, private_key_pem(key), data_dir)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"her2-cds serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return served
        except requests.RequestException:
            pass
        time.sleep(0.2)
    served.stop()
    raise RuntimeError(f"her2-cds serve did not become ready within {seconds} s:\n{log.read_text()[-3000:]}")
