"""Drive the real SMART App Launcher and the real CDS Hooks sandbox against this service (see run.sh).

Started here, all on 127.0.0.1 free ports, stopped at the end:

* sekmet-fhir as an **open** FHIR endpoint (the sandbox uses only open ones), loaded with the fixtures;
* the launcher's backend (built UI + auth server + FHIR proxy, ``FHIR_SERVER_R4`` = sekmet);
* this service: JWT auth on, the sandbox issuer trusted with sekmet as its only FHIR server, the
  SMART app allowed to launch against the launcher's ``/v/r4/fhir``;
* the sandbox's static build.

Then headless Chromium, five steps, each asserting what a user must see (issue 22: a step that
"passes" on an empty page checks nothing):

* ``ehr-launch``: the EHR launch through the launcher into ``/smart/app`` (PKCE, callback); the
  page shows the patient's HER2 status, line of therapy and the patient-view cards (rule ids);
* ``launcher-ui``: the launcher's own form, filled through its query (``launch_url`` and the
  base64url ``launch`` options, src/hooks/useLauncherQuery.ts), shows our launch URL and the
  patient; its Launch button opens the same page;
* ``sandbox-patient-view`` / ``sandbox-order-select``: the sandbox's hooks with its signed JWTs;
  the service answers the fixture table's card rule ids for the patient (and for the drug drafted
  in Rx View) and the sandbox shows each card's summary;
* ``sandbox-card-link``: the sandbox pointed at the launcher's *standalone* FHIR base
  (``/v/r4/sim/<options>/fhir``); a card's "without SMART launch" link (``/smart/open``) opens the
  app through the launcher's authorization and shows the same page.

What the steps expect comes from the repository, not from this file: the card rule ids from
``fixtures/expected_cards.csv``, HER2 status and line from ``her2-cds profile`` of the fixture.
Each step saves screenshots; ``summary.json`` says what passed.  Exit status 1 if a step failed.
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import re
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
from werkzeug.serving import WSGIRequestHandler, make_server

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the service of this checkout, not whichever one the venv has installed
# p24-brain: HER2-positive after first-line THP with new active brain metastases; it has a
# patient-view card (L2) and, with capecitabine alone drafted (a drug the sandbox's Rx View
# knows), an order-select card (L2-CHEMO): rows of fixtures/expected_cards.csv.
PATIENT = "p24-brain"
RX_DRUG = "capecitabine 500 MG Oral Tablet"
RX_ROW = "p24-brain-order-select"
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


class PathOnlyLog(WSGIRequestHandler):
    """The service's access log without query strings: the callback's carries the authorization code."""

    def log_request(self, code="-", size="-"):
        self.log("info", '"%s %s" %s', self.command, self.path.split("?", 1)[0], code)


def start_service(stack: Stack, work: Path, fhir: str, launcher_url: str, standalone_base: str) -> str:
    """The service with the sandbox issuer trusted and the launcher allowed.

    The sandbox may send either FHIR base it is pointed at: sekmet itself (the README set-up) or the
    launcher's standalone base, which proxies to sekmet.  The SMART app may be launched against the
    launcher's EHR base (``/v/r4/fhir``, EHR launch) and its standalone base (``/smart/open``).
    """
    from cds_service import create_app

    entry = json.loads((ROOT / "cds_service" / "issuers" / "trusted-issuers.sandbox.json").read_text())
    entry.pop("$comment", None)
    for issuer in entry.values():
        issuer["fhir_servers"] = [fhir, standalone_base]
        issuer["fhir_networks"] = ["127.0.0.0/8"]
    (work / "trusted-issuers.json").write_text(json.dumps(entry))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(auth="required", trusted_issuers=str(work / "trusted-issuers.json"), public_url=url,
                     database_url=f"sqlite:///{work / 'service.db'}", fhir_allowed_networks="127.0.0.0/8",
                     smart_allowed_issuers=f"{launcher_url}/v/r4/fhir,{standalone_base}", cors_origins="*",
                     fhir_time_budget=5.0, fhir_read_timeout=4.0, fhir_connect_timeout=2.0)
    stack.serve(make_server("127.0.0.1", port, app, threaded=True, request_handler=PathOnlyLog))
    return url


def start_sandbox(stack: Stack, sandbox: Path) -> str:
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sandbox / "build"))
    handler.log_message = lambda *a: None
    stack.serve(http.server.ThreadingHTTPServer(("127.0.0.1", port), handler))
    return f"http://127.0.0.1:{port}"


def _b64(arr: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(arr).encode()).decode().rstrip("=")


def launch_code(patient: str) -> str:
    """The launcher's own ``launch`` encoding (src/isomorphic/codec.ts): provider EHR launch, login and
    authorization screens skipped, PKCE auto, public client."""
    return _b64([0, patient, PRACTITIONER, "NONE", 1, 1, 0, "", "", "", "", "", "", "", 0, 1, ""])


def standalone_base(launcher: str, patient: str) -> str:
    """The launcher's FHIR base for a provider standalone launch of ``patient`` (login and authorization
    screens skipped): what its UI shows as "Server's FHIR Base URL" for that launch type.

    Why: the launcher keeps a standalone launch's options in the base URL itself
    (``/v/r4/sim/<options>/fhir``); a standalone launch at the plain ``/v/r4/fhir`` has none and
    its authorize endpoint answers "Invalid launch options: SyntaxError: Unexpected end of JSON input".
    """
    return f"{launcher}/v/r4/sim/{_b64([2, patient, PRACTITIONER, 'NONE', 1, 1, 0, '', '', '', '', '', '', '', 0, 1, ''])}/fhir"


def expectations(patient: str, rx_row: str) -> dict:
    """What a user must see for ``patient``, from the repository: the fixture table's card rule ids and the
    profile's HER2 status and line (of the committed fixture on its anchor day, which is what the
    loaded fixture, moved to today, says today)."""
    from cds_service.commands.fixtures_cmd import bundle_anchor

    with open(ROOT / "fixtures" / "expected_cards.csv", newline="") as fh:
        rows = {r["request"]: r for r in csv.DictReader(fh)}
    path = ROOT / "fixtures" / "patients" / f"{patient}.json"
    anchor = bundle_anchor(json.loads(path.read_text()))
    run = subprocess.run([sys.executable, "-m", "cds_service.cli", "profile", "--json", "--today",
                          anchor.isoformat(), str(path)], cwd=ROOT, capture_output=True, text=True, check=True)
    facts = json.loads(run.stdout)["facts"]

    def rules(name: str) -> list[str]:
        return sorted(tok.split(":")[0] for tok in rows[name]["expected"].split())

    return {"patient-view": rules(f"{patient}-patient-view"), "order-select": rules(rx_row),
            "her2": str(facts["her2.status"]["value"]), "line": facts["therapy.line"]["value"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--launcher", type=Path, required=True)
    ap.add_argument("--sandbox", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--patient", default=PATIENT)
    ap.add_argument("--rx-drug", default=RX_DRUG, help="the drug to draft in the sandbox's Rx View")
    ap.add_argument("--rx-row", default=RX_ROW, help="the expected_cards.csv row with that draft")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    stack = Stack(out)
    results: dict[str, str] = {}
    try:
        expect = expectations(args.patient, args.rx_row)
        print(f"expected for {args.patient}: {json.dumps(expect)}", flush=True)
        fhir = start_sekmet(stack, work)
        launcher = start_launcher(stack, args.launcher.resolve(), fhir)
        standalone = standalone_base(launcher, args.patient)
        service = start_service(stack, work, fhir, launcher, standalone)
        sandbox = start_sandbox(stack, args.sandbox.resolve())
        print(f"sekmet {fhir}\nlauncher {launcher}\nservice {service}\nsandbox {sandbox}", flush=True)
        from playwright.sync_api import sync_playwright

        chromium = os.environ.get("HER2CDS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                for name, step in [("ehr-launch", ehr_launch), ("launcher-ui", launcher_ui),
                                   ("sandbox-patient-view", sandbox_patient_view),
                                   ("sandbox-order-select", sandbox_order_select),
                                   ("sandbox-card-link", sandbox_card_link)]:
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    page.set_default_timeout(60_000)
                    try:
                        results[name] = step(page, out, args.patient, expect=expect, fhir=fhir, launcher=launcher,
                                             service=service, sandbox=sandbox, standalone=standalone,
                                             rx_drug=args.rx_drug)
                        if not (isinstance(results[name], str) and results[name].startswith("ok")):
                            results[name] = f"FAILED: the step returned {results[name]!r}, not an ok"
                    except Exception as exc:  # the run goes on: every step is reported
                        results[name] = f"FAILED: {type(exc).__name__}: {exc}".splitlines()[0][:400]
                        traceback.print_exc()
                        for i, p in enumerate(context.pages):
                            p.screenshot(path=str(out / f"{name}-failed-{i}.png"), full_page=True)
                    finally:
                        context.close()
            finally:
                browser.close()
    except Exception as exc:
        results["set-up"] = f"FAILED: {type(exc).__name__}: {exc}".splitlines()[0][:400]
        traceback.print_exc()
    finally:
        stack.stop()
        (out / "summary.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
    return 0 if results and all(v.startswith("ok") for v in results.values()) else 1


def follow_to_app(page, out: Path, service: str, prefix: str) -> None:
    """Click through the launcher's simulated login / authorization screens (if shown) until ``/smart/app``."""
    deadline = time.monotonic() + 120
    while not page.url.startswith(service + "/smart/app"):
        if time.monotonic() > deadline:
            body = page.inner_text("body")[:300].replace("\n", " ") if page.url.startswith("http") else ""
            raise TimeoutError(f"no app page; stuck at {page.url[:150]}: {body!r}")
        for label in ("Continue Without User", "Login", "Authorize", "Approve", "Allow"):
            button = page.get_by_role("button", name=label)
            if button.count() and button.first.is_visible():
                page.screenshot(path=str(out / f"{prefix}-launcher-{label.lower().replace(' ', '-')}.png"))
                button.first.click()
                break
        page.wait_for_timeout(500)
    page.wait_for_load_state("load")


def check_app_page(page, out: Path, name: str, patient: str, expect: dict) -> str:
    """The SMART page shows this patient, their HER2 status, their line of therapy and the patient-view cards."""
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    problems = []
    if page.locator("#data-notice").count():
        problems.append("the page says data could not be read: " + page.inner_text("#data-notice")[:200])
    if page.locator("#hint-mismatch").count():
        problems.append("the page says it shows another patient than the one asked for")
    shown = page.inner_text("#patient-id").strip() if page.locator("#patient-id").count() else ""
    if patient not in shown:
        problems.append(f"patient id shown is {shown!r}, not {patient!r}")
    status = page.inner_text("#sum-her2 .status").strip()
    if status.lower() != expect["her2"].lower():
        problems.append(f"HER2 status shown {status!r}, the profile says {expect['her2']!r}")
    line_text = " ".join(page.inner_text("#sum-line").split())
    if not re.search(rf"\bline {expect['line']}\b", line_text, re.IGNORECASE):
        problems.append(f"line of therapy shown {line_text[:160]!r}, the profile says line {expect['line']}")
    rules = sorted(page.eval_on_selector_all("#recommendations [data-rule]", "els => els.map(e => e.dataset.rule)"))
    if rules != expect["patient-view"]:
        problems.append(f"cards on the page {rules}, the fixture table says {expect['patient-view']}")
    if problems:
        raise AssertionError("; ".join(problems))
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=str(out / f"{name}-420.png"), full_page=True)
    return f"ok: patient {patient}, HER2 {status}, {line_text[:70]!r}, cards {rules}"


def ehr_launch(page, out: Path, patient: str, *, launcher: str, service: str, expect: dict, **_) -> str:
    """What an EHR does: open the app's launch URL with iss and launch; PKCE, callback, the page."""
    iss = launcher + "/v/r4/fhir"
    page.goto(service + "/smart/launch?" + urlencode({"iss": iss, "launch": launch_code(patient)}))
    follow_to_app(page, out, service, "ehr-launch")
    return check_app_page(page, out, "smart-app-via-launcher", patient, expect)


def launcher_ui(page, out: Path, patient: str, *, launcher: str, service: str, expect: dict, **_) -> str:
    """The launcher's own UI with our launch URL and the patient filled in, then its Launch button."""
    launch_url = service + "/smart/launch"
    page.goto(launcher + "/?" + urlencode({"launch_url": launch_url, "launch": launch_code(patient)}))
    page.wait_for_selector("#launch-url")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "launcher-ui.png"), full_page=True)
    problems = []
    if page.input_value("#launch-url") != launch_url:
        problems.append(f"App's Launch URL field shows {page.input_value('#launch-url')!r}")
    if page.input_value("#patient") != patient:
        problems.append(f"Patient field shows {page.input_value('#patient')!r}")
    button = page.locator("a#ehr-launch-url")
    if not button.count():
        problems.append("no enabled Launch button (the form has validation errors: "
                        + " ".join(page.locator(".alert").all_inner_texts())[:200] + ")")
    if problems:
        raise AssertionError("; ".join(problems))
    href = button.get_attribute("href") or ""
    if not (href.startswith(launch_url + "?") and "iss=" in href and "launch=" in href):
        raise AssertionError(f"the Launch button opens {href[:150]!r}, not our launch URL with iss and launch")
    with page.context.expect_page() as popup:
        button.click()
    app = popup.value
    app.set_default_timeout(60_000)
    follow_to_app(app, out, service, "launcher-ui")
    return "ok: form filled (launch URL, patient); Launch → " + check_app_page(app, out, "launcher-ui-app", patient,
                                                                            expect)[4:]


class HookCalls:
    """Every hook call the browser makes to the service, with the service's answer."""

    def __init__(self, page, service: str):
        self.calls: list[tuple[str, dict, dict]] = []
        self.prefix = service + "/cds-services/"

        def on_response(resp):
            req = resp.request
            if req.method == "POST" and resp.url.startswith(self.prefix) and "/feedback" not in resp.url:
                try:
                    self.calls.append((resp.url[len(self.prefix):], json.loads(req.post_data or "{}"), resp.json()))
                except Exception:  # an error page, a body the browser dropped: recorded as no cards
                    self.calls.append((resp.url[len(self.prefix):], {}, {"status": resp.status}))

        page.on("response", on_response)

    def last(self, hook: str, contains: str = "") -> tuple[dict, dict] | None:
        for _service, body, answer in reversed(self.calls):
            if body.get("hook") == hook and contains.lower() in json.dumps(body).lower():
                return body, answer
        return None


def _rules(answer: dict) -> list[str]:
    return sorted(c.get("extension", {}).get("org.her2-cds.rule", {}).get("id", "?") for c in answer.get("cards") or [])


def _check_cards_shown(page, answer: dict) -> None:
    text = " ".join(page.inner_text("body").split())
    missing = [c["summary"] for c in answer.get("cards") or [] if " ".join(c["summary"].split()) not in text]
    if missing:
        raise AssertionError(f"the sandbox does not show the card(s) {missing}")


def _wait_for_call(page, calls: HookCalls, hook: str, contains: str = "", seconds: float = 60):
    deadline = time.monotonic() + seconds
    while (found := calls.last(hook, contains)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sandbox made no {hook} call" + (f" naming {contains!r}" if contains else ""))
        page.wait_for_timeout(500)
    page.wait_for_timeout(2000)  # the sandbox renders the answer; a later call may replace it
    return calls.last(hook, contains)


def sandbox_patient_view(page, out: Path, patient: str, *, fhir: str, service: str, sandbox: str, expect: dict,
                         **_) -> str:
    calls = HookCalls(page, service)
    page.goto(sandbox + "/?" + urlencode({"fhirServiceUrl": fhir, "patientId": patient,
                                          "serviceDiscoveryURL": service + "/cds-services"}))
    body, answer = _wait_for_call(page, calls, "patient-view")
    page.screenshot(path=str(out / "sandbox-patient-view.png"), full_page=True)
    if body.get("context", {}).get("patientId") != patient:
        raise AssertionError(f"the sandbox asked about {body.get('context', {}).get('patientId')!r}")
    if _rules(answer) != expect["patient-view"]:
        raise AssertionError(f"the service answered {_rules(answer)}, the fixture table says {expect['patient-view']}")
    _check_cards_shown(page, answer)
    # The README set-up: the sandbox reads sekmet, which is no SMART issuer, so no card may offer the
    # /smart/open fallback (it could only fail); the SMART link the sandbox disables itself.
    fallback = [ln["url"] for c in answer.get("cards") or [] for ln in c.get("links") or [] if ln.get("type") == "absolute"]
    if fallback:
        raise AssertionError(f"a card offers {fallback[0]!r} for a FHIR server the app cannot be launched against")
    return f"ok: cards {_rules(answer)} shown, no fallback link offered"


def sandbox_order_select(page, out: Path, patient: str, *, fhir: str, service: str, sandbox: str, expect: dict,
                         rx_drug: str, **_) -> str:
    """Rx View: pick the first condition the sandbox lists (its code.text), then draft ``rx_drug``."""
    calls = HookCalls(page, service)
    page.goto(sandbox + "/?" + urlencode({"fhirServiceUrl": fhir, "patientId": patient,
                                          "serviceDiscoveryURL": service + "/cds-services"}))
    page.wait_for_load_state("networkidle")
    page.get_by_text("Rx View", exact=True).first.click()
    page.locator("form input").first.click()  # "Treating": a react-select of the patient's Conditions
    options = page.locator("[id*='-option-']")
    options.first.wait_for(timeout=30_000)
    treating = [t.strip() for t in options.all_inner_texts()]
    options.first.click()
    if not all(treating):
        raise AssertionError(f"the sandbox's Treating list has blank entries: {treating}")
    word = rx_drug.split()[0]
    page.fill("input[name=medication-input]", word)
    choice = page.get_by_role("button", name=rx_drug, exact=True).first
    choice.wait_for(timeout=30_000)
    choice.click()
    body, answer = _wait_for_call(page, calls, "order-select", contains=word)
    page.screenshot(path=str(out / "sandbox-order-select.png"), full_page=True)
    if _rules(answer) != expect["order-select"]:
        raise AssertionError(f"with {rx_drug} drafted the service answered {_rules(answer)}, "
                             f"the fixture table says {expect['order-select']}")
    _check_cards_shown(page, answer)
    return f"ok: {rx_drug} drafted, cards {_rules(answer)} shown"


def sandbox_card_link(page, out: Path, patient: str, *, standalone: str, service: str, sandbox: str, expect: dict,
                      **_) -> str:
    """The documented set-up for opening the app from a card: the sandbox reads the launcher's standalone base."""
    calls = HookCalls(page, service)
    page.goto(sandbox + "/?" + urlencode({"fhirServiceUrl": standalone, "patientId": patient,
                                          "serviceDiscoveryURL": service + "/cds-services"}))
    body, answer = _wait_for_call(page, calls, "patient-view")
    if _rules(answer) != expect["patient-view"]:
        raise AssertionError(f"the service answered {_rules(answer)}, the fixture table says {expect['patient-view']}")
    links = [ln for c in answer.get("cards") or [] for ln in c.get("links") or [] if ln.get("type") == "absolute"]
    if not links:
        raise AssertionError("no card offers the app link without SMART launch (is the standalone base allowed?)")
    page.screenshot(path=str(out / "sandbox-card-link.png"), full_page=True)
    button = page.get_by_text(links[0]["label"], exact=True).first
    with page.context.expect_page() as popup:
        button.click()
    app = popup.value
    app.set_default_timeout(60_000)
    follow_to_app(app, out, service, "card-link")
    return f"ok: '{links[0]['label']}' → " + check_app_page(app, out, "smart-app-via-card-link", patient, expect)[4:]


if __name__ == "__main__":
    sys.exit(main())
