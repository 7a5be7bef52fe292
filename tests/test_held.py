"""The (account, asset held) rows (factors/held.py): the layout against a plain-Python twin, its row sums and dense
view, and the margin engine's per-asset figures on those rows against the dense numpy twins they replace, on
random books (accounts with no position, one asset, every asset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.engine.book import CROSS, Book
from solvent.engine.kernel import margins_numpy
from solvent.engine.margin import margin_book
from solvent.factors.basis import account_books, book_layout, books_terms
from solvent.factors.concentration import herfindahl, open_interest, simm_add_on, simm_thresholds
from solvent.factors.held import HeldAssets, every_asset, held_assets
from solvent.factors.liquidity import packed_liquidity
from solvent.factors.oracle_buffer import oracle_buffer_numpy
from solvent.formats.schemas import AssetQuote, Depth, Instrument, MarketSnapshot, OracleSource
from solvent.market.state import build_market_state
from solvent.params import ConcentrationParams, MarginParams, McParams, ScenarioParams

NOW = datetime(2026, 11, 25, tzinfo=UTC)
N_ASSETS = 5


def layout_twin(offsets: np.ndarray, assets: np.ndarray, extra: list[list[int]] | None = None) -> list[list[int]]:
    """Each account's assets, once and ascending, by plain Python."""
    out = []
    for n in range(offsets.size - 1):
        held = set(assets[offsets[n] : offsets[n + 1]].tolist()) | set(extra[n] if extra else [])
        out.append(sorted(held))
    return out


def rows(held: HeldAssets) -> list[list[int]]:
    return [held.asset[held.offsets[n] : held.offsets[n + 1]].tolist() for n in range(held.n_accounts)]


def csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    return offsets, np.array([a for x in lists for a in x], dtype=np.int64)


books = st.lists(st.lists(st.integers(0, N_ASSETS - 1), max_size=12), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(positions=books, extra=books)
def test_held_assets_are_each_accounts_assets_once_ascending(
    positions: list[list[int]], extra: list[list[int]]
) -> None:
    extra = (extra * len(positions))[: len(positions)]
    offsets, assets = csr(positions)
    assert rows(held_assets(offsets, assets, N_ASSETS)) == layout_twin(offsets, assets)
    extra_offsets, extra_assets = csr(extra)
    held = held_assets(offsets, assets, N_ASSETS, extra_offsets, extra_assets)
    assert rows(held) == layout_twin(offsets, assets, extra)


@settings(max_examples=60, deadline=None)
@given(positions=books, seed=st.integers(0, 2**32 - 1))
def test_row_sums_dense_view_and_gather_match_the_dense_array(positions: list[list[int]], seed: int) -> None:
    """Row sums add each account's rows from 0.0 in asset order: a plain loop over the dense row (its zeros
    included) gives the same bits; the dense view holds each row at its (account, asset) and 0 elsewhere."""
    held = held_assets(*csr(positions), N_ASSETS)
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 6.0, held.n_rows) * rng.choice([1.0, -1.0], held.n_rows)
    values[rng.random(held.n_rows) < 0.1] = 0.0
    values[rng.random(held.n_rows) < 0.1] = -0.0
    dense = held.dense(values)
    twin = []
    for row in dense.tolist():
        total = 0.0
        for value in row:
            total += value
        twin.append(total)
    np.testing.assert_array_equal(held.row_sums(values).view(np.int64), np.array(twin).view(np.int64))
    account, asset = np.divmod(np.arange(held.n_accounts * N_ASSETS), N_ASSETS)
    np.testing.assert_array_equal(held.gather(values, account, asset), dense.reshape(-1))
    assert np.count_nonzero(dense) == np.count_nonzero(values)


def test_every_asset_is_the_dense_layout() -> None:
    held = every_asset(3, 4)
    np.testing.assert_array_equal(held.offsets, [0, 4, 8, 12])
    assert rows(held) == [[0, 1, 2, 3]] * 3
    values = np.arange(12.0)
    np.testing.assert_array_equal(held.dense(values), values.reshape(3, 4))


def venue() -> tuple[list[Instrument], MarketSnapshot]:
    """N_ASSETS assets, each a perpetual and four options (one expiry, two strikes, call and put), with depth and
    five oracle sources."""
    instruments: list[Instrument] = []
    assets = {}
    for a in range(N_ASSETS):
        name = f"A{a}"
        price = 10.0 ** (1 + a % 3)
        sources = [
            OracleSource(name=f"s{k}", price=price * o, confidence=price * 1e-4, timestamp=NOW)
            for k, o in enumerate((0.9995, 0.9998, 1.0, 1.0003, 1.0006))
        ]
        depth = Depth(spread=0.0004, depth_1pct=2e6 / price, depth_2pct=5e6 / price)
        assets[name] = AssetQuote(price=price, vol=0.5 + 0.1 * a, depth=depth, vol_spread=0.02, sources=sources)
        instruments.append(Instrument(id=f"{name}-PERP", kind="perp", underlying=name))
        for k, kind in ((0.9, "call"), (0.9, "put"), (1.1, "call"), (1.1, "put")):
            instruments.append(
                Instrument(
                    id=f"{name}-{k}-{kind}",
                    kind="option",
                    underlying=name,
                    expiry=NOW + timedelta(days=30),
                    strike=price * k,
                    option_type=kind,  # type: ignore[arg-type]
                )
            )
    assets["USDC"] = AssetQuote(price=1.0, vol=0.0)
    return instruments, MarketSnapshot(schema="solvent.market/1", time=NOW, assets=assets)


def random_book(instruments: list[Instrument], seed: int) -> Book:
    """Accounts with no position, one asset's instruments, or every instrument; the rest drawn at random."""
    rng = np.random.default_rng(seed)
    n_inst = len(instruments)
    lists = [[], list(range(5)), list(range(n_inst)), [0], [3]]
    lists += [rng.choice(n_inst, rng.integers(0, 9), replace=False).tolist() for _ in range(60)]
    offsets, inst = csr(lists)
    n = len(lists)
    linear = np.array([i.kind != "option" for i in instruments])[inst]
    return Book(
        instruments=tuple(instruments),
        account_ids=np.array([f"a{k}" for k in range(n)], dtype=object),
        pos_offsets=offsets,
        pos_instrument=inst.astype(np.int32),
        pos_quantity=rng.normal(0, 5, inst.size),
        pos_entry=np.where(linear, 100.0, np.nan),
        collateral_assets=("USDC",),
        col_offsets=np.arange(n + 1, dtype=np.int64),
        col_asset=np.zeros(n, dtype=np.int32),
        col_amount=rng.lognormal(8, 1, n),
        risk_tier=np.full(n, np.nan),
        mode=np.full(n, CROSS, dtype=np.int8),
        parent=np.full(n, None, dtype=object),
    )


@pytest.mark.parametrize("method", ["grid", "mc"])
@pytest.mark.parametrize("seed", [1, 2])
def test_margin_figures_on_the_held_rows_equal_the_dense_twins(method: str, seed: int) -> None:
    instruments, market = venue()
    scenarios = ScenarioParams(method=method, mc=McParams(n_scenarios=64))  # type: ignore[arg-type]
    concentration = ConcentrationParams(threshold=2_000.0, depth_share=None, relative_floor=0.0)
    params = MarginParams(scenarios=scenarios, concentration=concentration)
    state = build_market_state(instruments, market, params)
    book = random_book(instruments, seed)
    result = margin_book(book, state, params)
    asset_of = state.instruments.asset
    assert rows(result.held) == layout_twin(book.pos_offsets, asset_of[book.pos_instrument])
    assert rows(result.held)[:3] == [[], [0], list(range(N_ASSETS))]
    # the Greeks: the numpy twin's dense sum over positions
    from solvent.engine.riskarrays import scenario_risk_arrays

    _, arrays = scenario_risk_arrays(state, params)
    csr_book = (book.pos_offsets, book.pos_instrument, book.pos_quantity)
    twin_margin, twin_greeks = margins_numpy(*csr_book, arrays, params.confidence, params.measure)
    np.testing.assert_allclose(result.greeks, twin_greeks, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.terms["market_risk"], twin_margin, rtol=1e-9, atol=1e-9)
    # the per-asset terms: the dense numpy twins, and each term the sum of its dense row
    greeks = twin_greeks
    delta = greeks[:, :, 0]
    layout = book_layout(state.instruments)
    packed = packed_liquidity(state.liquidity)
    liquidity = params.liquidity
    for n in range(book.n_accounts):  # the per-book close-out, account by account (factors/basis.py's twin)
        span = slice(int(book.pos_offsets[n]), int(book.pos_offsets[n + 1]))
        books = account_books(
            book.pos_instrument[span], book.pos_quantity[span], arrays.unit_greeks, asset_of, layout, N_ASSETS + 1
        )
        close_out, _ = books_terms(
            books,
            state.price,
            0.0,
            0.0,
            True,
            packed.kind,
            packed.curves,
            packed.knots,
            packed.adv,
            packed.vol_spread,
            state.vol / np.sqrt(params.days_per_year),
            liquidity.stress,
            liquidity.adv_half_spread,
            liquidity.impact_coefficient,
        )
        assert result.terms["liquidity"][n] == pytest.approx(close_out, rel=1e-12, abs=1e-12)
    oracle = oracle_buffer_numpy(greeks, state.oracle_uncertainty, params.oracle.buffer_factor)
    np.testing.assert_allclose(result.term_by_asset["oracle"], oracle, rtol=1e-12, atol=1e-12)
    notional = delta * state.price
    np.testing.assert_allclose(result.hhi, herfindahl(notional), rtol=1e-12, atol=1e-15)
    threshold = simm_thresholds(notional, 2_000.0, open_interest(notional), None, None, None, None, 0.0)
    simm = simm_add_on(notional, result.terms["market_risk"], threshold, state.vol)
    np.testing.assert_allclose(result.term_by_asset["concentration"], simm, rtol=1e-12, atol=1e-12)
    for name, by_asset in result.term_by_asset.items():
        np.testing.assert_allclose(result.terms[name], by_asset.sum(axis=1), rtol=1e-12, atol=1e-12, err_msg=name)
        held_sums = result.held.row_sums(result.held_terms[name])
        np.testing.assert_array_equal(result.terms[name], held_sums, err_msg=name)
    assert np.count_nonzero(result.term_by_asset["concentration"]) > 0  # a real split compared
