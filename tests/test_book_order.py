"""The same book in any order gives bit-identical figures per account (issue 12 item 16).

Floating-point addition is not associative: summing an account's positions (or its collateral, or the venue's
open interest) in file order made IM depend on that order in the last bits (quantities [1, -1, 0.1] of one
perpetual gave IM 1015.2315333993618, [0.1, 1, -1] gave ...625). A figure anyone can reproduce from the same
book, whatever order it was written in, is the ground of verifiable solvency: these tests compare exactly.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from small_venue import INSTRUMENTS, LINEAR, MARKET

from solvent.api import compute_margin
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import _exact_sums, canonical_book
from solvent.engine.results import MarginResult
from solvent.formats.schemas import Account, Portfolio, Position
from solvent.params import MarginParams, ScenarioParams

NAMES = [inst.id for inst in INSTRUMENTS]


def margin(accounts: list[Account], method: str = "grid", instruments: list[object] | None = None) -> MarginResult:
    portfolio = Portfolio(
        schema="solvent.portfolio/1", instruments=instruments or INSTRUMENTS, accounts=accounts  # type: ignore[arg-type]
    )
    return compute_margin(portfolio_to_book(portfolio), MARKET, MarginParams(scenarios=ScenarioParams(method=method)))


def by_account(result: MarginResult) -> dict[str, dict[str, object]]:
    """Every output column of every account, keyed by account id (NaN made comparable)."""
    rows = result.to_arrow().to_pylist()
    return {
        str(row["account"]): {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows
    }


def assert_bit_identical(a: MarginResult, b: MarginResult) -> None:
    left, right = by_account(a), by_account(b)
    assert left.keys() == right.keys()
    for account, row in left.items():
        assert row == right[account], account  # == on floats: bit for bit (no tolerance)


def perp(quantities: list[float], entry: float = 90_000.0) -> Account:
    return Account(
        id="x",
        collateral={"USDC": 1_000.0},
        positions=[Position(instrument="BTC-PERP", quantity=q, entry_price=entry) for q in quantities],
    )


def test_the_issue_s_three_quantities_in_either_order_give_the_same_im() -> None:
    """The example of the issue: [1, -1, 0.1] and [0.1, 1, -1] of one perpetual (net 0.1 BTC)."""
    first = margin([perp([1.0, -1.0, 0.1])])
    second = margin([perp([0.1, 1.0, -1.0])])
    assert first.im[0] == second.im[0]
    assert first.greeks[0, first.assets.index("BTC"), 0] == second.greeks[0, second.assets.index("BTC"), 0]
    assert_bit_identical(first, second)


position = st.tuples(
    st.sampled_from(NAMES),
    st.floats(-50, 50, allow_nan=False).filter(lambda q: abs(q) > 1e-6),
    st.sampled_from([88_000.0, 90_000.5, 95_000.0, 3_300.25, 3_500.0]),
    st.sampled_from([None, None, "dex", "cex"]),
)
account = st.tuples(
    st.lists(position, max_size=7),
    st.dictionaries(st.sampled_from(["USDC", "BTC", "ETH"]), st.floats(0, 1e5, allow_nan=False), max_size=3),
)


Book = list[tuple[list[tuple[str, float, float, str | None]], dict[str, float]]]


def build(accounts: Book) -> list[Account]:
    return [
        Account(
            id=f"acct-{n}",
            collateral=collateral,
            positions=[
                Position(instrument=name, quantity=q, entry_price=entry if name in LINEAR else None, venue=venue)
                for name, q, entry, venue in positions
            ],
        )
        for n, (positions, collateral) in enumerate(accounts)
    ]


def shuffled(accounts: list[Account], seed: int) -> list[Account]:
    """The accounts in another order, each one's positions and collateral balances in another order."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(accounts)):
        acct = accounts[i]
        positions = [acct.positions[j] for j in rng.permutation(len(acct.positions))]
        assets = list(acct.collateral)
        collateral = {assets[j]: acct.collateral[assets[j]] for j in rng.permutation(len(assets))}
        out.append(msgspec.structs.replace(acct, positions=positions, collateral=collateral))
    return out


@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
@settings(max_examples=30, deadline=None)
@given(accounts=st.lists(account, min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_any_order_of_accounts_positions_and_collateral_gives_bit_identical_figures(
    method: str, accounts: Book, seed: int
) -> None:
    """Random books, random permutations: IM, MM, equity, every term, Greeks per account, bit for bit."""
    book = build(accounts)
    assert_bit_identical(margin(book, method), margin(shuffled(book, seed), method))


@settings(max_examples=20, deadline=None)
@given(accounts=st.lists(account, min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_the_order_of_the_instrument_list_changes_nothing(accounts: Book, seed: int) -> None:
    book = build(accounts)
    order = np.random.default_rng(seed).permutation(len(INSTRUMENTS))
    assert_bit_identical(margin(book), margin(book, instruments=[INSTRUMENTS[i] for i in order]))


def test_parquet_style_dictionary_order_changes_nothing() -> None:
    """Collateral assets first met in another order (another dictionary) give the same figures."""
    a = Account(id="a", collateral={"BTC": 0.3, "USDC": 7_000.1, "ETH": 1.7}, positions=[])
    b = Account(id="b", collateral={"ETH": 0.1, "USDC": 0.7, "BTC": 0.2}, positions=[])
    assert_bit_identical(margin([a, b]), margin([b, a]))


def test_merged_quantities_are_the_correctly_rounded_sum() -> None:
    """Positions of one instrument at one entry price (options: at one venue) merge into one row whose quantity
    is math.fsum of theirs, the exact sum rounded once: 1 - 1 + 0.1 gives 0.1 whatever the order (a left-to-right
    sum of [0.1, 1, -1] gives 0.10000000000000009). Different entry prices stay apart, in entry order."""
    quantities = [0.1, 1.0, -1.0, 1e-17, 3.0]
    positions = [Position(instrument="BTC-C", quantity=q) for q in quantities]
    positions += [Position(instrument="BTC-PERP", quantity=2.0, entry_price=e) for e in (95_000.0, 90_000.0)]
    positions += [Position(instrument="BTC-PERP", quantity=q, entry_price=90_000.0) for q in (0.1, 0.2)]
    portfolio = Portfolio(
        schema="solvent.portfolio/1",
        instruments=INSTRUMENTS,
        accounts=[Account(id="x", collateral={"USDC": 1.0, "BTC": 0.1}, positions=positions)],
    )
    book = portfolio_to_book(portfolio)
    names = [book.instruments[i].id for i in book.pos_instrument]
    assert names == ["BTC-C", "BTC-PERP", "BTC-PERP"]  # sorted by instrument id, then entry price
    assert book.pos_quantity[0] == math.fsum(quantities)
    assert book.pos_quantity[1] == math.fsum([2.0, 0.1, 0.2]) and book.pos_entry[1] == 90_000.0
    assert book.pos_quantity[2] == 2.0 and book.pos_entry[2] == 95_000.0
    assert book.collateral_assets == ("BTC", "USDC")
    again = canonical_book(book)
    assert again is book  # recognised as canonical in one pass, nothing rebuilt
    for name in ("pos_offsets", "pos_instrument", "pos_quantity", "pos_entry", "col_offsets", "col_asset"):
        np.testing.assert_array_equal(getattr(again, name), getattr(book, name))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=30), seed=st.integers(0, 99))
def test_the_merge_sum_is_math_fsum(values: list[float], seed: int) -> None:
    """The compiled merge sum against CPython's math.fsum (an independent implementation), in any order."""
    order = np.random.default_rng(seed).permutation(len(values))
    got = _exact_sums(np.array(values)[order], np.array([0], dtype=np.int64))
    assert got[0] == math.fsum(values)
