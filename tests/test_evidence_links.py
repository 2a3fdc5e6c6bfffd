"""Evidence links go to the source itself, and each card cites the claim it rests on (issue 22)."""

import re

import pytest

SEARCH_PAGE = re.compile(r"search\.cfm|[?&](term|query)=|/search\b", re.I)
DIRECT = re.compile(r"^https://(doi\.org/10\.\S+|pubmed\.ncbi\.nlm\.nih\.gov/\d+/"
                    r"|dailymed\.nlm\.nih\.gov/dailymed/drugInfo\.cfm\?setid=[0-9a-f-]{36}$|\S+)")


def test_no_evidence_links_to_a_search_page(knowledge):
    for eid, ev in knowledge.rulebook.evidence.items():
        url = ev.get("url")
        if url:
            assert not SEARCH_PAGE.search(url), f"{eid}: {url} is a search page"
            assert DIRECT.match(url), eid


def test_every_cited_claim_exists(knowledge):
    rb = knowledge.rulebook
    for rule in rb.rules:
        for ref in rule.evidence:
            source = rb.cited(ref)
            assert source["label"], (rule.id, ref)
            if "#" in ref:
                eid, claim = ref.split("#")
                assert source["key"] == rb.evidence[eid]["claims"][claim]["key"]


@pytest.mark.parametrize("rule_id, claim", [
    ("S2-C", "lvef"), ("S2-W", "lvef"), ("S2-DUE", "lvef"), ("S15-W", "lvef"),
    ("S8", "monitoring"), ("S9", "men"), ("S1-C", "ild"), ("L1", "indication"),
])
def test_a_label_is_cited_for_the_claim_the_card_makes(knowledge, rule_id, claim):
    """S2's LVEF cards must not quote Enhertu's ILD text; S9 must not quote Ibrance dosing."""
    refs = knowledge.rulebook.rule(rule_id).evidence
    labels = [r for r in refs if r.split("#")[0].endswith("_LABEL")]
    assert labels and all(r.endswith(f"#{claim}") for r in labels), refs


def test_an_lvef_card_quotes_the_lvef_sections(tmp_path, requests_today):
    from cds_service import create_app

    client = create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 't.db'}").test_client()
    resp = client.post("/cds-services/her2-mbc-order-sign", json=requests_today["p26-lvef35-order-sign"])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    card = next(c for c in resp.get_json()["cards"] if c["source"]["topic"]["code"] == "S2-C")
    evidence = card["detail"].split("**Evidence**\n", 1)[1].split("\n\n", 1)[0]
    assert "LVEF" in evidence and "ILD" not in evidence
    assert "5.1 Cardiomyopathy" in evidence and "2.3" in evidence
    assert "setid=" in evidence and "search" not in evidence
