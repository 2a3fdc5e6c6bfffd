"""The SMART on FHIR app served by the service itself (``/smart/...``).

Why server-side: no front-end build, and the access token never reaches the
browser.  The flow is SMART App Launch 2.x, authorization code with PKCE
(S256), as a *public* client, and only against FHIR servers the
configuration allows (``HER2CDS_SMART_ALLOWED_ISSUERS``):

1. ``GET /smart/launch?iss=…&launch=…`` (EHR launch) or ``?iss=…`` alone
   (standalone launch, scope ``launch/patient``): read
   ``{iss}/.well-known/smart-configuration``, remember ``state`` → (iss,
   token endpoint, PKCE verifier) server-side, bind ``state`` to this browser
   through the signed cookie session, redirect to the authorize endpoint.
2. ``GET /smart/callback?code=…&state=…``: check ``state``, exchange the code
   with the verifier.  The token response must name a ``patient``.
3. The token is kept server-side, encrypted in the service database; only a
   random session id travels in the (signed) cookie.
4. ``GET /smart/app`` reads the patient with exactly the discovery prefetch
   queries, builds the profile once, runs the same pipeline as the hooks
   (criteria → advice) and renders profile, recommendations, data-quality
   findings and the timeline picture (``GET /smart/timeline.svg``).

The modules, one job each:

- ``oauth``: which FHIR servers, SMART configuration discovery, PKCE, the
  code exchange (decisions pure, exchanges through ``transport``);
- ``transport``: JSON exchanges on the hooks' egress transport (address check
  after DNS, pinned socket, total deadline, byte cap);
- ``sessions``: launches and sessions, Fernet-encrypted in ``storage``'s
  ``smart_session`` table;
- ``fetch``: the FHIR reads for the page (``fhir.client.FhirClient``);
- ``presenter``: resources → profile → cards → the page's view-model (pure);
- ``timeline``: the SVG picture;
- ``cache``: the per-worker page cache (page, then its picture);
- ``views``: the Flask blueprint, thin.
"""

from .views import bp

__all__ = ["bp"]
