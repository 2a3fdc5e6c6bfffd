"""A CDS client the test app trusts: its signing key and the issuer file naming it.

Import the fixtures into a test module (``from trusted_client import issuer_file,
signing_key``) and mint tokens with ``mint_token(signing_key[0], KID, ISS, url)``.
"""

from __future__ import annotations

import json

import pytest

from cds_service.auth.jwt_tokens import generate_private_key, private_key_pem, public_jwk

ISS = "urn:test:trusted-client"
KID = "trusted-1"


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, dict]:
    """(private key PEM, public JWK Set) of the trusted client."""
    key = generate_private_key("ES384")
    return private_key_pem(key), {"keys": [public_jwk(key, KID, "ES384")]}


@pytest.fixture
def issuer_file(tmp_path, signing_key) -> str:
    """Path of a trusted-issuers file with the client's inline JWK Set."""
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({ISS: {"jwks": signing_key[1]}}))
    return str(path)
