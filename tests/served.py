"""Run ``her2-cds serve`` (or gunicorn) as a real process and read what it says.

Shared by tests/test_serve.py (the checkout's venv) and
tests/integration/test_wheel.py (a wheel installed in a fresh venv).  The
server's stderr is the log stream under test, so it goes to a file that the
tests parse line by line; stdout (the first-call hint) goes to another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

START_SECONDS = 90  # a loaded CI machine; the wait ends as soon as the server says it listens


def clean_env(**extra: str) -> dict:
    """The environment without any HER2CDS_* setting of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HER2CDS_")}
    env.update(extra)
    return env


class Served:
    """One server process started in ``cwd``; ``url`` is its base once it logged "listening"."""

    def __init__(self, argv: list[str], cwd: Path, env: dict | None = None):
        self.cwd = Path(cwd)
        self.out_path = self.cwd / "serve.stdout"
        self.err_path = self.cwd / "serve.stderr"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(argv, cwd=cwd, env=env if env is not None else clean_env(),
                                            stdout=out, stderr=err)
        self.url: str | None = None

    # -- reading ------------------------------------------------------------
    def stdout(self) -> str:
        return self.out_path.read_text()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def log_records(self) -> list[dict]:
        """Every stderr line parsed as JSON (a line that is not JSON fails the test here)."""
        records = []
        for number, line in enumerate(self.stderr().splitlines(), 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"stderr line {number} is not JSON: {line!r}") from None
        return records

    # -- life cycle ---------------------------------------------------------
    def wait_listening(self) -> str:
        """The base URL from the "listening on …/cds-services" log line; fails if the process exits first."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            for line in self.stderr().splitlines():
                if '"listening on ' in line:
                    record = json.loads(line)
                    self.url = record["urls"][0].removesuffix("/cds-services")
                    self._wait_answering()
                    return self.url
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.stderr()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"server did not log 'listening' within {START_SECONDS} s:\n{self.stderr()[-3000:]}")

    def _wait_answering(self) -> None:
        """Workers fork after "listening"; wait until one answers the liveness probe."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/healthz", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"no worker answered within {START_SECONDS} s:\n{self.stderr()[-3000:]}")

    def wait_exit(self, seconds: float = 60) -> int:
        return self.process.wait(timeout=seconds)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def first_call_command(served: Served) -> str:
    """The one command the service printed on stdout for a first call."""
    lines = [line.strip() for line in served.stdout().splitlines() if line.strip().startswith("curl ")]
    assert len(lines) == 1, f"expected one first-call command on stdout, got:\n{served.stdout()}"
    return lines[0]


def run_first_call(served: Served) -> dict:
    """Run the printed command in a shell; returns the discovery document it fetched."""
    result = subprocess.run(["bash", "-c", first_call_command(served) + " --silent --fail"],
                            capture_output=True, text=True, timeout=60, cwd=served.cwd)
    assert result.returncode == 0, f"first-call command failed ({result.returncode}): {result.stderr}"
    return json.loads(result.stdout)
