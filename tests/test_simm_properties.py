"""SIMM invariants on seeded random CRIFs (every risk class), independent of any reference.

- rows in any order, or one risk factor split across trades, give the same margin (netting);
- at one day (no concentration factor) margin is positively homogeneous: IM(c x CRIF) = c x IM(CRIF);
- delta and vega margins are the same on the call and post sides (only curvature sees the sign).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simm_random import random_crif

from solvent.simm import calculate, load_calibration, parse_crif
from solvent.simm.calculator import SimmReport


def _totals(report: SimmReport) -> dict[tuple[str, str], float]:
    return {key: report.result(*key).total for key in report.winners}


def _lines(seed: int) -> tuple[str, list[str]]:
    header, *rows = random_crif(seed)[0].splitlines()
    return header, rows


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), shuffle=st.randoms(use_true_random=False))
def test_row_order_does_not_matter(seed: int, shuffle: random.Random) -> None:
    header, rows = _lines(seed)
    cal = load_calibration("2.6", 10)
    before = _totals(calculate(parse_crif("\n".join([header, *rows])), cal))
    shuffle.shuffle(rows)
    after = _totals(calculate(parse_crif("\n".join([header, *rows])), cal))
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] == pytest.approx(value, rel=1e-12), key


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0.1, 0.9))
def test_splitting_a_row_across_trades_nets(seed: int, share: float) -> None:
    header, rows = _lines(seed)
    cells = rows[0].split("\t")
    amount = float(cells[9])
    first, second = list(cells), list(cells)
    first[9] = first[10] = repr(amount * share)
    second[9] = second[10] = repr(amount - amount * share)
    second[0] = "other-trade"
    cal = load_calibration("2.8+2506", 10)
    whole = _totals(calculate(parse_crif("\n".join([header, *rows])), cal))
    split = _totals(calculate(parse_crif("\n".join([header, "\t".join(first), "\t".join(second), *rows[1:]])), cal))
    for key, value in whole.items():
        assert split[key] == pytest.approx(value, rel=1e-9), key


def _scaled(rows: list[str], factor: float) -> list[str]:
    out = []
    for row in rows:
        cells = row.split("\t")
        cells[9] = cells[10] = repr(float(cells[9]) * factor)
        out.append("\t".join(cells))
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), factor=st.floats(0.01, 100.0))
def test_one_day_margin_is_positively_homogeneous(seed: int, factor: float) -> None:
    header, rows = _lines(seed)
    cal = load_calibration("2.6", 1)
    base = calculate(parse_crif("\n".join([header, *rows])), cal)
    scaled = calculate(parse_crif("\n".join([header, *_scaled(rows, factor)])), cal)
    for result in base.results:
        other = scaled.result(result.side, result.portfolio, result.regulation)
        assert other.total == pytest.approx(factor * result.total, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_delta_and_vega_do_not_depend_on_the_side(seed: int) -> None:
    text, _ = random_crif(seed, regs=("ESA",))
    report = calculate(parse_crif(text), load_calibration("2.6", 10))
    for portfolio in {p for _, p in report.winners}:
        call, post = report.result("Call", portfolio).margins, report.result("Post", portfolio).margins
        for margin_type in ("Delta", "Vega"):
            key = ("All", "All", margin_type, "All")
            assert post.get(key, 0.0) == pytest.approx(call.get(key, 0.0), rel=1e-12)
