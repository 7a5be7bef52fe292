"""A CRIF from a solvent portfolio (examples/), under both crypto mappings, and SIMM on it.

Independent check: an account holding only 2 BTC of delta (alice in examples/portfolio.json) has a CRIF
delta of 2 x 95,000 / 100 = 1,900 USD per 1%, and a SIMM of RW x 1,900 (no concentration at this size),
with RW the calibration file's equity Residual weight or its FX regular-vs-high-volatility weight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import solvent
from solvent.errors import InputError
from solvent.simm import calculate, load_calibration, parse_crif
from solvent.simm.calibration import with_high_volatility
from solvent.simm.crypto import CryptoMapping, crif_csv, crif_from_portfolio

ROOT = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def inputs() -> tuple[solvent.Book, solvent.MarketSnapshot]:
    return solvent.load_portfolio(ROOT / "portfolio.json"), solvent.load_market(ROOT / "market.json")


def test_equity_mapping(inputs: tuple[solvent.Book, solvent.MarketSnapshot]) -> None:
    records = crif_from_portfolio(*inputs, CryptoMapping())
    alice = [r for r in records if r.portfolio == "alice"]
    assert [(r.risk_type, r.qualifier, r.bucket, r.amount) for r in alice] == [
        ("Risk_Equity", "BTC", "Residual", 1900.0)
    ]
    cal = load_calibration("2.6", 10)
    report = calculate(records, cal)
    weight = cal.bucket_weights["Risk_Equity"][("Residual", "", "")]
    assert report.result("Call", "alice", "Unspecified").total == pytest.approx(weight * 1900.0, rel=1e-12)


def test_fx_mapping_uses_the_high_volatility_weight(inputs: tuple[solvent.Book, solvent.MarketSnapshot]) -> None:
    mapping = CryptoMapping(risk_class="fx")
    records = crif_from_portfolio(*inputs, mapping)
    cal = with_high_volatility(load_calibration("2.6", 10), ["BTC", "ETH"])
    report = calculate(records, cal)
    assert report.result("Call", "alice", "Unspecified").total == pytest.approx(14.7 * 1900.0, rel=1e-12)  # 2.6 FX
    regular = calculate(records, load_calibration("2.6", 10))
    assert regular.result("Call", "alice", "Unspecified").total == pytest.approx(7.4 * 1900.0, rel=1e-12)


def test_vega_is_vega_times_vol(inputs: tuple[solvent.Book, solvent.MarketSnapshot]) -> None:
    book, market = inputs
    result = solvent.compute_margin(book, market)
    records = crif_from_portfolio(book, market, CryptoMapping(vega_tenor="1y"))
    vega = {(r.portfolio, r.qualifier): r.amount for r in records if r.risk_type == "Risk_EquityVol"}
    assert vega  # the example book holds options
    for (account, asset), amount in vega.items():
        n, a = list(result.account_ids).index(account), result.assets.index(asset)
        assert amount == pytest.approx(result.greeks[n, a, 2] * market.assets[asset].implied_vol * 100.0)


def test_crif_csv_round_trips(inputs: tuple[solvent.Book, solvent.MarketSnapshot]) -> None:
    records = crif_from_portfolio(*inputs)
    assert parse_crif(crif_csv(records)) == records


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"risk_class": "rates"}, "risk_class"),
        ({"equity_bucket": "13"}, "equity_bucket"),
        ({"vega_tenor": "7y"}, "vega_tenor"),
    ],
)
def test_bad_mapping_is_input_error(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InputError, match=f"mapping.{field}"):
        CryptoMapping(**kwargs)  # type: ignore[arg-type]
