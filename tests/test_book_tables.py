"""issue 14 item 9: a Book from flat tables of positions and collateral (pandas or Arrow), the same as the
portfolio file's; concise reprs of Book and MarginResult."""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from example_files import EXAMPLES
from example_files import portfolio as example_portfolio

import solvent
from solvent.convert.inputs import portfolio_to_book
from solvent.errors import InputError


def example_market() -> solvent.MarketSnapshot:
    return solvent.load_market(EXAMPLES / "market.json")


def _tables() -> tuple[solvent.Portfolio, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    portfolio = msgspec.convert(example_portfolio(), solvent.Portfolio)
    positions = pd.DataFrame(
        [
            {"account": a.id, "instrument": p.instrument, "quantity": p.quantity, "entry_price": p.entry_price}
            for a in reversed(portfolio.accounts)  # any row order
            for p in a.positions
        ]
    )
    collateral = pd.DataFrame(
        [{"account": a.id, "asset": k, "amount": v} for a in portfolio.accounts for k, v in a.collateral.items()]
    )
    accounts = pd.DataFrame(
        [{"id": a.id, "risk_tier": a.risk_tier, "mode": a.mode, "parent": a.parent} for a in portfolio.accounts]
    )
    return portfolio, positions, collateral, accounts


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_a_book_from_flat_tables_margins_as_the_portfolio_file(kind: str) -> None:
    portfolio, positions, collateral, accounts = _tables()
    assert (accounts["mode"] == "isolated").any()  # the example's sub-account: its mode and parent must carry
    if kind == "arrow":
        positions, collateral, accounts = (pa.Table.from_pandas(t) for t in (positions, collateral, accounts))
    book = solvent.book_from_tables(portfolio.instruments, positions, collateral, accounts)
    reference = portfolio_to_book(portfolio)
    market = example_market()
    got = solvent.compute_margin(book, market, solvent.MarginParams())
    want = solvent.compute_margin(reference, market, solvent.MarginParams())
    order = np.argsort(want.account_ids)
    assert list(got.account_ids) == sorted(want.account_ids)
    np.testing.assert_array_equal(got.im, want.im[order])
    np.testing.assert_array_equal(got.equity, want.equity[order])


def test_a_bad_table_names_its_column() -> None:
    portfolio, positions, _, _ = _tables()
    with pytest.raises(InputError, match="quantity"):
        solvent.book_from_tables(portfolio.instruments, positions.drop(columns="quantity"))
    with pytest.raises(InputError, match=r"leverage: unknown column"):
        solvent.book_from_tables(portfolio.instruments, positions.assign(leverage=3.0))
    with pytest.raises(InputError, match="NOPE"):
        solvent.book_from_tables(portfolio.instruments, positions.assign(instrument="NOPE"))


def test_book_and_result_print_in_a_line_and_as_html() -> None:
    portfolio, positions, collateral, accounts = _tables()
    book = solvent.book_from_tables(portfolio.instruments, positions, collateral, accounts)
    result = solvent.compute_margin(book, example_market(), solvent.MarginParams())
    for thing in (book, result):
        text = repr(thing)
        assert "\n" not in text and len(text) < 300, text
        assert "<table" in thing._repr_html_()
    assert f"{book.n_accounts} accounts" in repr(book)
    assert f"{result.im.sum():,.0f}" in repr(result)
