"""CDS client authentication, cut in three (issue 11):

* ``issuers`` — the trusted-issuers file: parsing, validation, JWKS clients,
  and each issuer's FHIR-server policy;
* ``tokens`` — pure JWT verification: header, token, issuer registry,
  accepted audiences, replay store → claims or ``AuthError``;
* ``flask_hook`` — the Flask wiring: which routes need a token, the accepted
  audiences from configuration, the uniform 401, ``g.client``.

``jwt_tokens`` mints tokens for dev keys and tests.
"""

from .flask_hook import WWW_AUTHENTICATE, auth_notice, fhir_egress, init_auth

__all__ = ["WWW_AUTHENTICATE", "auth_notice", "fhir_egress", "init_auth"]
