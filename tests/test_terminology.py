"""Terminology artifacts: loaded once, O(1) look-ups, broken artifacts fail start-up clearly."""

from __future__ import annotations

import json
import shutil

import pytest

from cds_service.core.knowledge import KnowledgeError
from cds_service.core.knowledge.terminology import load_terminology
from criteria_builders import ATC, ICD, LOINC, ROOT, RXNORM, SNOMED, terminology


def test_valueset_codes_lists_the_included_concepts_in_artifact_order():
    t = terminology()
    assert t.valueset_codes("her2-ihc") == ((LOINC, "85319-2"), (LOINC, "18474-7"))
    for path in sorted((ROOT / "fhir_profiles" / "terminology").glob("ValueSet-*.json")):
        vs_id = json.loads(path.read_text())["id"]
        for system, code in t.valueset_codes(vs_id):
            assert t.in_valueset(vs_id, system, code), (vs_id, code)
    with pytest.raises(KeyError, match="no-such-set"):
        t.valueset_codes("no-such-set")


@pytest.mark.parametrize("system,code,ingredient", [
    (RXNORM, "224905", "trastuzumab"),
    (ATC, "L01XC03", "trastuzumab"),       # old ATC
    (ATC, "L01FD01", "trastuzumab"),       # new ATC
    (ATC, "L01XC14", "ado-trastuzumab emtansine"),
    (ATC, "L01FD04", "fam-trastuzumab deruxtecan"),
    (RXNORM, "481474", "lapatinib"),       # PIN lapatinib ditosylate
    (RXNORM, "589511", "paclitaxel"),      # Abraxane brand
    (ATC, "L01XE33", "palbociclib"),
    ("urn:oid:2.16.840.1.113883.6.88", "1298944", "pertuzumab"),  # RxNorm by OID
    # issue 20: RxNorm codes verified against a public export (see CodeSystem-ingredient definitions)
    (RXNORM, "2267582", "fam-trastuzumab deruxtecan"),  # IN
    (RXNORM, "2267579", "fam-trastuzumab deruxtecan"),  # "Trastuzumab Injection [Enhertu]": the ADC, not trastuzumab
    (RXNORM, "1658086", "ado-trastuzumab emtansine"),   # "Trastuzumab Injection [KADCYLA]"
    (RXNORM, "2361285", "tucatinib"),
    (RXNORM, "1940643", "neratinib"),
    (RXNORM, "1940642", "neratinib"),                   # PIN neratinib maleate
    (RXNORM, "39541", "vinorelbine"),
    (RXNORM, "1946825", "abemaciclib"),
    (RXNORM, "258494", "exemestane"),
    (RXNORM, "42375", "leuprolide"),
    (RXNORM, "2169285", "alpelisib"),
    (RXNORM, "2382603", "pertuzumab/trastuzumab/hyaluronidase"),  # MIN Phesgo
    (RXNORM, "2289225", "trastuzumab"),                 # PIN trastuzumab-dttb
])
def test_drug_codes_map_to_ingredient(system, code, ingredient):
    drug = terminology().drug_for_code(system, code)
    assert drug is not None and drug.ingredients[0] == ingredient


@pytest.mark.parametrize("text,ingredient,klass", [
    ("OGIVRI 420 mg injection", "trastuzumab", "anti-her2-antibody"),
    ("trastuzumab-dkst", "trastuzumab", "anti-her2"),
    ("Herceptin", "trastuzumab", "anti-her2-antibody"),
    ("Enhertu 100 MG", "fam-trastuzumab deruxtecan", "her2-adc"),
    ("fam-trastuzumab deruxtecan-nxki", "fam-trastuzumab deruxtecan", "her2-adc"),
    ("Kadcyla", "ado-trastuzumab emtansine", "her2-adc"),
    ("TUKYSA 150 mg tablet", "tucatinib", "her2-tki"),
    ("Ibrance", "palbociclib", "cdk46-inhibitor"),
    ("docetaxel", "docetaxel", "chemotherapy"),
    ("Letrozole 2.5mg", "letrozole", "endocrine"),
])
def test_text_names_and_brands_map(text, ingredient, klass):
    drugs = terminology().drugs_in_text(text)
    assert [d.ingredients[0] for d in drugs] == [ingredient]
    assert klass in drugs[0].classes


def test_trastuzumab_deruxtecan_is_not_trastuzumab():
    drugs = terminology().drugs_in_text("trastuzumab deruxtecan")
    assert [d.ingredients for d in drugs] == [("fam-trastuzumab deruxtecan",)]


def test_phesgo_counts_as_trastuzumab_and_pertuzumab():
    d = terminology().drugs_in_text("Phesgo")[0]
    assert set(d.ingredients) == {"pertuzumab/trastuzumab/hyaluronidase", "trastuzumab", "pertuzumab"}


def test_icd10_prefix_and_exclusion():
    t = terminology()
    assert "primary-breast-cancer" in t.valuesets_of(ICD, "C50.912")
    assert "metastatic-disease" in t.valuesets_of(ICD, "C78.01")
    assert t.translate("metastatic-site", ICD, "C79.31") == "brain"
    assert t.translate("metastatic-site", ICD, "C78.01") == "lung"
    # C79.81 is spread TO the breast, never metastatic breast cancer
    assert "metastatic-disease" not in t.valuesets_of(ICD, "C79.81")
    assert t.translate("metastatic-site", SNOMED, "94225005") == "brain"


def test_unknown_codes_are_unknown():
    t = terminology()
    assert t.drug_for_code(RXNORM, "1234") is None
    assert t.valuesets_of(LOINC, "0000-0") == frozenset()
    assert t.drugs_in_text("ondansetron 8 mg") == []


def _copy_profiles(tmp_path):
    dest = tmp_path / "fhir_profiles"
    shutil.copytree(ROOT / "fhir_profiles" / "terminology", dest / "terminology")
    return dest


def test_broken_json_names_file_and_line(tmp_path):
    dest = _copy_profiles(tmp_path)
    (dest / "terminology" / "ValueSet-lvef.json").write_text('{"resourceType": "ValueSet",\n "id": }')
    with pytest.raises(KnowledgeError, match=r"ValueSet-lvef\.json: line 2"):
        load_terminology(dest)


def test_concept_map_target_must_exist(tmp_path):
    dest = _copy_profiles(tmp_path)
    path = dest / "terminology" / "ConceptMap-drug-ingredient.json"
    data = json.loads(path.read_text())
    data["group"][0]["element"][0]["target"][0]["code"] = "trastuzumabb"
    path.write_text(json.dumps(data))
    with pytest.raises(KnowledgeError, match=r"ConceptMap-drug-ingredient\.json: \$\.group\[0\]\.element\[0\]"):
        load_terminology(dest)


def test_invalid_fhir_shape_names_json_path(tmp_path):
    dest = _copy_profiles(tmp_path)
    path = dest / "terminology" / "ValueSet-ecog.json"
    data = json.loads(path.read_text())
    data["status"] = 42
    path.write_text(json.dumps(data))
    with pytest.raises(KnowledgeError, match=r"ValueSet-ecog\.json: \$\.status"):
        load_terminology(dest)


def test_missing_folder_fails(tmp_path):
    with pytest.raises(KnowledgeError, match="no terminology artifacts"):
        load_terminology(tmp_path)


def test_an_exclude_applies_to_a_prefix_system_other_than_icd(tmp_path):
    """A ValueSet's exclude holds in every system: an ATC is-a include (L01) less one excluded code."""
    dest = _copy_profiles(tmp_path)
    path = dest / "terminology" / "ValueSet-antineoplastic-atc.json"
    data = json.loads(path.read_text())
    data["compose"]["exclude"] = [{"system": ATC, "concept": [{"code": "L01CD02"}]}]
    path.write_text(json.dumps(data))
    t = load_terminology(dest)
    assert "antineoplastic-atc" in t.valuesets_of(ATC, "L01CD01")
    assert "antineoplastic-atc" not in t.valuesets_of(ATC, "L01CD02")
    assert "antineoplastic-atc" in terminology().valuesets_of(ATC, "L01CD02")
