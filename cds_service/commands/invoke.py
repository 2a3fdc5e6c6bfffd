"""``her2-cds invoke``: act as the EHR and call a running service.

Why a client in the service's own CLI: to exercise a deployment end to end
the way a CDS client does — read discovery, fill each prefetch template from
the FHIR server (or leave prefetch out so the service must fetch with the
bearer token), sign a CDS Hooks client JWT per call (``aud`` = the exact URL
called) when a key is configured — and to read the cards without a sandbox.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import click
import requests

TIMEOUT = (5.0, 30.0)
MAX_PAGES = 20
DEV_ISSUER = "urn:her2-cds:dev"


class InvokeError(click.ClickException):
    """Something on the way failed; the message says what and where."""


# -- signing -----------------------------------------------------------------------------

class Signer:
    """Mints one JWT per call when a key is configured; otherwise signs nothing."""

    def __init__(self, pem: bytes | None, kid: str | None, iss: str | None, alg: str = "ES384"):
        self.pem, self.kid, self.iss, self.alg = pem, kid, iss, alg

    @property
    def enabled(self) -> bool:
        return self.pem is not None

    def headers(self, url: str) -> dict:
        if not self.enabled:
            return {}
        from ..auth.jwt_tokens import mint_token  # lazy: only needed when signing

        return {"Authorization": "Bearer " + mint_token(self.pem, self.kid, self.iss, url, alg=self.alg)}


def make_signer(key: Path | None, kid: str | None, iss: str | None, dev_keys: Path | None) -> Signer:
    """From --key/--kid/--iss, or from a ``her2-cds dev-keys init`` folder."""
    if dev_keys is not None:
        try:
            pem = (dev_keys / "private.pem").read_bytes()
            kid = kid or json.loads((dev_keys / "jwks.json").read_text())["keys"][0]["kid"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            raise InvokeError(f"no usable key pair in {dev_keys}; run `her2-cds dev-keys init` first") from None
        return Signer(pem, kid, iss or DEV_ISSUER, _alg_of(pem))
    if key is None:
        return Signer(None, None, None)
    if not kid or not iss:
        raise click.UsageError("--key needs --kid and --iss (or the HER2CDS_CLIENT_KID / HER2CDS_CLIENT_ISS variables)")
    try:
        pem = key.read_bytes()
    except OSError as exc:
        raise InvokeError(f"cannot read the key file {key}: {exc.strerror}") from None
    return Signer(pem, kid, iss, _alg_of(pem))


def _alg_of(pem: bytes) -> str:
    """ES384 for EC keys (the CDS Hooks default), RS384 for RSA keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvokeError("the key file is not an unencrypted PEM private key") from None
    return "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384"


# -- talking to the FHIR server ------------------------------------------------------------

def fhir_get(session: requests.Session, base: str, query: str) -> dict:
    """One FHIR read or search; searches are followed through ``next`` links into one Bundle."""
    url = urljoin(base.rstrip("/") + "/", query)
    body = _get_json(session, url, base)
    if body.get("resourceType") != "Bundle":
        return body
    entries = list(body.get("entry") or [])
    pages = 1
    next_url = _next(body)
    while next_url and pages < MAX_PAGES:
        if urlsplit(next_url)[:2] != urlsplit(base)[:2]:
            break  # never send the token to another server
        page = _get_json(session, next_url, base)
        entries.extend(page.get("entry") or [])
        next_url = _next(page)
        pages += 1
    merged = {k: v for k, v in body.items() if k not in ("link", "entry")}
    merged["entry"] = entries
    merged["total"] = len(entries)
    return merged


def _get_json(session: requests.Session, url: str, base: str) -> dict:
    try:
        resp = session.get(url, headers={"Accept": "application/fhir+json"}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise InvokeError(f"cannot reach the FHIR server at {base} ({type(exc).__name__})") from None
    if resp.status_code != 200:
        hint = " (pass --token?)" if resp.status_code == 401 else ""
        raise InvokeError(f"FHIR server answered HTTP {resp.status_code} for {urlsplit(url).path}{hint}")
    try:
        body = resp.json()
    except ValueError:
        raise InvokeError(f"FHIR server sent invalid JSON for {urlsplit(url).path}") from None
    if not isinstance(body, dict):
        raise InvokeError(f"FHIR server sent JSON that is not a resource for {urlsplit(url).path}")
    return body


def _next(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            return link.get("url")
    return None


def fill_prefetch(templates: dict[str, str], context: dict, session: requests.Session, base: str,
                  warn=lambda msg: None) -> dict:
    """What a CDS client sends as ``prefetch``: each template filled and queried.

    A read that fails (say 404) is left out, as the spec allows; the service
    then fetches or reports it.
    """
    from ..protocol.prefetch import render_template

    out = {}
    for key, template in templates.items():
        query = render_template(template, context)
        if query is None:
            warn(f"prefetch '{key}': template needs a value this context lacks; left out")
            continue
        try:
            out[key] = fhir_get(session, base, query)
        except InvokeError as exc:
            if "401" in exc.message:
                raise
            warn(f"prefetch '{key}': {exc.message}; left out")
    return out


# -- the request ----------------------------------------------------------------------------

def read_draft_orders(files: tuple[Path, ...], patient: str) -> list[dict]:
    """Resources from files that hold a resource or a Bundle of them, ordered for ``patient``.

    A draft-order file is a template reused across patients, so its
    ``subject`` is set to the invoked patient, as the EHR would.
    """
    from ..core.parse import entry_resources

    orders = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{f}: {exc}", param_hint="--draft-order") from None
        items = list(entry_resources(data)) if data.get("resourceType") == "Bundle" else [data]
        for res in items:
            if not isinstance(res, dict) or not res.get("resourceType"):
                raise click.BadParameter(f"{f}: not a FHIR resource", param_hint="--draft-order")
            res.setdefault("id", uuid.uuid4().hex[:12])
            res.setdefault("status", "draft")
            res["subject"] = {"reference": f"Patient/{patient}"}
            orders.append(res)
    return orders


def build_context(hook: str, patient: str, user: str, drafts: list[dict]) -> dict:
    context = {"userId": user, "patientId": patient}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in drafts]}
    if hook == "order-select":
        context["selections"] = [f"{r['resourceType']}/{r['id']}" for r in drafts]
    return context


def build_request(service: dict, patient: str, user: str, drafts: list[dict], fhir_server: str,
                  token: str | None, client_id: str, prefetch: dict | None) -> dict:
    body = {"hookInstance": str(uuid.uuid4()), "hook": service["hook"], "fhirServer": fhir_server,
            "context": build_context(service["hook"], patient, user, drafts)}
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": client_id, "patient": patient}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def discover(service_url: str, signer: Signer) -> list[dict]:
    url = service_url.rstrip("/") + "/cds-services"
    try:
        resp = requests.get(url, headers=signer.headers(url), timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise InvokeError(f"cannot reach the CDS service at {service_url} ({type(exc).__name__}); "
                          "is `her2-cds serve` running?") from None
    if resp.status_code != 200:
        raise InvokeError(f"discovery {url} answered HTTP {resp.status_code}{_outcome(resp)}")
    try:
        return list(resp.json()["services"])
    except (ValueError, KeyError, TypeError):
        raise InvokeError(f"{url} is not a CDS Hooks discovery endpoint") from None


def pick_service(services: list[dict], wanted: str) -> dict:
    """By service id, or by hook name when exactly one service offers that hook."""
    by_id = [s for s in services if s.get("id") == wanted]
    if by_id:
        return by_id[0]
    by_hook = [s for s in services if s.get("hook") == wanted]
    if len(by_hook) == 1:
        return by_hook[0]
    names = ", ".join(f"{s.get('hook')} ({s.get('id')})" for s in services)
    raise click.BadParameter(f"'{wanted}' is neither a hook nor a service id of this service; offered: {names}",
                             param_hint="HOOK")


def call_service(service_url: str, service: dict, body: dict, signer: Signer) -> dict:
    url = service_url.rstrip("/") + "/cds-services/" + service["id"]
    try:
        resp = requests.post(url, json=body, headers=signer.headers(url), timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise InvokeError(f"cannot reach the CDS service at {url} ({type(exc).__name__})") from None
    if resp.status_code != 200:
        raise InvokeError(f"{service['id']} answered HTTP {resp.status_code}{_outcome(resp)}")
    try:
        return resp.json()
    except ValueError:
        raise InvokeError(f"{service['id']} answered with invalid JSON") from None


def _outcome(resp: requests.Response) -> str:
    try:
        body = resp.json()
        texts = [i.get("diagnostics") for i in body.get("issue") or [] if isinstance(i, dict)]
        return ": " + "; ".join(t for t in texts if t) if any(texts) else ""
    except (ValueError, AttributeError):
        return ""


# -- printing -----------------------------------------------------------------------------

def format_cards(response: dict) -> str:
    """The cards as text: indicator and summary, source, detail (the 'why'), suggestions, links."""
    cards = response.get("cards") or []
    lines = [f"{len(cards)} card(s)"]
    for card in cards:
        lines.append("")
        lines.append(f"[{str(card.get('indicator', '?')).upper()}] {card.get('summary', '')}")
        source = card.get("source") or {}
        if source:
            lines.append(f"  source: {source.get('label', '')}" + (f" <{source['url']}>" if source.get("url") else ""))
        if card.get("detail"):
            for para in str(card["detail"]).splitlines():
                lines.extend(textwrap.wrap(para, 100, initial_indent="  ", subsequent_indent="  ") or [""])
        for s in card.get("suggestions") or []:
            actions = ", ".join(f"{a.get('type')} {(a.get('resource') or {}).get('resourceType', '') or a.get('resourceId', '')}".strip()
                                for a in s.get("actions") or [])
            lines.append(f"  suggestion: {s.get('label', '')}" + (f" ({actions})" if actions else "")
                         + (" [recommended]" if s.get("isRecommended") else ""))
        for link in card.get("links") or []:
            lines.append(f"  link ({link.get('type')}): {link.get('label', '')} <{link.get('url', '')}>")
    actions = response.get("systemActions") or []
    if actions:
        lines.append("")
        lines.append(f"{len(actions)} system action(s)")
    return "\n".join(lines)


@click.command("invoke")
@click.argument("hook")
@click.option("--patient", required=True, help="Patient id on the FHIR server.")
@click.option("--fhir-server", "fhir_server", required=True, metavar="URL", help="FHIR R4 base URL.")
@click.option("--token", envvar="HER2CDS_FHIR_TOKEN", default=None, metavar="T",
              help="Bearer token for the FHIR server; also sent to the service as fhirAuthorization.")
@click.option("--draft-order", "draft_orders", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file with a draft MedicationRequest (or a Bundle of them); repeatable.")
@click.option("--no-prefetch", is_flag=True, help="Send no prefetch: the service must fetch from the FHIR server.")
@click.option("--service", "service_url", envvar="HER2CDS_SERVICE_URL", default="http://127.0.0.1:8080",
              show_default=True, help="Base URL of the running service (env HER2CDS_SERVICE_URL).")
@click.option("--user", default="Practitioner/her2-cds-cli", show_default=True, help="context.userId.")
@click.option("--client-id", default="her2-cds-cli", show_default=True, help="fhirAuthorization.subject.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="HER2CDS_CLIENT_KEY",
              default=None, help="PEM private key to sign a CDS client JWT with (env HER2CDS_CLIENT_KEY).")
@click.option("--kid", envvar="HER2CDS_CLIENT_KID", default=None, help="JWT key id (env HER2CDS_CLIENT_KID).")
@click.option("--iss", envvar="HER2CDS_CLIENT_ISS", default=None, help="JWT issuer (env HER2CDS_CLIENT_ISS).")
@click.option("--dev-keys", "dev_keys", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sign with the key pair of `her2-cds dev-keys init` in this folder (e.g. var/dev-keys).")
@click.option("--json", "as_json", is_flag=True, help="Print the service's JSON response.")
@click.option("--show-request", is_flag=True, help="Print the request body (token redacted) to stderr.")
def command(hook, patient, fhir_server, token, draft_orders, no_prefetch, service_url, user, client_id,
            key, kid, iss, dev_keys, as_json, show_request) -> None:
    """Call HOOK (a hook name such as patient-view, or a service id) the way an EHR does."""
    if not fhir_server.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--fhir-server")
    signer = make_signer(key, kid, iss, dev_keys)
    service = pick_service(discover(service_url, signer), hook)
    drafts = read_draft_orders(draft_orders, patient)
    if service["hook"] in ("order-select", "order-sign") and not drafts:
        raise click.UsageError(f"{service['hook']} needs at least one --draft-order FILE")

    def warn(msg: str) -> None:
        click.echo(f"her2-cds invoke: {msg}", err=True)

    prefetch = None
    if not no_prefetch:
        session = requests.Session()
        session.trust_env = False
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        context = build_context(service["hook"], patient, user, drafts)
        prefetch = fill_prefetch(service.get("prefetch") or {}, context, session, fhir_server, warn)
    body = build_request(service, patient, user, drafts, fhir_server, token, client_id, prefetch)
    if show_request:
        shown = json.loads(json.dumps(body))
        if "fhirAuthorization" in shown:
            shown["fhirAuthorization"]["access_token"] = "***"
        click.echo(json.dumps(shown, indent=2), err=True)
    response = call_service(service_url, service, body, signer)
    if as_json:
        click.echo(json.dumps(response, indent=2))
    else:
        mode = "no prefetch (service fetched)" if no_prefetch else f"prefetch filled by client ({len(prefetch)} keys)"
        signed = "signed JWT" if signer.enabled else "no JWT"
        click.echo(f"{service['hook']} -> {service['id']} · patient {patient} · {mode} · {signed}", err=True)
        click.echo(format_cards(response))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(command())
