"""Cross, isolated and multi-venue accounts (DESIGN.md factor 11; docs/model.md, "Cross, isolated and
multi-venue accounts"): venue tags through JSON and Parquet, the remote-gain haircut by hand, IM blind to
the tag, isolated sub-accounts on their own collateral, and the per-parent rollup."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import solvent
from solvent.cli import main
from solvent.convert.inputs import load_portfolio, portfolio_to_book
from solvent.engine.book import HOME_VENUE, book_from_arrow, book_to_arrow
from solvent.engine.equity import position_value, position_value_numpy
from solvent.engine.rollup import parent_rollup
from solvent.errors import InputError
from solvent.formats.io import INSTRUMENTS_KEY, SCHEMA_KEY, write_portfolio_parquet
from solvent.formats.schemas import PORTFOLIO_SCHEMA, Account, Instrument, MarketSnapshot, Portfolio, Position
from solvent.market.state import build_market_state
from solvent.params import MarginParams, VenueParams

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
INSTRUMENTS = [
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
]
MARKET = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={
        "BTC": solvent.AssetQuote(price=100.0, vol=0.5),
        "ETH": solvent.AssetQuote(price=10.0, vol=0.6),
        "USDC": solvent.AssetQuote(price=1.0, vol=0.0),
    },
)


def perp(quantity: float, entry: float, venue: str | None = None, instrument: str = "BTC-PERP") -> Position:
    return Position(instrument=instrument, quantity=quantity, entry_price=entry, venue=venue)


def book_of(*accounts: Account) -> solvent.Book:
    return portfolio_to_book(Portfolio(schema=PORTFOLIO_SCHEMA, instruments=INSTRUMENTS, accounts=list(accounts)))


def tagged_portfolio() -> Portfolio:
    return Portfolio(
        schema=PORTFOLIO_SCHEMA,
        instruments=INSTRUMENTS,
        accounts=[
            Account(
                id="a", collateral={"USDC": 1000.0}, positions=[perp(1.0, 90.0), perp(-2.0, 9.0, "dex-b", "ETH-PERP")]
            ),
            Account(id="b", positions=[perp(0.5, 95.0, "cex-a")]),
            Account(id="c"),
            Account(id="a/iso", mode="isolated", parent="a", positions=[perp(1.0, 99.0, "dex-b")]),
        ],
    )


# --- formats -----------------------------------------------------------------------------------------------------


def test_json_venue_tags_reach_the_book() -> None:
    portfolio = tagged_portfolio()
    assert msgspec.json.decode(msgspec.json.encode(portfolio), type=Portfolio) == portfolio
    book = portfolio_to_book(portfolio)
    assert book.venues == ("cex-a", "dex-b")
    np.testing.assert_array_equal(book.pos_venue, [HOME_VENUE, 1, 0, 1])


def test_json_without_venue_is_home() -> None:
    book = load_portfolio(EXAMPLES / "portfolio.json")
    assert book.venues == ()
    assert (book.pos_venue == HOME_VENUE).all() and book.pos_venue.shape == book.pos_quantity.shape


def test_arrow_and_parquet_round_trip_keep_venues(tmp_path: Path) -> None:
    book = portfolio_to_book(tagged_portfolio())
    table = book_to_arrow(book)
    assert table.column("positions").combine_chunks().flatten().field("venue").to_pylist() == [
        None,
        "dex-b",
        "cex-a",
        "dex-b",
    ]
    again = book_from_arrow(table, book.instruments, "<test>")
    path = tmp_path / "portfolio.parquet"
    write_portfolio_parquet(book.instruments, table, path)
    loaded = load_portfolio(path)
    for other in (again, loaded):
        assert other.venues == book.venues
        np.testing.assert_array_equal(other.pos_venue, book.pos_venue)
        assert other.pos_venue.dtype == np.int32


OLD_POSITION = pa.struct([("instrument", pa.string()), ("quantity", pa.float64()), ("entry_price", pa.float64())])
OLD_SCHEMA = pa.schema([("id", pa.string()), ("positions", pa.list_(OLD_POSITION))])


def write_raw(path: Path, rows: list[dict[str, Any]], schema: pa.Schema = OLD_SCHEMA) -> Path:
    """A Parquet file as another tool (or an older solvent) writes it: no cast to today's schema."""
    metadata = {SCHEMA_KEY: PORTFOLIO_SCHEMA.encode(), INSTRUMENTS_KEY: msgspec.json.encode(INSTRUMENTS)}
    pq.write_table(pa.Table.from_pylist(rows, schema=schema).replace_schema_metadata(metadata), path)
    return path


def test_old_parquet_without_venue_loads_at_home(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "positions": [{"instrument": "BTC-PERP", "quantity": 1.0, "entry_price": 90.0}]},
        {"id": "b", "positions": [{"instrument": "ETH-PERP", "quantity": -1.0, "entry_price": 9.0}] * 2},
    ]
    book = load_portfolio(write_raw(tmp_path / "old.parquet", rows))
    assert book.venues == ()
    np.testing.assert_array_equal(book.pos_venue, [HOME_VENUE] * 2)
    np.testing.assert_array_equal(book.pos_quantity, [1.0, -2.0])  # b's two equal positions merged (item 16)


def position_schema(venue_type: pa.DataType) -> pa.Schema:
    position = pa.struct([*OLD_POSITION, ("venue", venue_type)])
    return pa.schema([("id", pa.string()), ("positions", pa.list_(position))])


def test_parquet_venue_of_another_type_is_refused(tmp_path: Path) -> None:
    rows = [{"id": "a", "positions": [{"instrument": "BTC-PERP", "quantity": 1.0, "entry_price": 90.0, "venue": 3}]}]
    path = write_raw(tmp_path / "bad.parquet", rows, position_schema(pa.int64()))
    with pytest.raises(InputError, match=r"positions\.venue: expected a string"):
        load_portfolio(path)


def test_parquet_empty_venue_is_named(tmp_path: Path) -> None:
    good = {"instrument": "BTC-PERP", "quantity": 1.0, "entry_price": 90.0, "venue": "x"}
    rows = [{"id": "a", "positions": [good]}, {"id": "b", "positions": [good, {**good, "venue": ""}]}]
    path = write_raw(tmp_path / "bad.parquet", rows, position_schema(pa.string()))
    with pytest.raises(InputError, match=r"accounts\[1\]\.positions\[1\]\.venue: must be a non-empty name"):
        load_portfolio(path)


@pytest.mark.parametrize("venue", [3, True, ["dex-b"], ""], ids=["int", "bool", "list", "empty"])
def test_bad_venue_in_json_is_exit_2_naming_the_field(tmp_path: Path, venue: Any) -> None:
    document = json.loads((EXAMPLES / "portfolio.json").read_text())
    document["accounts"][2]["positions"][1]["venue"] = venue
    bad = tmp_path / "portfolio.json"
    bad.write_text(json.dumps(document))
    result = CliRunner().invoke(
        main, ["margin", "--portfolio", str(bad), "--market", str(EXAMPLES / "market.json"), "--format", "json"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {bad}") and "accounts[2].positions[1].venue" in lines[0], lines[0]


# --- equity and margin -------------------------------------------------------------------------------------------


def margin(book: solvent.Book, haircut: float = 0.5) -> solvent.MarginResult:
    return solvent.compute_margin(book, MARKET, MarginParams(venues=VenueParams(remote_pnl_haircut=haircut)))


@pytest.mark.parametrize("haircut", [0.0, 0.3, 0.5, 1.0])
def test_remote_gain_is_haircut_and_remote_loss_counts_in_full(haircut: float) -> None:
    # Home BTC long from 90 (+10), remote ETH short from 12 (+2 x 2 = +4), remote BTC long from 110 (-10).
    account = Account(
        id="a",
        collateral={"USDC": 1000.0},
        positions=[perp(1.0, 90.0), perp(-2.0, 12.0, "dex-b", "ETH-PERP"), perp(1.0, 110.0, "cex-a")],
    )
    row = margin(book_of(account), haircut).row("a")
    expected = 1000.0 + 10.0 + (1.0 - haircut) * 4.0 - 10.0
    assert math.isclose(row["unrealised_pnl"], expected - 1000.0, rel_tol=1e-12)
    assert math.isclose(row["equity"], expected, rel_tol=1e-12)


def test_a_remote_gain_does_not_offset_a_remote_loss_at_full_value() -> None:
    # Two remote BTC positions: +10 and -10. Per position: 10 x (1 - h) - 10 < 0.
    account = Account(id="a", positions=[perp(1.0, 90.0, "x"), perp(1.0, 110.0, "x")])
    assert math.isclose(margin(book_of(account), 0.5).row("a")["unrealised_pnl"], -5.0, rel_tol=1e-12)


@pytest.mark.parametrize("venue", ["dex-b", "cex-a"])
def test_im_and_mm_do_not_depend_on_the_venue_tag(venue: str) -> None:
    home = Account(
        id="home", collateral={"USDC": 50.0}, positions=[perp(1.0, 90.0), perp(-3.0, 11.0, None, "ETH-PERP")]
    )
    away = Account(
        id="away", collateral={"USDC": 50.0}, positions=[perp(1.0, 90.0, venue), perp(-3.0, 11.0, None, "ETH-PERP")]
    )
    result = margin(book_of(home, away))
    assert result.im[0] > 0.0
    assert result.im[0] == result.im[1] and result.mm[0] == result.mm[1]
    for name, values in result.terms.items():
        assert values[0] == values[1], name


def test_positions_at_two_venues_are_margined_together() -> None:
    hedged = Account(id="hedged", positions=[perp(1.0, 100.0), perp(-1.0, 100.0, "dex-b")])
    result = margin(book_of(hedged, Account(id="flat")))
    assert result.terms["market_risk"][0] == pytest.approx(0.0, abs=1e-9)
    assert result.im[0] == pytest.approx(result.im[1], abs=1e-9)


def test_isolated_sub_account_is_margined_on_its_own_collateral() -> None:
    parent = Account(id="p", collateral={"USDC": 10_000.0}, positions=[perp(-1.0, 100.0)])
    child = Account(id="p/iso", mode="isolated", parent="p", collateral={"USDC": 5.0}, positions=[perp(2.0, 103.0)])
    alone = Account(id="alone", collateral={"USDC": 5.0}, positions=[perp(2.0, 103.0)])
    result = margin(book_of(parent, child, alone))
    iso, own, solo = result.row("p/iso"), result.row("p"), result.row("alone")
    assert iso["equity"] == pytest.approx(5.0 + 2.0 * (100.0 - 103.0))  # the parent's 10,000 USDC is not in it
    assert own["equity"] == pytest.approx(10_000.0)  # nor is the child's collateral in the parent's
    assert iso["im"] == solo["im"] and iso["mm"] == solo["mm"]  # no offset against the parent's short
    assert iso["liquidatable"] and not own["liquidatable"]


def test_parent_rollup_adds_up_isolated_sub_accounts() -> None:
    accounts = [
        Account(id="p", collateral={"USDC": 1000.0}),
        Account(id="q"),
        Account(id="q/1", mode="isolated", parent="q", collateral={"USDC": 7.0}, positions=[perp(1.0, 100.0)]),
        Account(id="p/1", mode="isolated", parent="p", collateral={"USDC": 3.0}, positions=[perp(-1.0, 100.0)]),
        Account(id="p/2", mode="isolated", parent="p", collateral={"USDC": 500.0}, positions=[perp(2.0, 95.0)]),
    ]
    result = margin(book_of(*accounts))
    rollup = parent_rollup(result)
    assert list(rollup.parent_ids) == ["q", "p"]
    np.testing.assert_array_equal(rollup.n_isolated, [1, 2])
    np.testing.assert_allclose(rollup.im, [result.im[2], result.im[3] + result.im[4]], rtol=1e-15)
    np.testing.assert_allclose(rollup.mm, [result.mm[2], result.mm[3] + result.mm[4]], rtol=1e-15)
    np.testing.assert_allclose(rollup.equity, [7.0, 3.0 + 500.0 + 10.0], rtol=1e-15)
    np.testing.assert_array_equal(rollup.short, [int(result.liquidatable[2]), int(result.liquidatable[3:].sum())])
    assert rollup.to_arrow().num_rows == 2


def test_parent_rollup_of_a_book_without_isolated_accounts_is_empty() -> None:
    assert parent_rollup(margin(book_of(Account(id="a")))).n_parents == 0


def test_margin_table_notes_isolated_totals(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.json"
    path.write_bytes(msgspec.json.encode(tagged_portfolio()))
    market = tmp_path / "market.json"
    market.write_bytes(msgspec.json.encode(MARKET))
    result = CliRunner().invoke(main, ["margin", "--portfolio", str(path), "--market", str(market)])
    assert result.exit_code == 0, result.output
    assert "note: a has 1 isolated sub-account(s), margined on their own collateral" in result.output


@pytest.mark.parametrize("haircut", [0.0, 0.25, 1.0])
def test_position_value_kernel_agrees_with_twin_on_remote_positions(haircut: float) -> None:
    rng = np.random.default_rng(3)
    n = 200
    accounts = [
        Account(
            id=f"a{k}",
            positions=[
                perp(float(rng.normal()), float(rng.uniform(80, 120)), [None, "x", "y"][int(rng.integers(3))])
                for _ in range(int(rng.integers(0, 5)))
            ],
        )
        for k in range(n)
    ]
    book = book_of(*accounts)
    state = build_market_state(list(book.instruments), MARKET, MarginParams())
    unit_value = np.zeros(len(book.instruments))
    np.testing.assert_allclose(
        position_value(book, state, unit_value, haircut),
        position_value_numpy(book, state, unit_value, haircut),
        rtol=1e-13,
        atol=1e-9,
    )


# --- the demo market ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("asset", ["BTC", "ETH", "SOL"])
def test_demo_depth_is_a_six_level_book_through_the_parametric_sizes(asset: str) -> None:
    from solvent.demo.run import DEMO_DEPTH, _demo_depth

    depth, vol_spread = _demo_depth(asset)
    spread, depth_1pct, depth_2pct, expected_vol_spread = DEMO_DEPTH[asset]
    assert depth is not None and depth.spread is None and vol_spread == expected_vol_spread
    assert depth.bid == depth.ask
    assert depth.bid is not None and len(depth.bid) == 6
    assert depth.bid[0][0] == spread / 2.0
    assert dict(depth.bid)[0.01] == depth_1pct and dict(depth.bid)[0.02] == depth_2pct


def test_demo_market_file_carries_depth_curves_and_several_sources(tmp_path: Path) -> None:
    from solvent.demo.run import demo_history, demo_market, demo_params

    market = demo_market(demo_history(7), demo_params())
    for name in ("BTC", "ETH", "SOL"):
        quote = market.assets[name]
        assert quote.depth is not None and quote.depth.bid is not None and quote.depth.ask is not None
    assert all(len(quote.sources) >= 3 for quote in market.assets.values())
    path = tmp_path / "market.json"
    path.write_bytes(msgspec.json.encode(market))
    assert solvent.load_market(path) == market
