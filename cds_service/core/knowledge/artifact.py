"""Reading one FHIR knowledge artifact (a ValueSet, CodeSystem, ConceptMap or Parameters JSON file).

Why one module: every loader must fail the same way, naming the file and the
JSON path (``<file>: $.compose.include[0].system: required``), so that a typo
in any artifact stops start-up with a message a reviewer can act on.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import KnowledgeError


def fail(path: Path, where: str, message: str) -> KnowledgeError:
    return KnowledgeError(f"{path}: {where}: {message}")


def read_object(path: Path) -> dict:
    """The file's JSON object, or a KnowledgeError naming the file and where it is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise fail(path, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except OSError as exc:
        raise fail(path, "$", f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise fail(path, "$", "must be a JSON object")
    return data


def read_json(path: Path, resource_types: tuple[str, ...]) -> dict:
    """The file's JSON object (``read_object``); its ``resourceType`` must be one of ``resource_types``."""
    data = read_object(path)
    if data.get("resourceType") not in resource_types:
        raise fail(path, "$.resourceType", f"must be {_either(resource_types)}")
    return data


def validate_r4(path: Path, data: dict) -> None:
    """Structural FHIR R4 check so a typo in an artifact is caught at start-up."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(data["resourceType"]).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ()))
        raise fail(path, loc, err.get("msg", "invalid")) from None


def _either(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
