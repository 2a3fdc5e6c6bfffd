"""The condition language: fact access, comparison, and compiling a YAML condition to a callable.

    {all: [c, ...]}   {any: [c, ...]}   {not: c}   {scope: NAME}
    {fact: NAME, OP: OPERAND}

with OP one of ``eq ne in not_in gt gte lt lte contains contains_any
contains_all exists``.  A fact the profile does not have reads as ``None``;
``None`` never satisfies a comparison (``gt``/``in``/...), so missing data
makes a rule silent rather than confidently wrong.  ``ne`` and ``not`` are
the exceptions by design (``{fact: ild, ne: true}`` is true when ILD is
unknown), so rules that must *know* a value use ``eq``/``in``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .model import Condition

COMPARATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte",
               "contains", "contains_any", "contains_all", "exists")

# --------------------------------------------------------------------------
# Fact access
# --------------------------------------------------------------------------
def fact_value(facts: Mapping[str, Any], name: str) -> Any:
    """Value of a fact; accepts ``Fact`` objects (``.value``) or plain values (unit tests)."""
    item = facts.get(name)
    if item is None:
        return None
    return getattr(item, "value", item)


def fact_refs(facts: Mapping[str, Any], name: str) -> tuple[str, ...]:
    item = facts.get(name)
    return tuple(getattr(item, "refs", ()) or ())


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)
    return [v]


def _eq(a: Any, b: Any) -> bool:
    if isinstance(b, bool) or isinstance(a, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _compare(op: str, value: Any, operand: Any) -> bool:
    if op == "eq":
        return _eq(value, operand)
    if op == "ne":
        return not _eq(value, operand)
    if op == "in":
        return value is not None and any(_eq(value, o) for o in operand)
    if op == "not_in":
        return value is not None and not any(_eq(value, o) for o in operand)
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            return False
        return {"gt": value > operand, "gte": value >= operand,
                "lt": value < operand, "lte": value <= operand}[op]
    if op == "contains":
        return operand in _as_list(value)
    if op == "contains_any":
        return bool(set(_as_list(value)) & set(operand))
    if op == "contains_all":
        return set(operand) <= set(_as_list(value))
    if op == "exists":
        present = value is not None and value != [] and value != ()
        return present == bool(operand)
    raise ValueError(op)  # unreachable: the schema rejects unknown operators


def compile_condition(node: Any, path: str = "", known_facts: Iterable[str] | None = None,
                      scopes: Mapping[str, Condition] | None = None) -> Condition:
    """Compile a condition tree once; raise ``ValueError(path, message)`` on a bad node."""
    known = set(known_facts) if known_facts is not None else None
    return _compile(node, path, known, scopes or {})


def _compile(node: Any, path: str, known: set | None, scopes: Mapping[str, Condition]) -> Condition:
    if not isinstance(node, dict) or not node:
        raise ValueError(path, "a condition must be a non-empty mapping")
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        if len(node) != 1 or not isinstance(node[key], list) or not node[key]:
            raise ValueError(path, f"'{key}' must be the only key and hold a non-empty list")
        parts = [_compile(c, f"{path}/{key}/{i}", known, scopes) for i, c in enumerate(node[key])]
        facts = tuple(dict.fromkeys(f for p in parts for f in p.facts))
        return Condition((_all if key == "all" else _any)(tuple(p.test for p in parts)), facts, node,
                         tuple(parts) if key == "all" else ())
    if "not" in node:
        if len(node) != 1:
            raise ValueError(path, "'not' must be the only key")
        inner = _compile(node["not"], f"{path}/not", known, scopes)
        return Condition(lambda fx, test=inner.test: not test(fx), inner.facts, node)
    if "scope" in node:
        name = node["scope"]
        if len(node) != 1 or name not in scopes:
            raise ValueError(path, f"unknown scope {name!r}")
        return scopes[name]
    if "fact" in node:
        name = node["fact"]
        ops = [k for k in node if k != "fact"]
        if len(ops) != 1 or ops[0] not in COMPARATORS:
            raise ValueError(path, f"a fact test needs exactly one operator of {', '.join(COMPARATORS)}")
        if known is not None and name not in known:
            raise ValueError(f"{path}/fact", f"unknown fact {name!r}")
        op, operand = ops[0], node[ops[0]]
        if op in ("in", "not_in", "contains_any", "contains_all") and not isinstance(operand, list):
            raise ValueError(f"{path}/{op}", f"'{op}' needs a list")
        if op in ("gt", "gte", "lt", "lte") and not _is_number(operand):
            raise ValueError(f"{path}/{op}", f"'{op}' needs a number")
        return Condition(_leaf(name, op, operand), (name,), node)
    raise ValueError(path, "expected one of all/any/not/scope/fact")


# --------------------------------------------------------------------------
# Compiled tests
# --------------------------------------------------------------------------
# An order-select call runs about 200 fact tests over some 60 rules.  Each is compiled to
# one closure made for its operator, with the fact read inlined and the operand prepared
# (bools apart from the other values, sets built once), instead of a generic test that
# dispatched on the operator's name for every test of every call.  ``_compare`` is the
# reference: tests/test_rules_evaluator.py checks both agree on a grid of values and
# operands.

def _all(tests: tuple):
    def test(fx):
        for t in tests:
            if not t(fx):
                return False
        return True
    return test


def _any(tests: tuple):
    def test(fx):
        for t in tests:
            if t(fx):
                return True
        return False
    return test


def _leaf(name: str, op: str, operand: Any):
    """``lambda facts: _compare(op, fact_value(facts, name), operand)``, specialized for ``op``."""

    def value(fx):
        item = fx.get(name)
        return None if item is None else getattr(item, "value", item)

    if op in ("eq", "ne"):
        if isinstance(operand, bool):
            def eq(fx):  # a bool equals only the same bool (``_eq``): identity, bools being singletons
                return value(fx) is operand
        else:
            def eq(fx):
                v = value(fx)
                return not isinstance(v, bool) and v == operand
        return eq if op == "eq" else (lambda fx: not eq(fx))
    if op in ("in", "not_in"):
        bools = tuple(o for o in operand if isinstance(o, bool))
        others = tuple(o for o in operand if not isinstance(o, bool))

        def member(v):  # any(_eq(v, o) for o in operand), for v not None
            if isinstance(v, bool):
                return any(v is o for o in bools)
            return any(v == o for o in others)
        if op == "in":
            def isin(fx):
                v = value(fx)
                return v is not None and member(v)
            return isin

        def notin(fx):
            v = value(fx)
            return v is not None and not member(v)
        return notin
    if op in ("gt", "gte", "lt", "lte"):
        if op == "gt":
            def order(fx):
                v = value(fx)
                return _is_number(v) and v > operand
        elif op == "gte":
            def order(fx):
                v = value(fx)
                return _is_number(v) and v >= operand
        elif op == "lt":
            def order(fx):
                v = value(fx)
                return _is_number(v) and v < operand
        else:
            def order(fx):
                v = value(fx)
                return _is_number(v) and v <= operand
        return order
    if op == "contains":
        def contains(fx):  # operand in _as_list(v), without copying a list or tuple
            v = value(fx)
            if isinstance(v, (list, tuple)):
                return operand in v
            return operand in _as_list(v)
        return contains
    if op == "contains_any":
        wanted = set(operand)

        def contains_any(fx):
            v = value(fx)
            return bool(set(v if isinstance(v, (list, tuple)) else _as_list(v)) & wanted)
        return contains_any
    if op == "contains_all":
        wanted = set(operand)

        def contains_all(fx):
            return wanted <= set(_as_list(value(fx)))
        return contains_all
    if op == "exists":
        expected = bool(operand)

        def exists(fx):
            v = value(fx)
            return (v is not None and v != [] and v != ()) == expected
        return exists
    raise ValueError(op)  # unreachable: compile checked the operator
