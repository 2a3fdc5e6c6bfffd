"""Record text is text, not markdown, inside a card (issue 21): no live link from a Condition's code.text."""

from __future__ import annotations

import copy

from markdown_it import MarkdownIt

from cds_service.app import create_app
from cds_service.core.cards import md_text

HOSTILE = "[Re-login](https://evil.example/p) <b>x</b> *bold*"


def test_md_text_leaves_no_link_emphasis_or_html():
    html = MarkdownIt("commonmark").enable("table").render(md_text(HOSTILE))
    assert "<a " not in html and "<b>" not in html and "<em>" not in html and "<strong>" not in html
    assert "Re-login" in html and "evil.example" in html  # the text is still there, as text


def test_a_hostile_condition_text_is_not_a_link_in_the_critical_card(migrated_db_url, fixtures_today):
    req = copy.deepcopy(fixtures_today[1]["p26-lvef35-order-sign"])
    client = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    # the LVEF result's own text is named in the hard stop's "Why this card"
    renamed = 0
    for bundle in req["prefetch"].values():
        for e in (bundle or {}).get("entry", []) if isinstance(bundle, dict) else []:
            code = e["resource"].get("code") or {}
            if any(c.get("code") == "10230-1" for c in code.get("coding", [])):
                code["text"] = HOSTILE
                renamed += 1
    assert renamed
    resp = client.post("/cds-services/her2-mbc-order-sign", json=req)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    assert any(c["indicator"] == "critical" for c in cards)
    for c in cards:
        html = MarkdownIt("commonmark").enable("table").render(c["detail"])
        assert 'href="https://evil.example' not in html, c["detail"]
    assert any("Re-login" in c["detail"] for c in cards)
