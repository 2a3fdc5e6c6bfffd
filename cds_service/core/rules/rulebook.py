"""The rulebook, one import away: its parts live in modules named for their job.

``model`` (compiled forms), ``conditions`` (the condition language),
``loading`` (files, schema and semantic checks), ``wording`` (values in words,
shared by cards and the SMART page) and ``evaluate`` (fire, then suppress).

Why rules are data: every clinical statement the service makes lives in
``fhir_profiles/rulebook/*.yaml`` next to its evidence, where a clinician can
review it without reading Python, and where ``her2-cds rules check`` and the
start-up check can reject a broken rule *by id and JSON path* before the
service answers anyone.  These modules know the condition language (``conditions``); they
know nothing about HER2.
"""

from __future__ import annotations

from .conditions import COMPARATORS, compile_condition, fact_refs, fact_value
from .evaluate import evaluate, live_rules
from .loading import (
    DETAIL_MAX_LINES, META_FILE, RULEBOOK_DIRNAME, SCHEMA_PATH, build_rulebook, check_rulebook_dir,
    load_rulebook, load_rulebook_document, validate_document,
)
from .model import Condition, Note, Recommendation, Rule, Rulebook, Suggestion
from .wording import PLACEHOLDER, format_value, human_date, human_dates_in, render_text

__all__ = [
    "COMPARATORS", "DETAIL_MAX_LINES", "META_FILE", "PLACEHOLDER", "RULEBOOK_DIRNAME", "SCHEMA_PATH",
    "Condition", "Note", "Recommendation", "Rule", "Rulebook", "Suggestion",
    "build_rulebook", "check_rulebook_dir", "compile_condition", "evaluate", "fact_refs", "fact_value", "live_rules",
    "format_value", "human_date", "human_dates_in", "load_rulebook", "load_rulebook_document", "render_text", "validate_document",
]
