"""her2-cds: a CDS Hooks 2.0 service for HER2-positive metastatic breast cancer."""

from .app import create_app

__all__ = ["create_app"]
__version__ = "0.1.0"
