"""Drive the real SMART App Launcher and the real CDS Hooks sandbox against this service (see run.sh).

Started here, all on 127.0.0.1 free ports, stopped at the end:

* sekmet-fhir as an **open** FHIR endpoint (the sandbox uses only open ones), loaded with the fixtures;
* the launcher's backend (built UI + auth server + FHIR proxy, ``FHIR_SERVER_R4`` = sekmet);
* this service: JWT auth on, the sandbox issuer trusted with sekmet as its only FHIR server, the
  SMART app allowed to launch against the launcher's ``/v/r4/fhir``;
* the sandbox's static build.

Then headless Chromium: an EHR launch through the launcher into ``/smart/app`` (PKCE, callback,
page, timeline), and the sandbox's patient-view and order-select (Rx View) with its signed JWTs.
Each step saves a screenshot; ``summary.json`` says what passed.  Exit status 1 if a step failed.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlencode

import requests
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
PATIENT = "p01-de-novo-thp"
PRACTITIONER = "real-tools-oncologist"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=3).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


class Stack:
    """Every process and thread started, so that all of them are stopped."""

    def __init__(self, out: Path):
        self.out, self.procs, self.servers = out, [], []

    def spawn(self, name: str, args: list[str], **kw) -> subprocess.Popen:
        log = open(self.out / f"{name}.log", "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **kw)
        self.procs.append(proc)
        return proc

    def serve(self, server) -> None:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_sekmet(stack: Stack, work: Path) -> str:
    binary = os.environ.get("HER2CDS_SEKMET_BIN") or str(ROOT / ".fhir-venv" / "bin" / "sekmet")
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    settings = {"base_url": base, "host": "127.0.0.1", "port": port, "data_dir": str(work / "sekmet-data"),
                "simulator": {"enabled": False}, "validation": {"inbound": "strict"}}
    (work / "sekmet.yaml").write_text(json.dumps(settings))
    proc = stack.spawn("sekmet", [binary, "serve", "-c", str(work / "sekmet.yaml")], cwd=work)
    wait_for(base + "/metadata", 60, proc)
    load = subprocess.run([sys.executable, "-m", "cds_service.cli", "fixtures", "load", "--fhir-server", base,
                           "--quiet", str(ROOT / "fixtures" / "patients")], cwd=ROOT, capture_output=True, text=True)
    if load.returncode:
        raise RuntimeError("loading the fixtures failed: " + load.stdout[-1000:] + load.stderr[-1000:])
    # the EHR user of the launch (the app asks for openid fhirUser): one synthetic practitioner
    requests.put(f"{base}/Practitioner/{PRACTITIONER}", json={
        "resourceType": "Practitioner", "id": PRACTITIONER, "name": [{"family": "Oncologist", "given": ["Test"]}]},
        headers={"Content-Type": "application/fhir+json"}, timeout=30).raise_for_status()
    return base


def start_launcher(stack: Stack, launcher: Path, fhir: str) -> str:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "NODE_ENV": "production",
           "FHIR_SERVER_R4": fhir, "FHIR_SERVER_R3": "", "FHIR_SERVER_R2": "", "SECRET": "real-tools-run",
           "SOURCE_VERSION": "local"}
    proc = stack.spawn("launcher", [str(launcher / "node_modules" / ".bin" / "ts-node"), "--skipProject",
                                    "--transpile-only", "backend/index.ts"], cwd=launcher, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/env.js", 180, proc)
    return url


def start_service(stack: Stack, work: Path, fhir: str, launcher_url: str) -> str:
    """The service with the sandbox issuer trusted (sekmet its only FHIR server) and the launcher allowed."""
    from cds_service import create_app

    entry = json.loads((ROOT / "cds_service" / "issuers" / "trusted-issuers.sandbox.json").read_text())
    entry.pop("$comment", None)
    for issuer in entry.values():
        issuer["fhir_servers"] = [fhir]
        issuer["fhir_networks"] = ["127.0.0.0/8"]
    (work / "trusted-issuers.json").write_text(json.dumps(entry))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(auth="required", trusted_issuers=str(work / "trusted-issuers.json"), public_url=url,
                     database_url=f"sqlite:///{work / 'service.db'}", fhir_allowed_networks="127.0.0.0/8",
                     smart_allowed_issuers=launcher_url + "/v/r4/fhir", cors_origins="*",
                     fhir_time_budget=5.0, fhir_read_timeout=4.0, fhir_connect_timeout=2.0)
    stack.serve(make_server("127.0.0.1", port, app, threaded=True))
    return url


def start_sandbox(stack: Stack, sandbox: Path) -> str:
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sandbox / "build"))
    handler.log_message = lambda *a: None
    stack.serve(http.server.ThreadingHTTPServer(("127.0.0.1", port), handler))
    return f"http://127.0.0.1:{port}"


def launch_code(patient: str) -> str:
    """The launcher's own ``launch`` encoding (src/isomorphic/codec.ts): provider EHR launch, login and
    authorization screens skipped, PKCE auto, public client."""
    arr = [0, patient, PRACTITIONER, "NONE", 1, 1, 0, "", "", "", "", "", "", "", 0, 1, ""]
    return base64.urlsafe_b64encode(json.dumps(arr).encode()).decode().rstrip("=")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--launcher", type=Path, required=True)
    ap.add_argument("--sandbox", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--patient", default=PATIENT)
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    stack = Stack(out)
    results: dict[str, str] = {}
    try:
        fhir = start_sekmet(stack, work)
        launcher = start_launcher(stack, args.launcher.resolve(), fhir)
        service = start_service(stack, work, fhir, launcher)
        sandbox = start_sandbox(stack, args.sandbox.resolve())
        print(f"sekmet {fhir}\nlauncher {launcher}\nservice {service}\nsandbox {sandbox}", flush=True)
        from playwright.sync_api import sync_playwright

        chromium = os.environ.get("HER2CDS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                for name, step in [("ehr-launch", ehr_launch), ("launcher-ui", launcher_ui),
                                   ("sandbox-patient-view", sandbox_patient_view),
                                   ("sandbox-order-select", sandbox_order_select)]:
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    page.set_default_timeout(60_000)
                    try:
                        results[name] = step(page, out, args.patient, fhir=fhir, launcher=launcher,
                                             service=service, sandbox=sandbox) or "ok"
                    except Exception as exc:  # the run goes on: every step is reported
                        results[name] = f"FAILED: {type(exc).__name__}: {exc}".splitlines()[0][:300]
                        traceback.print_exc()
                        page.screenshot(path=str(out / f"{name}-failed.png"), full_page=True)
                    finally:
                        context.close()
            finally:
                browser.close()
    finally:
        stack.stop()
        (out / "summary.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
    return 0 if results and all(v.startswith("ok") for v in results.values()) else 1


def ehr_launch(page, out: Path, patient: str, *, launcher: str, service: str, **_) -> str:
    """What an EHR does: open the app's launch URL with iss and launch; PKCE, callback, the page."""
    iss = launcher + "/v/r4/fhir"
    page.goto(service + "/smart/launch?" + urlencode({"iss": iss, "launch": launch_code(patient)}))
    # the launcher's simulated login / authorization screens, when it shows them
    deadline = time.monotonic() + 120
    while not page.url.startswith(service + "/smart/app"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no app page; stuck at {page.url[:120]}")
        for label in ("Continue Without User", "Login", "Authorize", "Approve", "Allow"):
            button = page.get_by_role("button", name=label)
            if button.count() and button.first.is_visible():
                page.screenshot(path=str(out / f"launcher-{label.lower().replace(' ', '-')}.png"))
                button.first.click()
                break
        page.wait_for_timeout(500)
    page.wait_for_load_state("load")
    page.screenshot(path=str(out / "smart-app-via-launcher.png"), full_page=True)
    status = page.inner_text("#sum-her2 .status").strip()
    if status != "positive":
        raise AssertionError(f"HER2 status on the page is {status!r}: the coded searches came back empty?")
    if page.locator("#data-notice").count():
        raise AssertionError("the page says data could not be read: " + page.inner_text("#data-notice")[:200])
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=str(out / "smart-app-via-launcher-420.png"), full_page=True)
    return f"ok: HER2 {status}, {page.locator('#recommendations .card').count()} card(s)"


def launcher_ui(page, out: Path, patient: str, *, launcher: str, service: str, **_) -> str:
    """The launcher's own UI (the built React app) with our launch URL filled in."""
    page.goto(launcher + "/?" + urlencode({"launch_uri": service + "/smart/launch", "patient": patient}))
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "launcher-ui.png"), full_page=True)
    return "ok"


def sandbox_patient_view(page, out: Path, patient: str, *, fhir: str, service: str, sandbox: str, **_) -> str:
    page.goto(sandbox + "/?" + urlencode({"fhirServiceUrl": fhir, "patientId": patient,
                                          "serviceDiscoveryURL": service + "/cds-services"}))
    page.wait_for_selector("text=/HER2|her2/i", timeout=120_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(out / "sandbox-patient-view.png"), full_page=True)
    return "ok"


def sandbox_order_select(page, out: Path, patient: str, *, fhir: str, service: str, sandbox: str, **_) -> str:
    """Rx View: pick the first condition the sandbox lists (its code.text), then a medication it knows."""
    page.goto(sandbox + "/?" + urlencode({"fhirServiceUrl": fhir, "patientId": patient,
                                          "serviceDiscoveryURL": service + "/cds-services"}))
    page.wait_for_load_state("networkidle")
    page.get_by_text("Rx View", exact=True).first.click()
    page.locator("form input").first.click()  # "Treating": a react-select of the patient's Conditions
    options = page.locator("[id*='-option-']")
    options.first.wait_for(timeout=30_000)
    treating = [t.strip() for t in options.all_inner_texts()]
    options.first.click()
    page.fill("input[name=medication-input]", "Naproxen")
    choice = page.get_by_role("button", name="Naproxen", exact=False).first
    choice.wait_for(timeout=30_000)
    choice.click()
    page.wait_for_timeout(5000)
    page.screenshot(path=str(out / "sandbox-order-select.png"), full_page=True)
    if not all(treating):
        raise AssertionError(f"the sandbox's Treating list has blank entries: {treating}")
    return f"ok: Treating lists {treating[:3]}"


if __name__ == "__main__":
    sys.exit(main())
