"""Placeholder: CDS client JWT authentication arrives with issue 5."""

import logging

log = logging.getLogger("her2cds.auth")


def init_auth(app):
    settings = app.config["SETTINGS"]
    if not settings.auth_enabled:
        log.warning("AUTHENTICATION DISABLED (HER2CDS_AUTH=disabled): any caller can invoke this service. "
                    "Use only on a workstation with synthetic data.")


def auth_notice(settings) -> str:
    if settings.auth_enabled:
        return ("Every call, discovery included, must carry a CDS Hooks client JWT "
                "(Authorization: Bearer <JWT>, ES384 or RS384) from a trusted issuer.")
    return ("WARNING: authentication is DISABLED on this instance (HER2CDS_AUTH=disabled); "
            "for local testing with synthetic data only.")
