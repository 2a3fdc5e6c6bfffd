"""her2-cds: a CDS Hooks 2.0 service for HER2-positive metastatic breast cancer.

Importing the package imports nothing: the pure core (``cds_service.core``)
must load without Flask or SQLAlchemy, so ``create_app`` is resolved only when
someone asks for it (PEP 562), as ``from cds_service import create_app``.
"""

__all__ = ["create_app"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app
        return create_app
    raise AttributeError(f"module 'cds_service' has no attribute {name!r}")
