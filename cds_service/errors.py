"""Errors that reach the caller as JSON, shaped like a FHIR OperationOutcome.

The CDS Hooks 3.0 ballot asks for OperationOutcome error bodies; 2.0 clients
simply read the status code.  Every 4xx the service answers carries one, with
``expression`` saying *where* in the request the problem is.
"""

from __future__ import annotations

from dataclasses import dataclass

from .core.errors import KnowledgeError  # re-exported: the shell answers a knowledge failure with a 503

__all__ = ["ApiError", "Issue", "KnowledgeError", "operation_outcome"]


@dataclass
class Issue:
    diagnostics: str
    location: str | None = None  # a JSON pointer (/context/patientId) or a header name
    code: str = "invalid"
    severity: str = "error"

    def to_json(self) -> dict:
        out = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.location is not None:
            out["expression"] = [self.location or "/"]
        return out


class ApiError(Exception):
    """An error with an HTTP status and one or more issues for the caller."""

    def __init__(self, status: int, message: str, location: str | None = None,
                 code: str = "invalid", issues: list[Issue] | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.issues = issues or [Issue(message, location, code)]
        self.headers = headers or {}

    def to_json(self) -> dict:
        return operation_outcome(self.issues, self.status, self.message)


def operation_outcome(issues: list[Issue], status: int, message: str) -> dict:
    """A FHIR R4 OperationOutcome; the first issue's diagnostics is the headline."""
    if not issues:
        issues = [Issue(message)]
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}
