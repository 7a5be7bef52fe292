"""A synthetic venue: BTC/ETH/SOL spot, perpetuals, dated futures, an option chain, and accounts.

Account archetypes and their shares (illustrative, documented in docs/model.md "Demo venue"):
directional perpetual traders (55%; leverage lognormal, median 1.8x, sigma 0.5, within 1x..50x), basis traders
(15%; long spot or future against a short perpetual), option sellers (12%; short strangles
5-20% out of the money), option buyers (10%), and multi-asset market makers (8%; 8 to 16
random positions across everything, signs drawn at random). Collateral is USDC; a fifth of all
accounts hold half of it in BTC or ETH instead. Positions are generated as arrays, never account by
account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from solvent.engine.book import CROSS, Book, canonical_book
from solvent.formats.schemas import Instrument

FloatArray = NDArray[np.float64]
ASSETS = ("BTC", "ETH", "SOL")
#: Strike grid as multiples of the spot price, per option expiry.
STRIKE_MULTIPLES = (0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3)
OPTION_DAYS = (7, 30, 90)
FUTURE_DAYS = (30, 90)


def expiry_at(now: datetime, days: int) -> datetime:
    return (now + timedelta(days=days)).replace(hour=8, minute=0, second=0, microsecond=0)


def _round_strike(value: float) -> float:
    magnitude = 10 ** max(0, int(np.floor(np.log10(value))) - 2)
    return float(round(value / magnitude) * magnitude)


def venue_instruments(now: datetime, prices: dict[str, float]) -> tuple[Instrument, ...]:
    """Spot, perpetual, two dated futures and a 3-expiry x 9-strike call/put chain per asset."""
    out: list[Instrument] = []
    for asset in ASSETS:
        out.append(Instrument(id=f"{asset}-SPOT", kind="spot", underlying=asset))
        out.append(Instrument(id=f"{asset}-PERP", kind="perp", underlying=asset))
        for days in FUTURE_DAYS:
            expiry = expiry_at(now, days)
            out.append(
                Instrument(id=f"{asset}-{expiry:%d%b%y}".upper(), kind="future", underlying=asset, expiry=expiry)
            )
        for days in OPTION_DAYS:
            expiry = expiry_at(now, days)
            for multiple in STRIKE_MULTIPLES:
                strike = _round_strike(prices[asset] * multiple)
                for option_type in ("call", "put"):
                    out.append(
                        Instrument(
                            id=f"{asset}-{expiry:%d%b%y}-{strike:g}-{option_type[0]}".upper(),
                            kind="option",
                            underlying=asset,
                            expiry=expiry,
                            strike=strike,
                            option_type=option_type,
                        )
                    )
    return tuple(out)


@dataclass(frozen=True)
class _Legs:
    """Positions of one archetype as flat arrays (account, instrument, quantity)."""

    account: NDArray[np.int64]
    instrument: NDArray[np.int64]
    quantity: FloatArray


def synthetic_book(instruments: tuple[Instrument, ...], prices: dict[str, float], n_accounts: int, seed: int) -> Book:
    """A venue of `n_accounts` accounts over `instruments` (as made by `venue_instruments`)."""
    rng = np.random.default_rng(seed)
    ids = [inst.id for inst in instruments]
    index = {name: i for i, name in enumerate(ids)}
    kind = np.array([inst.kind for inst in instruments])
    underlying = np.array([inst.underlying for inst in instruments])
    price = np.array([prices[a] for a in ASSETS])
    notional_scale = rng.lognormal(np.log(20_000.0), 1.3, n_accounts)  # USD per account, heavy-tailed
    archetype = rng.choice(5, size=n_accounts, p=[0.55, 0.15, 0.12, 0.10, 0.08])
    asset_of = rng.choice(3, size=n_accounts, p=[0.5, 0.35, 0.15])
    legs: list[_Legs] = []
    collateral_usd = np.zeros(n_accounts)

    def add(accounts: NDArray[np.int64], instrument: NDArray[np.int64], quantity: FloatArray) -> None:
        legs.append(_Legs(accounts, instrument, quantity))

    perp = np.array([index[f"{a}-PERP"] for a in ASSETS])
    spot = np.array([index[f"{a}-SPOT"] for a in ASSETS])

    # Directional perpetual traders.
    acc = np.flatnonzero(archetype == 0)
    side = rng.choice([-1.0, 1.0], size=acc.size, p=[0.45, 0.55])
    units = notional_scale[acc] / price[asset_of[acc]]
    add(acc, perp[asset_of[acc]], side * units)
    leverage = np.clip(rng.lognormal(np.log(1.8), 0.5, acc.size), 1.0, 50.0)
    collateral_usd[acc] = notional_scale[acc] / leverage
    second = acc[rng.random(acc.size) < 0.3]
    other = (asset_of[second] + 1 + rng.integers(0, 2, second.size)) % 3
    add(second, perp[other], rng.choice([-1.0, 1.0], second.size) * notional_scale[second] * 0.5 / price[other])

    # Basis traders: long spot or the nearest future, short the perpetual.
    acc = np.flatnonzero(archetype == 1)
    units = notional_scale[acc] / price[asset_of[acc]]
    use_future = rng.random(acc.size) < 0.4
    near_future = perp + 1  # venue_instruments lists the nearest future right after the perpetual
    long_leg = np.where(use_future, near_future[asset_of[acc]], spot[asset_of[acc]])
    add(acc, long_leg, units)
    add(acc, perp[asset_of[acc]], -units * rng.uniform(0.95, 1.05, acc.size))
    collateral_usd[acc] = notional_scale[acc] * rng.uniform(0.08, 0.3, acc.size)

    options = np.flatnonzero(kind == "option")
    opt_asset = np.array([ASSETS.index(u) for u in underlying[options]])
    strikes = np.array([instruments[i].strike or 0.0 for i in options])
    is_call = np.array([instruments[i].option_type == "call" for i in options])
    moneyness = strikes / price[opt_asset]

    def pick(assets: NDArray[np.int64], want_call: bool, lo: float, hi: float) -> NDArray[np.int64]:
        """A random option per account on its asset, of one type, with strike/spot in [lo, hi]."""
        out = np.empty(assets.size, dtype=np.int64)
        for a in range(3):
            rows = np.flatnonzero(assets == a)
            pool = options[(opt_asset == a) & (is_call == want_call) & (moneyness >= lo) & (moneyness <= hi)]
            out[rows] = rng.choice(pool, size=rows.size)
        return out

    # Option sellers: short strangles, 5-20% out of the money.
    acc = np.flatnonzero(archetype == 2)
    units = notional_scale[acc] / price[asset_of[acc]]
    add(acc, pick(asset_of[acc], True, 1.05, 1.2), -units)
    add(acc, pick(asset_of[acc], False, 0.8, 0.95), -units)
    collateral_usd[acc] = notional_scale[acc] * rng.uniform(0.3, 0.8, acc.size)

    # Option buyers: a long call or put, paid for; keep a little USDC.
    acc = np.flatnonzero(archetype == 3)
    units = notional_scale[acc] / price[asset_of[acc]]
    calls = rng.random(acc.size) < 0.6
    chosen = np.where(calls, pick(asset_of[acc], True, 0.9, 1.3), pick(asset_of[acc], False, 0.7, 1.1))
    add(acc, chosen, units)
    collateral_usd[acc] = notional_scale[acc] * rng.uniform(0.01, 0.1, acc.size)

    # Market makers: 8-16 random positions over every instrument.
    acc = np.flatnonzero(archetype == 4)
    count = rng.integers(8, 17, acc.size)
    mm_acc = np.repeat(acc, count)
    mm_inst = rng.integers(0, len(instruments), mm_acc.size)
    mm_asset = np.array([ASSETS.index(u) for u in underlying])[mm_inst]
    add(mm_acc, mm_inst, rng.normal(0, 1, mm_acc.size) * notional_scale[mm_acc] * 0.3 / price[mm_asset])
    collateral_usd[acc] = notional_scale[acc] * rng.uniform(0.3, 0.8, acc.size)

    account = np.concatenate([leg.account for leg in legs])
    instrument = np.concatenate([leg.instrument for leg in legs])
    quantity = np.concatenate([leg.quantity for leg in legs])
    order = np.lexsort((instrument, account))
    account, instrument, quantity = account[order], instrument[order], quantity[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(account, minlength=n_accounts))]).astype(np.int64)
    linear = np.isin(kind[instrument], ["spot", "perp", "future"])
    inst_price = price[np.array([ASSETS.index(u) for u in underlying])][instrument]
    entry = np.where(linear, inst_price * rng.lognormal(0.0, 0.03, instrument.size), np.nan)
    entry = np.where(linear, np.round(entry, 2), np.nan)

    # Collateral: USDC, with some accounts holding part of it in BTC or ETH.
    in_crypto = rng.random(n_accounts) < 0.2
    crypto_asset = rng.integers(0, 2, n_accounts)
    usdc = np.where(in_crypto, collateral_usd * 0.5, collateral_usd)
    crypto_amount = np.where(in_crypto, collateral_usd * 0.5 / price[crypto_asset], 0.0)
    col_count = 1 + in_crypto.astype(np.int64)
    col_offsets = np.concatenate([[0], np.cumsum(col_count)]).astype(np.int64)
    col_asset = np.zeros(col_offsets[-1], dtype=np.int32)  # 0 = USDC
    col_amount = np.zeros(col_offsets[-1])
    col_amount[col_offsets[:-1]] = np.round(usdc, 2)
    crypto_rows = col_offsets[:-1][in_crypto] + 1
    col_asset[crypto_rows] = 1 + crypto_asset[in_crypto]
    col_amount[crypto_rows] = crypto_amount[in_crypto]
    width = len(str(n_accounts))
    return canonical_book(  # as `solvent margin` loads it from the written file: the same figures, bit for bit
        Book(
            instruments=instruments,
            account_ids=np.array([f"acct-{n:0{width}d}" for n in range(n_accounts)], dtype=object),
            pos_offsets=offsets,
            pos_instrument=instrument.astype(np.int32),
            pos_quantity=quantity,
            pos_entry=entry,
            collateral_assets=("USDC", "BTC", "ETH"),
            col_offsets=col_offsets,
            col_asset=col_asset,
            col_amount=col_amount,
            risk_tier=np.full(n_accounts, np.nan),
            mode=np.full(n_accounts, CROSS, dtype=np.int8),
            parent=np.full(n_accounts, None, dtype=object),
        )
    )
