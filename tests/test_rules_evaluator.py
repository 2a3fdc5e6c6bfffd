"""The condition language and rule evaluation, with hand-made fact dicts."""

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from cds_service.core.knowledge import KnowledgeError
from cds_service.core.rules.rulebook import (
    check_rulebook_dir, compile_condition, evaluate, load_rulebook, load_rulebook_document, validate_document,
)
from cds_service.core.rules.source import read_part

PROFILES = Path(__file__).resolve().parents[1] / "fhir_profiles"


def test_comparators():
    facts = {"a": 5, "s": "positive", "l": ["taxane", "anti-her2"], "n": None, "b": True}
    cases = [
        ({"fact": "a", "gte": 5}, True), ({"fact": "a", "gt": 5}, False), ({"fact": "a", "lt": 6}, True),
        ({"fact": "a", "lte": 4}, False), ({"fact": "s", "eq": "positive"}, True),
        ({"fact": "s", "ne": "positive"}, False), ({"fact": "s", "in": ["low", "positive"]}, True),
        ({"fact": "s", "not_in": ["low"]}, True), ({"fact": "l", "contains": "taxane"}, True),
        ({"fact": "l", "contains_any": ["x", "anti-her2"]}, True), ({"fact": "l", "contains_all": ["taxane", "x"]}, False),
        ({"fact": "n", "exists": False}, True), ({"fact": "l", "exists": True}, True),
        ({"fact": "b", "eq": True}, True), ({"fact": "a", "eq": True}, False),
    ]
    for node, expected in cases:
        assert compile_condition(node)(facts) is expected, node


def test_missing_fact_never_satisfies_a_comparison():
    for node in ({"fact": "x", "gte": 0}, {"fact": "x", "lt": 100}, {"fact": "x", "in": ["a"]},
                 {"fact": "x", "eq": "a"}, {"fact": "x", "contains": "a"}, {"fact": "x", "not_in": ["a"]}):
        assert compile_condition(node)({}) is False, node
    assert compile_condition({"fact": "x", "ne": True})({}) is True


def test_boolean_combinators_and_facts_read():
    cond = compile_condition({"all": [{"fact": "a", "eq": 1},
                                      {"any": [{"fact": "b", "eq": 2}, {"not": {"fact": "c", "eq": 3}}]}]})
    assert cond.facts == ("a", "b", "c")
    assert cond({"a": 1, "b": 0, "c": 0}) is True
    assert cond({"a": 1, "b": 0, "c": 3}) is False
    assert cond({"a": 2, "b": 2}) is False


_VALUES = [None, True, False, 0, 1, 1.0, 2, -1, 5.5, float("nan"), "", "a", "b", [], (), ["a"], ["a", "b"], [1],
           [True], [0, "a"], ("a",), ("b", 1), {"a"}, frozenset({"a", "b"}), {"k": 1}, [["a"]]]
_OPERANDS = {
    "eq": [None, True, False, 0, 1, 1.0, "a", "", ["a"]], "ne": [True, False, 1, "a", None],
    "in": [[], ["a"], ["a", "b"], [1], [True], [0, False], [1.0, "b"], [["a"]], [None]],
    "not_in": [[], ["a"], [1, True], [False], [0]],
    "gt": [0, 1, 1.5, -1], "gte": [0, 1, 5.5], "lt": [0, 2, 1.5], "lte": [1, -1, 5.5],
    "contains": ["a", 1, True, 0, None, ["a"]], "contains_any": [[], ["a"], [1], [True, "x"], [0]],
    "contains_all": [[], ["a"], ["a", "b"], [1, "a"], [True]], "exists": [True, False],
}


def _outcome(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the same failure on both sides is agreement too
        return type(exc)


def test_compiled_fact_tests_agree_with_the_reference_comparison():
    """Each operator is compiled to its own closure (speed); ``_compare`` is the written meaning.
    They must give the same answer (the same bool, or the same exception) for every value,
    read plain or from a ``Fact``, and a missing fact."""
    from cds_service.core.criteria.profile import Fact
    from cds_service.core.rules.conditions import COMPARATORS, _compare

    assert set(_OPERANDS) == set(COMPARATORS)
    checked = 0
    for op, operands in _OPERANDS.items():
        for operand in operands:
            test = compile_condition({"fact": "x", op: operand})
            for value in _VALUES:
                expected = _outcome(lambda: _compare(op, value, operand))
                for facts in ({"x": value}, {"x": Fact(value, ("Observation/o1",))}):
                    got = _outcome(lambda: test(facts))
                    assert got is expected or (type(got) is type(expected) and got == expected), (op, operand, value)
                    checked += 1
            assert _outcome(lambda: test({})) is _outcome(lambda: _compare(op, None, operand)), (op, operand)
    assert checked > 2000


def test_combinators_short_circuit_like_all_and_any():
    """``all`` stops at the first false part and ``any`` at the first true one, as Python's do."""
    seen = []
    cond = compile_condition({"any": [{"fact": "a", "eq": 1}, {"all": [{"fact": "b", "eq": 2}, {"fact": "c", "eq": 3}]}]})

    class Facts(dict):
        def get(self, key, default=None):
            seen.append(key)
            return super().get(key, default)

    assert cond(Facts(a=1)) is True and seen == ["a"]
    seen.clear()
    assert cond(Facts(a=0, b=0)) is False and seen == ["a", "b"]


def test_bad_condition_names_the_path():
    with pytest.raises(ValueError) as exc:
        compile_condition({"all": [{"fact": "a", "eq": 1}, {"fact": "b", "between": [1, 2]}]}, "/rules/0/when")
    assert exc.value.args[0] == "/rules/0/when/all/1"
    with pytest.raises(ValueError) as exc:
        compile_condition({"fact": "nope", "eq": 1}, "/w", known_facts={"a"})
    assert "unknown fact" in exc.value.args[1]


def test_shipped_rulebook_is_valid_and_covers_every_table_rule():
    rulebook, problems = check_rulebook_dir(PROFILES / "rulebook")
    assert problems == []
    ids = {r.id.split("-")[0] for r in rulebook.rules} | {d["id"].split(" ")[0] for d in rulebook.left_out}
    table = [f"D{i}" for i in range(1, 4)] + [f"F{i}" for i in range(1, 10)] + [f"M{i}" for i in range(1, 6)] \
        + [f"L{i}" for i in range(1, 4)] + [f"S{i}" for i in range(1, 10)] + ["P1"]
    assert set(table) <= ids
    for r in rulebook.rules:
        assert r.evidence and len(r.card["summary"]) < 140 and r.override_reasons


def test_the_rulebook_files_read_as_the_pure_python_safe_loader_reads_them():
    """``read_part`` uses libyaml's loader for speed; it must give exactly the documents PyYAML's own
    safe loader gives, for every shipped file (a libyaml difference would change the rules silently)."""
    files = sorted((PROFILES / "rulebook").glob("*.yaml"))
    assert files
    for path in files:
        assert read_part(path) == yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader), path.name


def test_a_yaml_syntax_error_is_a_knowledge_error_naming_the_file(tmp_path):
    bad = tmp_path / "rules-bad.yaml"
    bad.write_text("rules:\n  - id: X1\n    when: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="rules-bad.yaml: not valid YAML"):
        read_part(bad, "rules")


def _doc():
    doc, _ = load_rulebook_document(PROFILES / "rulebook")
    return copy.deepcopy(doc)


def _index(doc, rule_id):
    return next(i for i, r in enumerate(doc["rules"]) if r["id"] == rule_id)


def test_broken_rule_is_rejected_with_id_and_path():
    doc = _doc()
    i = _index(doc, "F2")
    doc["rules"][i]["card"]["indicator"] = "hard-stop"
    problems = validate_document(doc)
    assert any("rule F2" in p and f"/rules/{i}/card/indicator" in p for p in problems), problems


def test_unknown_fact_evidence_and_medication_are_rejected():
    doc = _doc()
    i = _index(doc, "M1")
    doc["rules"][i]["when"]["all"][0] = {"fact": "hr.stauts", "eq": "positive"}
    doc["rules"][i]["evidence"].append("NOPE")
    doc["rules"][i]["suggestions"][0]["actions"][0]["create_medication"] = "ribociclib"
    problems = validate_document(doc)
    assert any("rule M1" in p and f"/rules/{i}/when/all/0/fact" in p and "hr.stauts" in p for p in problems)
    assert any("rule M1" in p and "/evidence/" in p for p in problems)
    assert any("rule M1" in p and "create_medication" in p for p in problems)


def test_long_detail_unknown_flag_and_unlabelled_fact_are_rejected():
    doc = _doc()
    i = _index(doc, "F2")
    doc["rules"][i]["card"]["detail"] = "line\n" * 6
    doc["rules"][i]["enabled_by"] = "no_such_flag"
    doc["facts"]["ecog"] = {"type": "int|null"}
    problems = validate_document(doc)
    assert any("/facts/ecog" in p and "label" in p for p in problems), problems
    del doc["facts"]["ecog"]
    doc["facts"]["ecog"] = {"type": "int|null", "label": "ECOG"}
    problems = validate_document(doc)
    assert any(f"/rules/{i}/card/detail" in p and "5 short lines" in p for p in problems), problems
    assert any(f"/rules/{i}/enabled_by" in p for p in problems), problems


def test_summary_over_139_chars_is_rejected():
    doc = _doc()
    i = _index(doc, "S3")
    doc["rules"][i]["card"]["summary"] = "x" * 140
    assert any(f"/rules/{i}/card/summary" in p for p in validate_document(doc))


def test_load_rulebook_raises_knowledge_error(tmp_path):
    target = tmp_path / "rulebook"
    target.mkdir()
    for f in (PROFILES / "rulebook").glob("*.yaml"):
        (target / f.name).write_text(f.read_text())
    p = target / "rules-safety.yaml"
    p.write_text(p.read_text().replace("indicator: critical", "indicator: severe", 1))
    with pytest.raises(KnowledgeError) as exc:
        load_rulebook(tmp_path)
    assert "S1-C" in str(exc.value) and "/card/indicator" in str(exc.value)


BASE = {
    "breast_cancer": True, "metastatic": True, "her2.status": "positive", "her2.conflict": False,
    "er.conflict": False, "hr.status": "positive", "therapy.line": 1, "therapy.prior_metastatic_anti_her2": False,
    "meds.active.ingredients": [], "meds.active.classes": [], "draft.all.ingredients": [], "draft.all.classes": [],
    "draft.ingredients": [], "draft.classes": [], "ild": False, "ild.on_tdxd": False,
    "lvef.value": 60.0, "lvef.days_ago": 10, "patient.age": 55, "ecog": 0,
}


def _fire(rulebook, hook, **over):
    facts = dict(BASE)
    facts.update({k.replace("__", "."): v for k, v in over.items()})
    return [r.rule.id for r in evaluate(rulebook, facts, hook)]


@pytest.fixture(scope="module")
def rulebook(knowledge):
    return knowledge.rulebook


def test_thp_first_line_and_scope_gate(rulebook):
    thp = {"draft.ingredients": ["docetaxel", "trastuzumab", "pertuzumab"],
           "draft.classes": ["taxane", "chemotherapy", "anti-her2", "anti-her2-antibody"]}
    thp_all = {"draft.all.ingredients": thp["draft.ingredients"], "draft.all.classes": thp["draft.classes"]}
    facts = {**thp, **thp_all}
    # F1 (a confirmation, no decision) is off by default; the rulebook flag turns it on.
    assert _fire(rulebook, "order-select", **{k.replace(".", "__"): v for k, v in facts.items()}) == []
    assert not rulebook.flags["confirmation_cards"]
    with_f1 = dataclasses.replace(rulebook, flags={"confirmation_cards": True})
    assert [r.rule.id for r in evaluate(with_f1, {**BASE, **facts}, "order-select")] == ["F1"]
    # HER2-low patient ordered THP: the safety rule, no regimen card
    fired = _fire(rulebook, "order-select", her2__status="low", **{k.replace(".", "__"): v for k, v in facts.items()})
    assert fired == ["S6"]
    # not metastatic: no F card
    assert "F1" not in _fire(rulebook, "order-select", metastatic=False,
                             **{k.replace(".", "__"): v for k, v in facts.items()})


def test_suppression_frail_replaces_f1(rulebook):
    facts = {"draft.all.ingredients": ["paclitaxel", "trastuzumab", "pertuzumab"],
             "draft.all.classes": ["taxane", "chemotherapy", "anti-her2"],
             "draft.ingredients": ["paclitaxel"], "draft.classes": ["taxane", "chemotherapy"]}
    fired = _fire(rulebook, "order-select", patient__age=79, ecog=2, **{k.replace(".", "__"): v for k, v in facts.items()})
    assert "F5" in fired and "F1" not in fired


def test_hr_negative_never_gets_endocrine_or_cdk46_offers(rulebook):
    facts = {"hr.status": "negative", "taxane.cycles": 6, "taxane.cycles_estimated": False,
             "taxane.course_ended": True, "disease.progression": False,
             "meds.active.ingredients": ["trastuzumab", "pertuzumab"], "meds.active.classes": ["anti-her2"],
             "therapy.prior_metastatic_anti_her2": True}
    recs = evaluate(rulebook, {**BASE, **facts}, "patient-view")
    m1 = [r for r in recs if r.rule.id == "M1"]
    assert len(m1) == 1
    created = {a["create_medication"] for s in m1[0].suggestions for a in s.actions if "create_medication" in a}
    assert created == {"tucatinib"}


def test_maintenance_is_one_card_with_alternatives(rulebook):
    facts = {"taxane.cycles": 6, "taxane.cycles_estimated": False, "taxane.course_ended": True,
             "disease.progression": False, "patient.sex": "female", "patient.menopausal": "post",
             "meds.active.ingredients": ["trastuzumab", "pertuzumab"], "meds.active.classes": ["anti-her2"]}
    recs = evaluate(rulebook, {**BASE, **facts}, "patient-view")
    assert [r.rule.id for r in recs] == ["M1"]
    labels = [s.label for s in recs[0].suggestions]
    assert len(labels) == 3 and recs[0].rule.selection_behavior == "at-most-one"
    assert any("letrozole" in l and "palbociclib" not in l for l in labels)
    assert any("PATINA" in l for l in labels) and any("HER2CLIMB-05" in l for l in labels)



# -- issue 16: thresholds and indicators ---------------------------------------------

TDXD_DRAFT = {"draft.ingredients": ["fam-trastuzumab deruxtecan"], "draft.classes": ["her2-adc", "anti-her2"],
              "draft.all.ingredients": ["fam-trastuzumab deruxtecan"], "draft.all.classes": ["her2-adc", "anti-her2"]}


def _ids(rulebook, hook="order-select", **facts):
    return sorted(r.rule.id for r in evaluate(rulebook, {**BASE, **facts}, hook))


@pytest.mark.parametrize("grade, resolved, expected", [
    (2, True, "S1-C"), (3, False, "S1-C"), (None, True, "S1-C"),  # grade >= 2 or unknown: critical
    (1, False, "S1-C"),                                            # unresolved grade 1: interrupt
    (1, True, "S1-G1"),                                            # resolved grade 1: may resume
])
def test_s1_by_grade(rulebook, grade, resolved, expected):
    fired = _ids(rulebook, **TDXD_DRAFT, **{"ild": True, "ild.on_tdxd": True, "ild.on_tdxd.grade": grade,
                                            "ild.on_tdxd.resolved": resolved})
    assert expected in fired and not ({"S1-C", "S1-G1", "S1-W"} - {expected}) & set(fired)


def test_s4_critical_only_for_agents_ordered_together_warning_at_a_line_switch(rulebook):
    together = {"draft.ingredients": ["fam-trastuzumab deruxtecan", "trastuzumab"],
                "draft.all.ingredients": ["fam-trastuzumab deruxtecan", "trastuzumab"],
                "draft.classes": ["her2-adc", "anti-her2", "anti-her2-antibody"],
                "draft.all.classes": ["her2-adc", "anti-her2", "anti-her2-antibody"]}
    assert "S4" in _ids(rulebook, **together) and "S4-SWITCH" not in _ids(rulebook, **together)
    switch = {**TDXD_DRAFT, "meds.active.ingredients": ["trastuzumab", "pertuzumab"],
              "meds.ordered.ingredients": ["trastuzumab", "pertuzumab"],
              "meds.active.classes": ["anti-her2", "anti-her2-antibody"]}
    fired = _ids(rulebook, **switch)
    assert "S4-SWITCH" in fired and "S4" not in fired
    # current only through clinic administrations: nothing to stop, no switch warning (S4-SWITCH v2)
    given = {**switch, "meds.ordered.ingredients": []}
    assert "S4-SWITCH" not in _ids(rulebook, **given)
    # T-DXd + pertuzumab first line (DESTINY-Breast09) continuing: not a switch
    db09 = {**TDXD_DRAFT, "meds.active.ingredients": ["fam-trastuzumab deruxtecan", "pertuzumab"]}
    assert "S4-SWITCH" not in _ids(rulebook, **db09)


@pytest.mark.parametrize("alt, ast, bili, expected", [
    (3.5, 1.0, 2.2, "S5-C"),   # Hy's law: ALT/AST > 3x with bilirubin > 2x
    (21, 1.0, 1.0, "S5-C"),    # grade 4 ALT
    (1.0, 1.0, 11, "S5-C"),    # grade 4 bilirubin
    (6, 1.0, 1.0, "S5-W"),     # grade 3 ALT
    (1.0, 1.0, 1.8, "S5-W"),   # grade 2 bilirubin
    (3.5, 1.0, 1.4, "S5"),     # ALT 3.5x alone: monitoring only
])
def test_s5_tukysa_thresholds(rulebook, alt, ast, bili, expected):
    facts = {"draft.ingredients": ["tucatinib"], "draft.classes": ["her2-tki", "anti-her2"],
             "liver.alt_x_uln": alt, "liver.ast_x_uln": ast, "liver.bili_x_uln": bili}
    fired = [i for i in _ids(rulebook, **facts) if i.startswith("S5")]
    assert fired == [expected]


@pytest.mark.parametrize("cycles, expected", [(5, None), (6, "F4-INFO"), (7, "F4-INFO"), (8, "F4"), (9, "F4")])
def test_f4_information_at_cycles_7_and_8_warning_from_9(rulebook, cycles, expected):
    facts = {"taxane.cycles": cycles, "taxane.cycles_estimated": False, "disease.progression": False,
             "draft.ingredients": ["docetaxel"], "draft.classes": ["taxane", "chemotherapy"]}
    fired = [i for i in _ids(rulebook, **facts) if i.startswith("F4")]
    assert fired == ([expected] if expected else [])


@pytest.mark.parametrize("days, expected", [(125, []), (126, ["F4-INFO"]), (300, ["F4-INFO"])])
def test_f4_on_an_estimate_is_information_from_126_days_never_a_warning(rulebook, days, expected):
    """Issue 12 / knowledge file: an estimated count (course dates, dosage timing) never gives the F4 warning."""
    facts = {"taxane.cycles": days // 21, "taxane.cycles_estimated": True, "taxane.days": days,
             "taxane.schedule": "3-weekly", "disease.progression": False,
             "draft.ingredients": ["docetaxel"], "draft.classes": ["taxane", "chemotherapy"]}
    assert [i for i in _ids(rulebook, **facts) if i.startswith("F4")] == expected


def test_weekly_paclitaxel_weeks_are_never_cycles_for_f4(rulebook):
    facts = {"taxane.cycles": None, "taxane.weeks": 6, "taxane.days": 35, "taxane.schedule": "weekly",
             "taxane.cycles_estimated": False, "disease.progression": False,
             "draft.ingredients": ["paclitaxel"], "draft.classes": ["taxane", "chemotherapy"]}
    assert [i for i in _ids(rulebook, **facts) if i.startswith("F4")] == []


@pytest.mark.parametrize("schedule, days, weeks, fires", [
    ("3-weekly", 62, None, False), ("3-weekly", 63, None, True), ("weekly", 84, 11, False),
    ("weekly", 84, 12, True), ("unknown", 83, None, False), ("unknown", 84, None, True)])
def test_maintenance_after_an_ended_course_by_schedule(rulebook, schedule, days, weeks, fires):
    facts = {"taxane.cycles": None if schedule != "3-weekly" else days // 21,
             "taxane.cycles_estimated": schedule == "3-weekly", "taxane.course_ended": True,
             "taxane.schedule": schedule, "taxane.days": days, "taxane.weeks": weeks,
             "disease.progression": False, "patient.sex": "female", "patient.menopausal": "post",
             "meds.active.ingredients": ["trastuzumab", "pertuzumab"], "meds.active.classes": ["anti-her2"]}
    recs = evaluate(rulebook, {**BASE, **facts}, "patient-view")
    assert ("M1" in [r.rule.id for r in recs]) is fires


def test_letrozole_alone_only_when_post_menopause_is_established(rulebook):
    base = {"taxane.cycles": 6, "taxane.cycles_estimated": False, "taxane.course_ended": True,
            "disease.progression": False, "meds.active.ingredients": ["trastuzumab", "pertuzumab"],
            "meds.active.classes": ["anti-her2"]}

    def labels(**extra):
        recs = evaluate(rulebook, {**BASE, **base, **extra}, "patient-view")
        return [s.label for r in recs if r.rule.id == "M1" for s in r.suggestions]

    assert any(l.startswith("Add letrozole (") for l in labels(**{"patient.sex": "female", "patient.menopausal": "post"}))
    unknown = labels(**{"patient.sex": "female", "patient.menopausal": "unknown"})
    assert not any(l.startswith("Add letrozole (") for l in unknown) and any("goserelin" in l for l in unknown)
    man = labels(**{"patient.sex": "male", "patient.menopausal": "unknown"})
    assert any("tamoxifen" in l for l in man) and not any(l.startswith("Add letrozole (") for l in man)


def test_f5_ignores_a_stale_ecog(rulebook):
    thp = {"draft.all.ingredients": ["docetaxel", "trastuzumab", "pertuzumab"],
           "draft.all.classes": ["taxane", "chemotherapy", "anti-her2"]}
    assert "F5" in _ids(rulebook, **thp, ecog=3, **{"ecog.days_ago": 30})
    assert "F5" not in _ids(rulebook, **thp, ecog=3, **{"ecog.days_ago": 1460})
    assert "F5" not in _ids(rulebook, **thp, ecog=3)  # age of the ECOG unknown


def test_early_relapse_is_not_first_line(rulebook):
    thp = {"draft.ingredients": ["docetaxel", "trastuzumab", "pertuzumab"],
           "draft.all.ingredients": ["docetaxel", "trastuzumab", "pertuzumab"],
           "draft.classes": ["taxane", "chemotherapy", "anti-her2", "anti-her2-antibody"],
           "draft.all.classes": ["taxane", "chemotherapy", "anti-her2", "anti-her2-antibody"]}
    assert _ids(rulebook, **thp, **{"therapy.adjuvant_relapse_months": 4.0}) == ["L1-EARLY"]
    assert _ids(rulebook, **thp, **{"therapy.adjuvant_relapse_months": 14.0}) == []


def test_s6_tdxd_needs_endocrine_therapy_in_the_metastatic_setting(rulebook):
    low = {**TDXD_DRAFT, "her2.status": "low", "hr.status": "positive"}
    assert "S6-TDXD" in _ids(rulebook, **low, **{"therapy.prior_metastatic_endocrine": True})
    assert "S6-TDXD" not in _ids(rulebook, **low, **{"meds.ever.classes": ["endocrine"]})
    ultralow = {**TDXD_DRAFT, "her2.status": "zero", "her2.ultralow": True, "hr.status": "positive"}
    assert "S6-TDXD" in _ids(rulebook, **ultralow, **{"therapy.prior_metastatic_endocrine": True})
    assert "S6-TDXD-ZERO" in _ids(rulebook, **{**ultralow, "her2.ultralow": False},
                                  **{"therapy.prior_metastatic_endocrine": True})


def test_m4_keeps_a_gnrh_agonist_and_silences_palbociclib_monitoring(rulebook):
    facts = {"hr.status": "negative", "draft.ingredients": ["goserelin"], "draft.classes": ["gnrh-agonist"]}
    assert "M4" not in _ids(rulebook, **facts)
    palbo = {"hr.status": "negative", "draft.ingredients": ["letrozole", "palbociclib"],
             "draft.classes": ["endocrine", "aromatase-inhibitor", "cdk46-inhibitor"]}
    fired = _ids(rulebook, **palbo)
    assert "M4" in fired and "S8" not in fired


def _recs(recommendations) -> list[tuple]:
    return [(r.rule.id, r.facts, r.suggestions, r.notes, r.summary) for r in recommendations]


def test_a_rule_is_ruled_out_only_by_a_false_part_that_reads_no_per_call_fact(rulebook):
    from cds_service.core.rules.rulebook import live_rules
    cond = compile_condition({"all": [{"fact": "a", "eq": 1}, {"fact": "draft.x", "eq": 2},
                                      {"any": [{"fact": "b", "eq": 1}, {"fact": "draft.y", "eq": 1}]}]})
    assert [c.facts for c in cond.conjuncts] == [("a",), ("draft.x",), ("b", "draft.y")]
    assert compile_condition({"any": [{"fact": "a", "eq": 1}]}).conjuncts == ()
    # Every shipped rule, on hand-made facts: the rules left by live_rules fire exactly as the whole book,
    # whichever facts are taken as per call, and none is left out that the facts could make fire.
    per_call_sets = [frozenset(), frozenset({"draft.ingredients", "draft.classes", "draft.all.ingredients",
                                             "draft.all.classes", "therapy.line", "findings", "hook"})]
    for hook in ("patient-view", "order-select", "order-sign"):
        for over in ({}, {"her2.status": "negative"}, {"lvef.value": 40.0}, {"brain_mets.active": True}):
            facts = dict(BASE, **over)
            for per_call in per_call_sets:
                live = live_rules(rulebook, hook, facts, per_call)
                assert {lr.rule.id for lr in live} <= {r.id for r in rulebook.rules_of(hook)}
                assert _recs(evaluate(rulebook, facts, hook, live)) == _recs(evaluate(rulebook, facts, hook))
    facts = dict(BASE, **{"her2.status": "negative"})
    assert len(live_rules(rulebook, "order-select", facts, frozenset())) < len(rulebook.rules_of("order-select"))
