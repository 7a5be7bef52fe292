"""A CRIF from a solvent portfolio, so that any book can be margined by SIMM beside the multi-factor model.

SIMM has no crypto risk class; `CryptoMapping` says where crypto goes (docs/simm.md, "Crypto mapping"):
- "equity" (default): Risk_Equity / Risk_EquityVol, qualifier = the asset, in a chosen equity bucket
  (default "Residual": the highest risk weight and no diversification with other names' buckets);
- "fx": Risk_FX / Risk_FXVol, qualifier = the asset as a currency (vol qualifier ASSET + "USD"); SIMM then
  weighs it as a regular currency unless the calibration puts it in the high-volatility group
  (`calibration.with_high_volatility`, `solvent simm --high-vol-fx BTC,ETH`).

Sensitivities come from the core's Greeks per account and asset: delta = net delta x price / 100 (USD per
1% move, CRIF's convention), vega = net vega per vol point x implied volatility x 100 (USD, vega x sigma),
all on one vol tenor (the core nets vega across expiries). Quote and stable assets (USD, USDC, ...) are
skipped. Each account is one CRIF portfolio.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from solvent.api import compute_margin
from solvent.engine.book import Book
from solvent.errors import InputError
from solvent.formats.schemas import MarketSnapshot
from solvent.params import MarginParams
from solvent.simm.calibration import TENORS
from solvent.simm.crif import CrifRecord

CRIF_HEADER = (
    "TradeID", "PortfolioID", "ProductClass", "RiskType", "Qualifier", "Bucket", "Label1", "Label2",
    "AmountCurrency", "Amount", "AmountUSD", "collect_regulations", "post_regulations",
)  # fmt: skip
_EQUITY_BUCKETS = (*(str(b) for b in range(1, 13)), "Residual")


@dataclass(frozen=True, kw_only=True)
class CryptoMapping:
    """Where crypto assets go in SIMM: the equity risk class (with a bucket) or FX."""

    risk_class: Literal["equity", "fx"] = "equity"
    equity_bucket: str = "Residual"
    vega_tenor: str = "6m"
    skip_assets: tuple[str, ...] = ("USD", "USDC", "USDT", "DAI")
    regulations: str = ""

    def __post_init__(self) -> None:
        if self.risk_class not in ("equity", "fx"):
            raise InputError("", "mapping.risk_class", f"must be 'equity' or 'fx', not {self.risk_class!r}")
        if self.equity_bucket not in _EQUITY_BUCKETS:
            raise InputError("", "mapping.equity_bucket", f"must be 1..12 or Residual, not {self.equity_bucket!r}")
        if self.vega_tenor not in TENORS:
            raise InputError("", "mapping.vega_tenor", f"must be one of {', '.join(TENORS)}, not {self.vega_tenor!r}")


def crif_from_portfolio(
    book: Book, market: MarketSnapshot, mapping: CryptoMapping | None = None, params: MarginParams | None = None
) -> list[CrifRecord]:
    """CRIF records (delta and vega per account and asset) from the core's Greeks at `market`."""
    mapping = mapping or CryptoMapping()
    result = compute_margin(book, market, params)
    equity = mapping.risk_class == "equity"
    product_class = "Equity" if equity else "RatesFX"
    records: list[CrifRecord] = []
    for a, asset in enumerate(result.assets):
        if asset in mapping.skip_assets:
            continue
        quote = market.assets[asset]
        vol = quote.implied_vol if quote.implied_vol is not None else quote.vol
        for n, account in enumerate(result.account_ids):
            delta, _gamma, vega = (float(g) for g in result.greeks[n, a])
            rows = [
                ("Risk_Equity" if equity else "Risk_FX", asset, "", delta * quote.price / 100.0),
                (
                    "Risk_EquityVol" if equity else "Risk_FXVol",
                    asset if equity else asset + "USD",
                    mapping.vega_tenor,
                    vega * (float(vol) if vol is not None else 0.0) * 100.0,
                ),
            ]
            for risk_type, qualifier, label1, amount in rows:
                if amount != 0.0:
                    records.append(
                        CrifRecord(
                            trade_id="",
                            portfolio=str(account),
                            product_class=product_class,
                            risk_type=risk_type,
                            qualifier=qualifier,
                            bucket=mapping.equity_bucket if equity else "",
                            label1=label1,
                            label2="",
                            amount=amount,
                            amount_usd=amount,
                            collect_regulations=mapping.regulations,
                            post_regulations=mapping.regulations,
                        )
                    )
    return records


def crif_csv(records: Sequence[CrifRecord]) -> str:
    """CRIF records as a CSV file (AmountUSD filled, amounts in USD)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CRIF_HEADER)
    for r in records:
        writer.writerow(
            [r.trade_id, r.portfolio, r.product_class, r.risk_type, r.qualifier, r.bucket, r.label1, r.label2, "USD",
             repr(r.amount), repr(r.amount_usd), r.collect_regulations, r.post_regulations]
        )  # fmt: skip
    return buffer.getvalue()
