"""The arithmetic of bench/tablets.py (bench/tablet_figures.py): percentiles, the measuring
window, and the check of a register against the submissions it accepted."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from tablet_figures import (
    Timed,
    latest_writes,
    percentile,
    register_mismatches,
    same_value,
    window_figures,
)

A = "1765000000000-00000-aaaa"
B = "1765000000000-00001-aaaa"
C = "1765000000001-00000-bbbb"
H1 = "00000000-0000-4000-8000-000000000001"
M1 = "00000000-0000-4000-8000-000000000002"
Updates = list[tuple[str, str, dict[str, Any]]]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0, 1.0, 2.0], 50) == 2  # order does not matter
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_window_counts_only_what_ended_inside_and_errors_apart():
    records = [
        Timed(0.2, 0.9, submissions=5),  # ended in the warm-up: not counted
        Timed(0.5, 1.5, submissions=5),  # started in the warm-up, ended inside: counted
        Timed(2.0, 4.0, submissions=5),
        Timed(3.0, 3.5, error="ProtocolError: POST 500"),
        Timed(10.0, 11.5, submissions=5),  # ended after the window: the drain
    ]
    figures = window_figures(records, start=1.0, end=11.0)
    assert figures.completed == 2
    assert figures.errors == 1
    assert figures.submissions == 10
    assert figures.per_second == pytest.approx(0.2)
    assert figures.submissions_per_second == pytest.approx(1.0)
    assert figures.p50 == pytest.approx(1.0)
    assert figures.slowest == pytest.approx(2.0)


def test_window_splits_each_exchange_at_its_first_step():
    records = [
        Timed(1.0, 2.0, submissions=1, first_step=0.25),
        Timed(1.0, 4.0, submissions=1, first_step=2.5),
        Timed(1.0, 1.5, error="ProtocolError: POST 500", first_step=0.5),  # failed: left out
    ]
    figures = window_figures(records, start=0.0, end=10.0)
    assert figures.first_p50 == pytest.approx(0.25)
    assert figures.first_p95 == pytest.approx(2.5)
    assert figures.rest_p50 == pytest.approx(0.5)
    assert figures.rest_p95 == pytest.approx(0.75)


def test_latest_write_wins_whatever_the_order():
    updates_a: Updates = [("household", H1, {"annual_income": 100, "water_ok": True})]
    updates_c: Updates = [("household", H1, {"annual_income": 300})]
    updates_b: Updates = [
        ("household", H1, {"annual_income": 200}),
        ("member", M1, {"insured": False}),
    ]
    forward = latest_writes([("a", A, updates_a), ("b", B, updates_b), ("c", C, updates_c)])
    backward = latest_writes([("c", C, updates_c), ("b", B, updates_b), ("a", A, updates_a)])
    assert forward == backward
    assert forward[("household", H1, "annual_income")].value == 300
    assert forward[("household", H1, "annual_income")].instance_id == "c"
    assert forward[("household", H1, "water_ok")].value is True
    assert forward[("member", M1, "insured")].value is False


def test_register_agreeing_with_the_latest_writes_has_no_mismatch():
    latest = latest_writes(
        [
            ("a", A, [("household", H1, {"annual_income": 100, "risk_causes": ["water"]})]),
            ("c", C, [("household", H1, {"annual_income": 300})]),
        ]
    )
    stored = {
        ("household", H1): (
            {"annual_income": 300.0, "risk_causes": ["water"], "other": 1},
            {"annual_income": C, "risk_causes": A, "other": A},
        )
    }
    assert register_mismatches(latest, stored) == []


def test_lost_updates_stale_clocks_and_missing_entities_are_mismatches():
    latest = latest_writes(
        [
            ("a", A, [("household", H1, {"annual_income": 100, "water_ok": True})]),
            ("c", C, [("household", H1, {"annual_income": 300}), ("member", M1, {"health": "x"})]),
        ]
    )
    stored = {
        ("household", H1): (
            {"annual_income": 100, "water_ok": False},  # the later write lost; a value changed
            {"annual_income": A, "water_ok": A},
        )
    }
    found = {m.key: m for m in register_mismatches(latest, stored)}
    assert set(found) == {
        ("household", H1, "annual_income"),
        ("household", H1, "water_ok"),
        ("member", M1, "health"),
    }
    assert found[("household", H1, "annual_income")].expected == 300
    assert found[("household", H1, "annual_income")].stored_clock == A
    assert found[("member", M1, "health")].stored is None
    assert "latest accepted write 300" in str(found[("household", H1, "annual_income")])


def test_values_compare_as_register_values():
    assert same_value(20000, 20000.0)
    assert same_value(20000, "20000.00")
    assert same_value(15337.5, 15337.5)
    assert not same_value(20000, 20010)
    assert not same_value(True, 1)  # a boolean is not a number
    assert same_value(["illness", "water"], ["illness", "water"])
    assert not same_value(["illness", "water"], ["water", "illness"])
    assert same_value(None, None)
    assert not same_value("safe", None)
