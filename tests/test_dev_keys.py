"""``her2-cds dev-keys``: a newcomer can call a secured service with the files and tokens it makes."""

from __future__ import annotations

import json
import stat

import jwt
from click.testing import CliRunner

from cds_service import create_app
from cds_service.cli import cli
from cds_service.commands.dev_keys import DEV_ISSUER

DISCOVERY = "http://localhost/cds-services"


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_init_writes_keys_and_issuer_file_and_prints_exports(tmp_path):
    folder = tmp_path / "keys"
    result = run("dev-keys", "init", "--dir", str(folder))
    assert result.exit_code == 0, result.output
    issuers_path = folder / "trusted-issuers.json"
    assert f"export HER2CDS_TRUSTED_ISSUERS={issuers_path.resolve()}" in result.output
    assert stat.S_IMODE((folder / "private.pem").stat().st_mode) == 0o600
    jwks = json.loads((folder / "jwks.json").read_text())
    assert jwks["keys"][0]["alg"] == "ES384" and jwks["keys"][0]["crv"] == "P-384"
    issuers = json.loads(issuers_path.read_text())
    assert issuers[DEV_ISSUER]["jwks"] == jwks
    assert "d" not in jwks["keys"][0], "the public files must not hold the private key"


def test_init_refuses_to_overwrite_without_force(tmp_path):
    folder = tmp_path / "keys"
    assert run("dev-keys", "init", "--dir", str(folder)).exit_code == 0
    before = (folder / "private.pem").read_bytes()
    again = run("dev-keys", "init", "--dir", str(folder))
    assert again.exit_code == 1 and "--force" in again.output
    assert (folder / "private.pem").read_bytes() == before
    assert run("dev-keys", "init", "--dir", str(folder), "--force").exit_code == 0
    assert (folder / "private.pem").read_bytes() != before


def test_minted_token_is_accepted_by_a_service_trusting_the_issuer_file(tmp_path):
    folder = tmp_path / "keys"
    run("dev-keys", "init", "--dir", str(folder))
    app = create_app(auth="required", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                     trusted_issuers=str(folder / "trusted-issuers.json"))
    client = app.test_client()
    result = run("dev-keys", "token", "--dir", str(folder), "--aud", DISCOVERY)
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "ES384" and header["typ"] == "JWT"
    assert claims["iss"] == DEV_ISSUER and claims["aud"] == DISCOVERY and claims["exp"] - claims["iat"] == 300
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # single use: the same token again is a replay
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    second = run("dev-keys", "token", "--dir", str(folder), "--aud", DISCOVERY).output.strip()
    assert second != token
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {second}"}).status_code == 200


def test_token_with_tenant_and_ttl(tmp_path):
    folder = tmp_path / "keys"
    run("dev-keys", "init", "--dir", str(folder))
    token = run("dev-keys", "token", "--dir", str(folder), "--aud", DISCOVERY, "--ttl", "60",
                "--tenant", "ward-7").output.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tenant"] == "ward-7" and claims["exp"] - claims["iat"] == 60


def test_token_without_init_explains_what_to_do(tmp_path):
    result = run("dev-keys", "token", "--dir", str(tmp_path / "empty"), "--aud", DISCOVERY)
    assert result.exit_code == 1
    assert "dev-keys init" in result.output


def test_token_requires_aud(tmp_path):
    result = CliRunner().invoke(cli, ["dev-keys", "token", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "--aud" in result.output
