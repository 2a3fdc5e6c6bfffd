"""Settings read once from ``HER2CDS_*`` environment variables.

Every knob the service has lives here, with its default, so that the README's
configuration table and the code cannot drift apart: ``SETTINGS_DOC`` is what
the README table is generated from (``her2-cds config``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The source checkout, for development-only commands (``her2-cds fixtures``);
#: never used for anything the service needs at run time.
REPO_DIR = PACKAGE_DIR.parent


def _embedded_profiles() -> Path:
    """The embedded knowledge: the top-level ``fhir_profiles/`` folder, shipped as ``cds_service.fhir_profiles``.

    Wheels carry it as that data package (editable installs map the name onto
    the checkout's folder); installed wheels are always unpacked, so the
    resource is a real directory.  An editable install made before the folder
    became package data lacks the mapping: it still runs from the checkout
    until ``pip install -e .`` is repeated.
    """
    try:
        return Path(str(files("cds_service.fhir_profiles")))
    except ModuleNotFoundError:
        return REPO_DIR / "fhir_profiles"


DEFAULT_PROFILES_DIR = _embedded_profiles()
#: Where the service writes (SQLite database and its lock file, development
#: keys): ``./var`` under the working directory the service is started from,
#: as the README's commands expect; never inside the installed package.
DEFAULT_DATA_DIR = Path("var")


class ConfigError(ValueError):
    """A setting has a value the service cannot use; raised at start-up."""


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    data_dir: Path = DEFAULT_DATA_DIR
    profiles_dir: Path = DEFAULT_PROFILES_DIR
    max_body_bytes: int = 2_000_000
    max_json_depth: int = 64
    # An EHR FHIR server answering each search in 600 ms must still yield cards, with the
    # whole call well under Da Vinci CRD's 5 s (docs/performance.md): queries run in
    # parallel, so the budget is one slow round trip plus one page, not their sum.
    fhir_connect_timeout: float = 1.0
    fhir_read_timeout: float = 1.5
    fhir_time_budget: float = 2.5
    fhir_max_pages: int = 5
    order_sign_cards: str = "order-warnings"
    order_sign_repeat_window_hours: float = 12.0
    readyz_probe_cache_seconds: float = 1.0
    fhir_max_workers: int = 32
    auth: str = "required"
    trusted_issuers: str = ""
    public_url: str = ""
    accepted_audiences: str = ""
    bind: str = ""
    fhir_servers: str = ""
    fhir_allowed_networks: str = ""
    jwt_leeway: int = 30
    jwt_max_age: int = 600
    smart_client_id: str = "her2-cds"
    smart_scopes: str = (
        "launch openid fhirUser patient/Patient.read patient/Observation.read "
        "patient/Condition.read patient/Procedure.read patient/MedicationStatement.read "
        "patient/MedicationRequest.read patient/MedicationAdministration.read"
    )
    smart_redirect_url: str = ""
    smart_allowed_issuers: str = ""
    smart_dev_loopback: bool = False
    smart_http_deadline: float = 10.0
    smart_fetch_budget: float = 20.0
    smart_max_concurrent: int = 2
    smart_config_ttl: float = 300.0
    smart_frame_ancestors: str = "'none'"
    feedback_per_minute: int = 600
    secret_key: str = ""
    log_level: str = "INFO"
    cors_origins: str = "*"
    metrics: str = "disabled"
    metrics_token: str = ""

    def resolved_data_dir(self) -> Path:
        """The data directory as an absolute path, created (owner-only) on first use."""
        folder = self.data_dir.expanduser().resolve()
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"HER2CDS_DATA_DIR: cannot create {folder}: {exc.strerror}") from None
        return folder

    def resolved_database_url(self) -> str:
        """The database URL; by default an SQLite file in the data directory (its lock file beside it)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'her2cds.db'}"

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics == "enabled"

    @property
    def auth_enabled(self) -> bool:
        return self.auth != "disabled"

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


# name -> (description, default shown in the README)
SETTINGS_DOC: dict[str, str] = {
    "database_url": "SQLAlchemy URL for feedback, issued cards, audit, the JWT replay cache and encrypted SMART sessions "
    "(default: SQLite file `her2cds.db` in the data directory; e.g. `postgresql+psycopg://user:pw@host/db`)",
    "data_dir": "Folder the service writes to: the default SQLite database and its lock file, the local development "
    "issuer (`dev-keys/`). Relative paths are taken from the working directory",
    "profiles_dir": "Folder with the FHIR ValueSets/ConceptMaps and the rulebook (default: the copy of "
    "`fhir_profiles/` inside the installed package)",
    "max_body_bytes": "Largest request body accepted; larger bodies get 413",
    "max_json_depth": "Deepest JSON nesting accepted; deeper bodies get 400",
    "fhir_connect_timeout": "Seconds to connect to the EHR's FHIR server",
    "fhir_read_timeout": "Seconds to wait for one FHIR response",
    "fhir_time_budget": "Total seconds per request for all FHIR fetching (queries run in parallel; the default "
    "lets a FHIR server at 600 ms per search yield cards well under Da Vinci CRD's 5 s, see docs/performance.md)",
    "order_sign_cards": "`order-warnings` (default): every warning/critical card about the draft orders also at "
    "order-sign; `critical-only`: order-sign shows critical cards only (sites calling both hooks)",
    "order_sign_repeat_window_hours": "A warning returned at order-select to the same client (issuer, tenant, user, encounter, FHIR server)"
    " for the same patient, rule and draft orders within this many hours is not repeated at order-sign; a critical card is, unless it was accepted or overridden with a reason (all workers/instances sharing the database); 0: always repeat",
    "readyz_probe_cache_seconds": "How long one worker reuses the result of `/readyz`'s database write probe: "
    "an anonymous flood of probes then costs at most one test write per worker per interval (0: probe every call)",
    "fhir_max_pages": "How many `next` links one prefetch query may follow",
    "fhir_max_workers": "FHIR query threads per worker process, shared by its request threads (8 queries per call)",
    "auth": "`required` (default): every call needs a CDS client JWT; `disabled`: local use only",
    "trusted_issuers": "JSON file mapping each trusted JWT issuer to its `jwks_url` or inline `jwks`",
    "public_url": "This service's public base URL (the JWT `aud` behind a proxy), e.g. `https://cds.example.org`",
    "accepted_audiences": "Comma list of further base URLs this service is called at (a JWT `aud` is one of them + "
    "the path), e.g. `https://cds.internal.example.org`. The request's `Host` header never counts",
    "bind": "Address `her2-cds serve` listens on (`host:port`, set by `serve`); without `HER2CDS_PUBLIC_URL` "
    "`http://{bind}` (`localhost`/`127.0.0.1` for a loopback or all-interfaces bind) is an accepted `aud` base",
    "fhir_servers": "Comma list of FHIR servers every caller may name in `fhirServer`, besides its issuer's "
    "`fhir_servers` (the only list when `HER2CDS_AUTH=disabled`): exact base URLs (`https://fhir.example.org/r4`) "
    "or origin patterns (`https://*.example.org`, `http://127.0.0.1:*`). Any other server is never contacted",
    "fhir_allowed_networks": "Comma list of CIDR networks a FHIR server may resolve to although not public "
    "(e.g. `10.20.0.0/16`; `127.0.0.0/8` for local tests). Loopback, private, link-local and unspecified "
    "addresses are refused otherwise; cloud-metadata addresses always",
    "jwt_leeway": "Seconds of clock skew tolerated for `exp`/`iat`",
    "jwt_max_age": "Oldest `iat` accepted, in seconds",
    "smart_client_id": "OAuth client id of the SMART app",
    "smart_scopes": "Scopes the SMART app asks for",
    "smart_redirect_url": "Redirect URL registered for the SMART app (default: `{public_url}/smart/callback`)",
    "smart_allowed_issuers": "Comma list of FHIR base URLs the SMART app may be launched against; "
    "empty: no launch at all (/smart/launch must not make the service fetch hosts nobody trusted)",
    "smart_dev_loopback": "Development only: `true` also lets the SMART app launch against FHIR servers on "
    "loopback (`localhost`, 127.0.0.0/8, `[::1]`)",
    "smart_http_deadline": "Longest total seconds one SMART app HTTP exchange may take, body included "
    "(SMART configuration, token request, each FHIR read), however slowly the server answers",
    "smart_fetch_budget": "Total seconds for all FHIR reads of one SMART app page",
    "smart_max_concurrent": "SMART app requests per worker process that may wait on another server at once "
    "(discovery, token exchange, page reads); more get a 503 page at once, so a slow issuer cannot hold the "
    "threads hook calls need",
    "smart_frame_ancestors": "CSP `frame-ancestors` of the SMART app's pages: `'none'` (default; also "
    "`X-Frame-Options: DENY`) or the EHR origins that may show it in a frame, space-separated "
    "(e.g. `https://ehr.example.org`)",
    "smart_config_ttl": "Seconds a worker reuses an issuer's SMART configuration (a failed discovery: 10 s at most)",
    "feedback_per_minute": "Feedback entries one client (JWT issuer + tenant; the address with authentication "
    "disabled) may send per minute to one worker process; more get 429 with `Retry-After`",
    "secret_key": "Flask session key for the SMART app; also encrypts its sessions in the database "
    "(Fernet key = HKDF-SHA256 of it). Random per start if unset, which is enough for one `serve` "
    "(its workers share the preloaded app); set it, identical everywhere, for several instances or "
    "for sessions that survive a restart",
    "log_level": "Python log level",
    "cors_origins": "Allowed CORS origins (`*` or a comma list)",
    "metrics": "`disabled` (default): `/metrics` answers 404; `enabled`: Prometheus metrics at `/metrics` "
    "(all gunicorn workers summed; sample files in `PROMETHEUS_MULTIPROC_DIR`, default `<data dir>/prometheus`)",
    "metrics_token": "If set, `/metrics` requires `Authorization: Bearer <this token>` (otherwise keep "
    "`/metrics` off the public proxy route)",
}

_INT = {"max_body_bytes", "max_json_depth", "fhir_max_pages", "fhir_max_workers", "jwt_leeway", "jwt_max_age",
        "smart_max_concurrent", "feedback_per_minute"}
_FLOAT = {"fhir_connect_timeout", "fhir_read_timeout", "fhir_time_budget", "smart_http_deadline",
          "smart_fetch_budget", "order_sign_repeat_window_hours", "smart_config_ttl",
          "readyz_probe_cache_seconds"}
_BOOL = {"smart_dev_loopback"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(raw)
    return value in _TRUE


def from_env(environ: dict | None = None, **overrides) -> Settings:
    """Build Settings from ``HER2CDS_<NAME>`` variables, then apply overrides."""
    environ = os.environ if environ is None else environ
    values: dict = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(f"HER2CDS_{f.name.upper()}")
        if raw is None:
            continue
        try:
            if f.name in _INT:
                values[f.name] = int(raw)
            elif f.name in _FLOAT:
                values[f.name] = float(raw)
            elif f.name in _BOOL:
                values[f.name] = _bool(raw)
            elif f.name in ("profiles_dir", "data_dir"):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        except ValueError:
            raise ConfigError(f"HER2CDS_{f.name.upper()}={raw!r} is not a valid {f.type}") from None
    values.update(overrides)
    settings = Settings(**values)
    if settings.auth not in ("required", "disabled"):
        raise ConfigError(f"HER2CDS_AUTH must be 'required' or 'disabled', not {settings.auth!r}")
    if settings.order_sign_cards not in ("order-warnings", "critical-only"):
        raise ConfigError("HER2CDS_ORDER_SIGN_CARDS must be 'order-warnings' or 'critical-only', "
                          f"not {settings.order_sign_cards!r}")
    if not settings.readyz_probe_cache_seconds >= 0:
        raise ConfigError("HER2CDS_READYZ_PROBE_CACHE_SECONDS must be 0 or a positive number of seconds")
    if not settings.order_sign_repeat_window_hours >= 0:
        raise ConfigError("HER2CDS_ORDER_SIGN_REPEAT_WINDOW_HOURS must be 0 or a positive number of hours")
    for name in ("smart_http_deadline", "smart_fetch_budget"):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"HER2CDS_{name.upper()} must be a positive number of seconds")
    if settings.feedback_per_minute < 1:
        raise ConfigError("HER2CDS_FEEDBACK_PER_MINUTE must be 1 or more")
    if settings.smart_max_concurrent < 1:
        raise ConfigError("HER2CDS_SMART_MAX_CONCURRENT must be 1 or more")
    if not settings.smart_config_ttl >= 0:
        raise ConfigError("HER2CDS_SMART_CONFIG_TTL must be 0 or a positive number of seconds")
    if settings.metrics not in ("enabled", "disabled"):
        raise ConfigError(f"HER2CDS_METRICS must be 'enabled' or 'disabled', not {settings.metrics!r}")
    return settings
