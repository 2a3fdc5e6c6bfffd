"""``her2-cds dev-keys``: call a secured service locally in a minute.

``init`` makes an ES384 key pair and an issuer file trusting it (issuer
``urn:her2-cds:dev``); ``token`` prints a fresh single-use JWT for one URL.
The private key stays in the chosen folder (``dev-keys/`` in the data
directory by default, i.e. ``var/dev-keys``, which git ignores); the issuer
file holds the public key only.

``her2-cds serve`` uses the same folder on a first run (``first_run_issuer``):
bound to loopback with authentication required and no issuer configured, it
makes or reuses this key pair and trusts it, so a newcomer's first call can
succeed — still with a JWT.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import sys
import uuid
from pathlib import Path

import click

from ..auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk

DEV_ISSUER = "urn:her2-cds:dev"
DEV_KEYS_DIRNAME = "dev-keys"
PRIVATE_FILE = "private.pem"
JWKS_FILE = "jwks.json"
ISSUERS_FILE = "trusted-issuers.json"


def default_dir() -> Path:
    """``dev-keys/`` in the data directory (``HER2CDS_DATA_DIR``, default ``./var``)."""
    from ..config import from_env

    return from_env().data_dir / DEV_KEYS_DIRNAME


_dir_option = click.option("--dir", "directory", default=None, show_default="$HER2CDS_DATA_DIR/dev-keys",
                           type=click.Path(file_okay=False, path_type=Path),
                           help="Folder for the key pair and issuer file.")


@click.group("dev-keys")
def command() -> None:
    """Local key pair, issuer file and test tokens for a secured service (development only)."""


@command.command("init")
@_dir_option
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def init(directory: Path | None, force: bool) -> None:
    """Make an ES384 key pair and an issuer file trusting it; print the variables to export."""
    folder = directory or default_dir()
    private_path = folder / PRIVATE_FILE
    if private_path.exists() and not force:
        click.echo(f"her2-cds dev-keys: {private_path} already exists; use --force to replace it.", err=True)
        sys.exit(1)
    issuers_path = write_keys(folder)
    click.echo(f"Wrote {private_path}, {folder / JWKS_FILE} and {folder / ISSUERS_FILE} (issuer {DEV_ISSUER}).")
    click.echo("Start the service with:")
    click.echo(f"  export HER2CDS_TRUSTED_ISSUERS={issuers_path}")
    click.echo("  her2-cds serve")
    click.echo("Then, for each call (tokens are single-use and name the exact URL):")
    click.echo(f"  TOKEN=$(her2-cds dev-keys token --dir {folder} --aud http://127.0.0.1:8080/cds-services)")
    click.echo('  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/cds-services')


def write_keys(folder: Path) -> Path:
    """A new key pair and the issuer file trusting it in ``folder``; returns the issuer file (absolute)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_private_key("ES384")
    kid = uuid.uuid4().hex
    jwks = {"keys": [public_jwk(key, kid, "ES384")]}
    _write_private(folder / PRIVATE_FILE, private_key_pem(key))
    (folder / JWKS_FILE).write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    issuers = {DEV_ISSUER: {"description": "local development key made by `her2-cds dev-keys init`",
                            "jwks": jwks}}
    (folder / ISSUERS_FILE).write_text(json.dumps(issuers, indent=2) + "\n", encoding="utf-8")
    return (folder / ISSUERS_FILE).resolve()


def ensure_keys(folder: Path) -> Path:
    """The issuer file of the key pair in ``folder``, made first if there is none (reused otherwise)."""
    if (folder / PRIVATE_FILE).is_file() and (folder / JWKS_FILE).is_file() and (folder / ISSUERS_FILE).is_file():
        return (folder / ISSUERS_FILE).resolve()
    return write_keys(folder)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def first_run_issuer(settings, host: str) -> Path | None:
    """The local development issuer file to trust on a first run, or None.

    Only when authentication is required, no issuer is configured, and the
    service listens on loopback: there nobody but this machine's user can
    call it, so inventing an issuer gives nobody else a way in.  On any
    other address the operator must configure the issuers (calls get 401).
    """
    if not settings.auth_enabled or settings.trusted_issuers or not is_loopback(host):
        return None
    return ensure_keys(settings.resolved_data_dir() / DEV_KEYS_DIRNAME)


def first_call_hint(discovery_url: str) -> str | None:
    """The first-call command when the service trusts the data directory's development issuer, else None."""
    from ..config import from_env

    settings = from_env()
    issuers_file = settings.resolved_data_dir() / DEV_KEYS_DIRNAME / ISSUERS_FILE
    if not settings.auth_enabled or settings.trusted_issuers != str(issuers_file):
        return None
    if settings.public_url:
        discovery_url = settings.public_url.rstrip("/") + "/cds-services"
    return first_call_command(issuers_file, discovery_url)


def first_call_command(issuers_file: Path, discovery_url: str) -> str:
    """The shell command that mints a token with the dev key and calls discovery (printed once at start-up)."""
    exe = Path(sys.executable).with_name("her2-cds")
    her2cds = shlex.quote(str(exe)) if exe.exists() else "her2-cds"
    folder = shlex.quote(str(issuers_file.parent))
    url = shlex.quote(discovery_url)
    return (f'curl -H "Authorization: Bearer $({her2cds} dev-keys token --dir {folder} --aud {url})" {url}')


def _write_private(path: Path, pem: bytes) -> None:
    """Create the private key readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(path, 0o600)


@command.command("token")
@_dir_option
@click.option("--aud", required=True, help="The exact URL the token is for, e.g. http://127.0.0.1:8080/cds-services")
@click.option("--ttl", default=300, show_default=True, type=click.IntRange(1, 3600), help="Lifetime in seconds.")
@click.option("--tenant", default=None, help="Optional tenant claim.")
def token(directory: Path | None, aud: str, ttl: int, tenant: str | None) -> None:
    """Print a fresh signed token (single use) for the URL given as --aud."""
    folder = directory or default_dir()
    try:
        pem = (folder / PRIVATE_FILE).read_bytes()
        jwks = json.loads((folder / JWKS_FILE).read_text(encoding="utf-8"))
        kid = jwks["keys"][0]["kid"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        click.echo(f"her2-cds dev-keys: no usable key pair in {folder}; run `her2-cds dev-keys init` first.",
                   err=True)
        sys.exit(1)
    click.echo(mint_token(pem, kid, DEV_ISSUER, aud, alg="ES384", ttl=ttl, tenant=tenant))
