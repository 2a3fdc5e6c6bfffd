"""``her2-cds dev-keys``: call a secured service locally in a minute.

``init`` makes an ES384 key pair and an issuer file trusting it (issuer
``urn:her2-cds:dev``); ``token`` prints a fresh single-use JWT for one URL.
The private key stays in the chosen folder (``var/dev-keys`` by default,
which git ignores); the issuer file holds the public key only.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import click

from ..auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk

DEV_ISSUER = "urn:her2-cds:dev"
DEFAULT_DIR = "var/dev-keys"
PRIVATE_FILE = "private.pem"
JWKS_FILE = "jwks.json"
ISSUERS_FILE = "trusted-issuers.json"

_dir_option = click.option("--dir", "directory", default=DEFAULT_DIR, show_default=True,
                           type=click.Path(file_okay=False), help="Folder for the key pair and issuer file.")


@click.group("dev-keys")
def command() -> None:
    """Local key pair, issuer file and test tokens for a secured service (development only)."""


@command.command("init")
@_dir_option
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def init(directory: str, force: bool) -> None:
    """Make an ES384 key pair and an issuer file trusting it; print the variables to export."""
    folder = Path(directory)
    private_path = folder / PRIVATE_FILE
    if private_path.exists() and not force:
        click.echo(f"her2-cds dev-keys: {private_path} already exists; use --force to replace it.", err=True)
        sys.exit(1)
    folder.mkdir(parents=True, exist_ok=True)
    key = generate_private_key("ES384")
    kid = uuid.uuid4().hex
    jwks = {"keys": [public_jwk(key, kid, "ES384")]}
    _write_private(private_path, private_key_pem(key))
    (folder / JWKS_FILE).write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    issuers = {DEV_ISSUER: {"description": "local development key made by `her2-cds dev-keys init`",
                            "jwks": jwks}}
    (folder / ISSUERS_FILE).write_text(json.dumps(issuers, indent=2) + "\n", encoding="utf-8")
    issuers_path = (folder / ISSUERS_FILE).resolve()
    click.echo(f"Wrote {private_path}, {folder / JWKS_FILE} and {folder / ISSUERS_FILE} (issuer {DEV_ISSUER}).")
    click.echo("Start the service with:")
    click.echo(f"  export HER2CDS_TRUSTED_ISSUERS={issuers_path}")
    click.echo("  her2-cds serve")
    click.echo("Then, for each call (tokens are single-use and name the exact URL):")
    click.echo(f"  TOKEN=$(her2-cds dev-keys token --dir {directory} --aud http://127.0.0.1:8080/cds-services)")
    click.echo('  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/cds-services')


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
def token(directory: str, aud: str, ttl: int, tenant: str | None) -> None:
    """Print a fresh signed token (single use) for the URL given as --aud."""
    folder = Path(directory)
    try:
        pem = (folder / PRIVATE_FILE).read_bytes()
        jwks = json.loads((folder / JWKS_FILE).read_text(encoding="utf-8"))
        kid = jwks["keys"][0]["kid"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        click.echo(f"her2-cds dev-keys: no usable key pair in {folder}; run `her2-cds dev-keys init` first.",
                   err=True)
        sys.exit(1)
    click.echo(mint_token(pem, kid, DEV_ISSUER, aud, alg="ES384", ttl=ttl, tenant=tenant))
