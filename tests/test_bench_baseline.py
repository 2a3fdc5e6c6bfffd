"""The benchmark's regression check (issue 23), on synthetic numbers: no timing happens here.

What is checked is the logic that turns a run into ratios and flags the ones
that grew more than 20 % against the committed baseline, and that the
committed baseline file has the shape the run reads.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import baseline as B


def _inprocess(floor: dict[int, float], service: dict[str, dict[str, float]]) -> dict:
    return {"floor": {n: {"median_ms": v} for n, v in floor.items()},
            "service": {mode: {k: {"median_ms": v} for k, v in cells.items()} for mode, cells in service.items()}}


def test_ratios_divide_each_cell_by_the_floor_of_its_own_size():
    ip = _inprocess({50: 0.5, 1000: 10.0}, {"warm": {"patient-view/50": 1.5, "order-sign/1000": 25.0},
                                            "cold": {"patient-view/50": 4.0}})
    assert B.ratios(ip) == {"warm/patient-view/50": 3.0, "warm/order-sign/1000": 2.5, "cold/patient-view/50": 8.0}


def test_ratios_leave_out_a_size_without_a_floor():
    ip = _inprocess({50: 0.5}, {"warm": {"patient-view/50": 1.0, "patient-view/200": 3.0}})
    assert B.ratios(ip) == {"warm/patient-view/50": 2.0}


def test_ratios_read_sizes_written_as_strings_by_json():
    ip = json.loads(json.dumps(_inprocess({50: 0.5}, {"warm": {"order-select/50": 2.0}})))
    assert B.ratios(ip) == {"warm/order-select/50": 4.0}


@pytest.mark.parametrize("current, flagged", [(3.0, False), (3.6, False), (3.61, True), (6.0, True), (1.0, False)])
def test_a_ratio_is_flagged_only_when_it_grew_more_than_20_percent(current, flagged):
    (row,) = B.compare({"warm/patient-view/50": current}, {"warm/patient-view/50": 3.0})
    assert row.flagged is flagged
    assert ("SLOWER" in row.status) is flagged


def test_an_improvement_is_reported_not_flagged():
    (row,) = B.compare({"k": 2.0}, {"k": 4.0})
    assert not row.flagged
    assert row.change == pytest.approx(-0.5)
    assert row.status == "−50 %"


def test_missing_and_new_keys_are_shown_and_never_flagged():
    rows = B.compare({"new": 9.0, "both": 1.0}, {"both": 1.0, "gone": 2.0})
    assert [(r.key, r.status) for r in rows] == [("both", "+0 %"), ("gone", "not measured in this run"),
                                                  ("new", "new (no baseline)")]
    assert B.flagged(rows) == []


def test_the_tolerance_can_be_tightened():
    (row,) = B.compare({"k": 1.1}, {"k": 1.0}, tolerance=0.05)
    assert row.flagged


def test_the_table_names_each_flagged_ratio():
    rows = B.compare({"warm/order-select/50": 9.0, "cold/order-sign/50": 10.0},
                     {"warm/order-select/50": 6.0, "cold/order-sign/50": 10.0})
    text = B.table(rows, {"when": "2026-12-04", "git": "abc1234"})
    assert "| warm/order-select/50 | 9.00× | 6.00× | **SLOWER: +50 % (> 20 %)** |" in text
    assert "| cold/order-sign/50 | 10.00× | 10.00× | +0 % |" in text
    assert text.rstrip().endswith("1 of 2 ratios flagged: warm/order-select/50")


def test_save_then_load_round_trips(tmp_path):
    path = tmp_path / "baseline.json"
    B.save({"warm/patient-view/50": 2.5}, {"when": "t", "git": "g"}, path)
    data = B.load(path)
    assert data["ratios"] == {"warm/patient-view/50": 2.5}
    assert data["tolerance"] == B.TOLERANCE
    assert B.load(tmp_path / "absent.json") == {}


def test_the_committed_baseline_covers_every_hook_warm_and_cold_at_the_typical_size():
    data = B.load()
    assert data, "benchmarks/baseline.json is missing"
    keys = set(data["ratios"])
    for mode in ("warm", "cold"):
        for hook in ("patient-view", "order-select", "order-sign"):
            assert f"{mode}/{hook}/50" in keys
    assert all(isinstance(v, (int, float)) and v > 0 for v in data["ratios"].values())


def test_a_cell_is_divided_by_the_floor_measured_beside_it_when_there_is_one():
    ip = _inprocess({50: 0.5}, {"warm": {"patient-view/50": 2.0}})
    ip["service"]["warm"]["patient-view/50"]["floor_median_ms"] = 0.8
    assert B.ratios(ip) == {"warm/patient-view/50": 2.5}


def test_repeated_runs_give_the_median_ratio_per_key():
    runs = [{"a": 3.0, "b": 1.0}, {"a": 9.0, "b": 1.2}, {"a": 3.3}]
    assert B.median_ratios(runs) == {"a": 3.3, "b": 1.1}
