"""Reading and checking JSON bodies against the schemas in ``cds_service/schemas``.

Schemas are files, loaded and compiled once.  Errors come back as ``ApiError``
with a JSON pointer per problem, so a caller sees *what* is wrong and *where*
(``/context/draftOrders/entry/0/resource``) rather than a generic 400.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import jsonschema_rs
import orjson
from flask import Request
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match
from werkzeug.exceptions import RequestEntityTooLarge

from ..core import parse as fp
from ..errors import ApiError, Issue

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
JSON_TYPES = ("application/json", "application/fhir+json")
MAX_REPORTED_ERRORS = 10


_ONE_OF = Draft202012Validator.VALIDATORS["oneOf"]
_NULL_ONLY = {"type": "null"}


def _one_of(validator, one_of, instance, schema):
    """``oneOf`` exactly as jsonschema checks it, minus the cost of messages nobody reads.

    jsonschema builds every failing branch's error message, and a ``type``
    error embeds ``repr(instance)``: for ``oneOf: [{type: null}, resource]``
    that is a repr of a whole prefetch Bundle (megabytes for a large patient)
    on every valid request.  Here the branches are only *counted* (a
    ``{type: null}`` branch by ``instance is None``, which is what the type
    checker does); when exactly one holds there is no error, as in
    jsonschema, and otherwise jsonschema's own ``oneOf`` produces the errors.
    """
    valid = 0
    for sub in one_of:
        ok = instance is None if sub == _NULL_ONLY else validator.evolve(schema=sub).is_valid(instance)
        if ok:
            valid += 1
            if valid > 1:
                break
    if valid != 1:
        yield from _ONE_OF(validator, one_of, instance, schema)


_Validator = validators.extend(Draft202012Validator, {"oneOf": _one_of})


_SCOPE_KEYWORDS = ("$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef")


class _Recursive(Exception):
    pass


def inline_local_refs(schema: dict) -> dict:
    """The schema with every plain ``{"$ref": "#/$defs/x"}`` replaced by the definition itself.

    jsonschema resolves a ``$ref`` on every evaluation (about half the time of
    checking one card).  Inlining gives the same schema, so the same verdicts
    and messages; a schema with recursive definitions, or with ``$id``/
    ``$anchor``/dynamic references below its root, is returned unchanged.
    """
    defs = schema.get("$defs")
    if not isinstance(defs, dict) or _has_scope_keywords(defs):
        return schema

    def walk(node, active: tuple[str, ...]):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
                name = ref[8:]
                if name in active:
                    raise _Recursive(name)
                return walk(defs[name], active + (name,))
            return {k: (v if k == "$defs" else walk(v, active)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, active) for v in node]
        return node

    try:
        return walk(schema, ())
    except _Recursive:
        return schema


def _has_scope_keywords(node) -> bool:
    if isinstance(node, dict):
        return any(k in node for k in _SCOPE_KEYWORDS) or any(_has_scope_keywords(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_scope_keywords(v) for v in node)
    return False


def load_schema(name: str) -> dict:
    """``schemas/<name>.schema.json``, read fresh (callers compile it once and cache that)."""
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    """The compiled validator for ``schemas/<name>.schema.json``."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return _Validator(inline_local_refs(schema))


@lru_cache(maxsize=None)
def fast_validator(name: str):
    """A jsonschema-rs validator for the same schema: the yes/no fast path.

    Checking a valid document is most calls, and jsonschema spends about
    0.3 ms a card and 0.2 ms a request walking the schema in Python;
    jsonschema-rs answers the same yes/no in microseconds.  It only ever
    says "valid": a "no" (or any trouble in the fast validator) sends the
    document through jsonschema, which decides and writes the messages, so
    the two can only differ by the fast path accepting what jsonschema
    rejects.  ``tests/test_validation_fast_path.py`` checks they agree on
    every fixture and on mutated ones.
    """
    return jsonschema_rs.validator_for(load_schema(name))


def fast_is_valid(name: str, instance) -> bool:
    """True only when jsonschema-rs accepts ``instance``; False means "ask jsonschema"."""
    try:
        return fast_validator(name).is_valid(instance)
    except Exception:  # anything the fast validator cannot handle: the slow path decides
        return False


API_SCHEMAS = ("cds-request", "cds-response", "cds-feedback")


def precompile(max_json_depth: int) -> None:
    """Compile the API schemas and the depth check now (at start-up) rather than on the first call."""
    for name in API_SCHEMAS:
        validator(name)
        fast_validator(name)
    if max_json_depth >= 1:
        _depth_validator(max_json_depth)


def pointer(path) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def schema_issues(name: str, instance) -> list[Issue]:
    """Every schema violation as an Issue (most relevant first, capped)."""
    if fast_is_valid(name, instance):
        return []
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: (len(e.path), list(e.path)))
    issues = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        # For oneOf/anyOf, the best sub-error says more than "is not valid under any".
        detail = best_match(err.context) if err.context else err
        message = _message(detail)
        if len(message) > 300:
            message = message[:297] + "..."
        path = list(detail.absolute_path)
        if detail.validator in ("required", "dependentRequired"):
            # Point at the missing member itself, not at its parent object.
            missing = [p for p in _quoted(detail.message)[:1]]
            path += missing
        issues.append(Issue(message, pointer(path), "required" if detail.validator == "required" else "structure"))
    return issues


_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
              float: "number", type(None): "null"}


def _message(error) -> str:
    """jsonschema's message, except where it would quote the offending value.

    A ``type``/``const``/``enum`` message embeds ``repr(value)``; inside a
    prefetch that value is patient data, and an error body (or a log of it)
    must say what is wrong and where without repeating it.
    """
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {expected}, got {_JSON_TYPE.get(type(error.instance), 'another type')}"
    if error.validator == "enum":
        return "must be one of " + ", ".join(repr(v) for v in error.validator_value)
    if error.validator == "const":
        return f"must be {error.validator_value!r}"
    if error.validator == "pattern":
        # A schema may say in words what its pattern allows (``description`` beside it).
        return error.schema.get("description") or f"does not match the pattern {error.validator_value}"
    return error.message


def _quoted(message: str) -> list[str]:
    """The first quoted name in a jsonschema message ("'context' is a required property")."""
    start = message.find("'")
    end = message.find("'", start + 1)
    return [message[start + 1:end]] if start >= 0 and end > start else []


def check(name: str, instance, what: str) -> None:
    issues = schema_issues(name, instance)
    if issues:
        raise ApiError(400, f"{what} does not conform to its schema", issues=issues)


def json_depth_exceeds(value, limit: int) -> bool:
    """Is ``value`` nested deeper than ``limit``?  Deeply nested JSON must not reach recursive code.

    The root sits at depth 1 and every member or item one deeper, scalars
    included.  The limit is written as a JSON Schema (``depth_schema``) and
    checked by jsonschema-rs, five times faster than walking the document in
    Python.  Its "no" is confirmed by the walk, and if it fails for any
    reason the walk decides: jsonschema-rs also says "no" for a value it
    cannot represent (an infinite float), which is not a nesting problem.
    """
    try:
        if _depth_validator(limit).is_valid(value):
            return False
    except Exception:
        pass
    return depth_walk_exceeds(value, limit)


def depth_schema(limit: int) -> dict:
    """A schema that holds exactly for JSON no deeper than ``limit`` (see ``json_depth_exceeds``).

    ``d{k}`` describes a value at depth k: a scalar, or a container whose
    members are ``d{k+1}``; at the limit only scalars and empty containers.
    """
    scalar = {"type": ["string", "number", "boolean", "null"]}
    defs = {f"d{limit}": {"anyOf": [scalar, {"type": "object", "maxProperties": 0},
                                    {"type": "array", "maxItems": 0}]}}
    for k in range(limit - 1, 0, -1):
        deeper = {"$ref": f"#/$defs/d{k + 1}"}
        defs[f"d{k}"] = {"anyOf": [scalar, {"type": "object", "additionalProperties": deeper},
                                   {"type": "array", "items": deeper}]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/$defs/d1", "$defs": defs}


@lru_cache(maxsize=8)
def _depth_validator(limit: int):
    if limit < 1:
        raise ValueError("no JSON value is shallower than depth 1")  # the walk answers
    return jsonschema_rs.validator_for(depth_schema(limit))


def depth_walk_exceeds(value, limit: int) -> bool:
    """Iterative depth check in Python: the reference for ``json_depth_exceeds``.

    The root sits at depth 1 and every member or item one deeper, scalars
    included.  Only containers are pushed: a container at the limit with
    any member is already too deep, so scalars never need a stack entry.
    """
    if not isinstance(value, (dict, list)):
        return limit < 1
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        if depth == limit:
            if children:
                return True
            continue
        depth += 1
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth))
    return False


def read_body(request: Request) -> bytes:
    """The request body, or 413 when it is larger than ``MAX_CONTENT_LENGTH``.

    Werkzeug refuses an over-limit ``Content-Length`` up front, but a chunked
    body (no ``Content-Length``) it reads up to the limit and hands over cut
    there, which then failed as "invalid JSON".  So when exactly the limit was
    read, one more byte is asked of the server's own stream: if there is
    one, the body was larger than allowed.
    """
    raw = request.get_data(cache=True)  # raises 413 for a Content-Length above the limit
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        try:
            more = request.input_stream.read(1)
        except (OSError, ValueError):  # the client went away: what arrived is all there is
            more = b""
        if more:
            raise RequestEntityTooLarge()
    return raw


def read_json(request: Request, max_depth: int):
    """Parse the request body as JSON or raise a 4xx saying why.

    415 for a non-JSON media type, 413 (via Werkzeug) above the size limit,
    400 for unparsable or too deeply nested JSON, for a number no float can
    hold (``1e999``), and for an unpaired UTF-16 surrogate escape (not text
    in any encoding, so it could not be stored or compared).
    """
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES:
        raise ApiError(
            415,
            f"Content-Type must be application/json, not {request.content_type or 'missing'!r}",
            "header:Content-Type",
            "not-supported",
        )
    raw = read_body(request)
    if not raw.strip():
        raise ApiError(400, "Request body is empty; a JSON object is required", "body", "required")
    body = _fast_loads(raw)
    if body is not None:
        if json_depth_exceeds(body, max_depth):
            raise ApiError(400, f"JSON nesting deeper than {max_depth} levels", "body", "too-costly")
        if not isinstance(body, dict):
            raise ApiError(400, f"Request body must be a JSON object, not {type(body).__name__}", "/", "structure")
        return body
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"Request body is not UTF-8 (byte {exc.start})", "body", "invalid") from None
    try:
        body = fp.strict_json_loads(text)
    except RecursionError:
        raise ApiError(400, f"JSON nesting deeper than {max_depth} levels", "body", "too-costly") from None
    except fp.NumberOutOfRange as exc:
        raise ApiError(400, f"Request body has {exc}", "body", "value") from None
    except ValueError as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}", "body", "invalid") from None
    if json_depth_exceeds(body, max_depth):
        raise ApiError(400, f"JSON nesting deeper than {max_depth} levels", "body", "too-costly")
    if "\\" in text and _SURROGATE_ESCAPE.search(text):
        where = lone_surrogate_path(body)
        if where is not None:
            raise ApiError(400, "Request body has an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF), "
                           "which is not a character", pointer(where), "value")
    if not isinstance(body, dict):
        raise ApiError(400, f"Request body must be a JSON object, not {type(body).__name__}", "/", "structure")
    return body


# Every byte that is not an ASCII digit becomes a space, every digit a "0": a run of 20 zeros
# in the result is a number literal of 19 or more digits somewhere (or digits inside a string).
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_NUMBER = b"0" * 19


def _fast_loads(raw: bytes):
    """The body parsed by orjson when that gives exactly what the ``json`` path below would; else None.

    orjson reads a 42 KB request in less than half the time of ``json.loads``
    (0.10 vs 0.23 ms; 800 KB: about 4 vs 10 ms) and already refuses what this
    service refuses — NaN and Infinity, numbers beyond a double (``1e999``),
    unpaired surrogate escapes, invalid UTF-8, a byte-order mark.  It differs
    in one thing the ``json`` module keeps exact: an integer literal beyond
    64 bits becomes a float (below -2**63 already at 19 digits).  So a body
    with any run of 19 or more digits, and any body orjson refuses, goes the
    ``json`` way, which words every error as before; only a body both would
    read alike is taken from here (``tests/test_fast_json.py``).
    """
    if _LONG_NUMBER in raw.translate(_DIGITS):
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# A \uD800-\uDFFF escape in the raw text: only then can the parsed body hold a lone surrogate
# (a pair becomes one character).  Looked for only in a body with a backslash at all (a
# memchr), and walked only when one is there.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def lone_surrogate_path(value) -> list | None:
    """The path (keys and indexes) of the first string or member name holding a lone surrogate."""
    stack = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                return path
        elif isinstance(node, dict):
            for k, v in node.items():
                if _LONE_SURROGATE.search(k):
                    return path + [k]
                stack.append((v, path + [k]))
        elif isinstance(node, list):
            stack.extend((v, path + [i]) for i, v in enumerate(node))
    return None
