"""Which hooks each rule fires on (issue 12; knowledge file, "Hooks").

Many EHRs integrate only order-sign, so every warning or critical rule about the
draft orders fires at order-select *and* order-sign; info cards stay off order-sign
(the repeat of an order-select card at order-sign is handled in protocol/repeats.py).
"""

from __future__ import annotations


def _reads_drafts(rulebook, rule) -> bool:
    facts = set(rule.when.facts) | set(rulebook.scopes[rule.scope].facts)
    return any(f.startswith("draft.") for f in facts)


def test_every_order_warning_fires_at_order_select_and_order_sign(knowledge):
    rb = knowledge.rulebook
    missing = [r.id for r in rb.rules if r.card["indicator"] in ("warning", "critical") and _reads_drafts(rb, r)
               and not {"order-select", "order-sign"} <= set(r.hooks)]
    assert missing == []


def test_no_info_card_at_order_sign(knowledge):
    assert [r.id for r in knowledge.rulebook.rules if r.card["indicator"] == "info" and "order-sign" in r.hooks] == []


def test_notes_render_fact_values_and_dates(knowledge):
    from cds_service.core.rules.rulebook import render_text

    text = render_text("≈ {{taxane.cycles}} {{taxane.drug}} cycles ({{taxane.start}} – {{taxane.end}}), {{x.y}}",
                       {"taxane.cycles": 6, "taxane.drug": "docetaxel", "taxane.start": "2026-03-02",
                        "taxane.end": "2026-06-15"})
    assert text == "≈ 6 docetaxel cycles (2 Mar 2026 – 15 Jun 2026), not recorded"
