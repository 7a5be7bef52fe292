"""The public surface is deliberate: this test pins it, so a change to it is a visible decision."""

from __future__ import annotations

import solvent

EXPECTED = {
    "Account",
    "AssetQuote",
    "Book",
    "Greeks",
    "InputError",
    "Instrument",
    "MarginParams",
    "MarginResult",
    "MarketSnapshot",
    "ModelError",
    "Portfolio",
    "Position",
    "PriceHistory",
    "SolventError",
    "StreamEngine",
    "VolSurface",
    "baseline_margin_for",
    "black76_greeks",
    "black76_price",
    "book_from_tables",
    "calibrate_asset_vols",
    "compute_margin",
    "explain_margin",
    "load_market",
    "load_params",
    "load_portfolio",
    "read_history",
    "portfolio_to_book",
    "synthetic_history",
    "write_history",
    "write_portfolio_parquet",
}


def test_public_surface_is_pinned() -> None:
    assert set(solvent.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in solvent.__all__:
        assert getattr(solvent, name) is not None, name


def test_notebook_round_trip(examples_dir) -> None:  # type: ignore[no-untyped-def]
    book = solvent.load_portfolio(examples_dir / "portfolio.json")
    market = solvent.load_market(examples_dir / "market.json")
    result = solvent.compute_margin(book, market)
    frame = result.to_pandas()
    assert list(frame.index) == ["alice", "alice/eth-short", "bob", "carol", "dave", "erin"]
    assert (frame["im"] >= frame["mm"]).all()
    assert frame.loc["dave", "liquidatable"]  # long 30 ETH from 3,600 at 3,400 on 5,000 USDC: equity < 0
    assert frame.loc["dave", "equity"] == 5_000 + 30 * (3_400 - 3_600)


def test_config_and_records_are_keyword_only() -> None:
    """msgspec applies kw_only per class: every section and record must say it, or positional calls slip in."""
    import pytest

    with pytest.raises(TypeError):
        solvent.MarginParams("es")  # type: ignore[misc]
    with pytest.raises(TypeError):
        solvent.AssetQuote(95_000.0)  # type: ignore[misc]


def test_import_solvent_loads_no_engine() -> None:
    """issue 14 item 7: `import solvent` (and so `solvent --help`'s package import) loads neither numba nor the
    streaming engine; a name loads its module when first used."""
    import subprocess
    import sys

    code = (
        "import sys, solvent; heavy = [m for m in ('numba', 'scipy', 'solvent.stream.engine') if m in sys.modules]; "
        "assert not heavy, heavy; solvent.Portfolio; assert 'solvent.formats.schemas' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
