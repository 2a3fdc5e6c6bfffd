"""Everything the service knows, loaded once at start-up.

A broken ValueSet, ConceptMap or rule raises ``KnowledgeError`` with the file
and the path inside it, so ``her2-cds serve`` refuses to start rather than
answer with half a rulebook.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import KnowledgeError
from ..rules.loading import load_rulebook
from ..rules.model import Rulebook
from .parameters import CriteriaParameters, load_criteria_parameters
from .services import Services, load_services
from .terminology import Terminology, load_terminology

__all__ = ["Knowledge", "KnowledgeError", "load_knowledge"]


@dataclass(frozen=True)
class Knowledge:
    terminology: Terminology  # codes, value sets, drug classes (fhir_profiles/terminology)
    parameters: CriteriaParameters  # the criteria's thresholds (fhir_profiles/parameters)
    rulebook: Rulebook
    services: Services  # the CDS services and their prefetch (fhir_profiles/services)


# Loading parses and schema-checks every artifact (~0.3 s, most of it YAML).
# A process that builds several apps over the same, unchanged folder (the test
# suite builds hundreds; `serve` builds one) gets the same immutable Knowledge
# back.  The key is the folder plus every file's size and mtime, so an edited
# artifact is re-read (and re-checked) exactly as on a fresh start.
_CACHE: OrderedDict[tuple, Knowledge] = OrderedDict()
_CACHE_SIZE = 4
_cache_lock = threading.Lock()


def _fingerprint(profiles_dir) -> tuple:
    root = Path(profiles_dir).resolve()
    files = []
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                st = path.stat()
                files.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return (str(root), tuple(files))


def load_knowledge(settings) -> Knowledge:
    key = _fingerprint(settings.profiles_dir)
    with _cache_lock:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    terminology = load_terminology(settings.profiles_dir)
    rulebook = load_rulebook(settings.profiles_dir)
    knowledge = Knowledge(terminology=terminology, parameters=load_criteria_parameters(settings.profiles_dir),
                          rulebook=_with_class_words(rulebook, terminology),
                          services=load_services(settings.profiles_dir, terminology))
    with _cache_lock:
        _CACHE[key] = knowledge
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return knowledge


DRUG_CLASS_SYSTEM = "http://her2-cds.example.org/fhir/CodeSystem/drug-class"


def _with_class_words(rulebook: Rulebook, terminology: Terminology) -> Rulebook:
    """Drug-class facts written with the CodeSystem's displays ("Taxane", not "taxane"); one source of words."""
    words = dict(rulebook.value_words)
    for name in rulebook.facts:
        if name.endswith(".classes") and name not in words:
            words[name] = {c: terminology.display(DRUG_CLASS_SYSTEM, c) for c in terminology.codes(DRUG_CLASS_SYSTEM)}
    broader = {c: terminology.broader(DRUG_CLASS_SYSTEM, c) for c in terminology.codes(DRUG_CLASS_SYSTEM)}
    return replace(rulebook, value_words=words, broader={c: b for c, b in broader.items() if b})
