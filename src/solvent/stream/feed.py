"""The feed: what the streaming engine consumes (`solvent.feed/1`), one record per input event.

A feed is a sequence of records, each with a sequence number `seq` (strictly increasing) and a `time`
(UTC, non-decreasing): oracle quotes, fills, deposits and withdrawals, book-depth and volatility
changes, and parameter changes. Records are tagged by `type`. A malformed record or a broken order is
bad input (InputError naming the file, the record and the field); a well-formed record the venue must
refuse (an unknown account, a fill for an unknown instrument, a quote stamped in the future, a
withdrawal the account cannot afford) is applied as a documented rejection event instead, leaving the
state untouched (docs/formats.md, "solvent.feed/1").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec

from solvent.formats.schemas import (
    MAX_PRICE,
    Identifier,
    NonNegativeAmount,
    PositiveAmount,
    PositiveVol,
    Price,
    Quantity,
    Scale,
)
from solvent.params import MarginParams

FEED_SCHEMA: Final = "solvent.feed/1"

Sequence = Annotated[int, msgspec.Meta(ge=0, description="the record's sequence number, strictly increasing")]
Time = Annotated[datetime, msgspec.Meta(tz=True, description="a date-time with a time zone")]


class _FeedRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of every feed record: its sequence number and the time the venue received it."""

    seq: Sequence
    time: Time


class Quote(_FeedRecord, frozen=True, kw_only=True, tag="quote"):
    """An oracle price for `asset`. With `source`, one source's quote, aggregated with the asset's other
    sources (median, outlier rejection, staleness: docs/model.md, "Oracle uncertainty"); without, the price
    itself. `timestamp`: when the source published it (default: `time`); later than `time` plus
    `oracle.future_tolerance_s` is rejected."""

    asset: Identifier
    price: Price
    source: Identifier | None = None
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_PRICE)] = 0.0
    timestamp: Time | None = None


class Fill(_FeedRecord, frozen=True, kw_only=True, tag="fill"):
    """A trade of `account`: `quantity` contracts of `instrument` (positive buys) at `price`, USD per unit of
    the underlying (a linear product's price; an option's premium per unit; a contract is `contract_size`
    units), paying `fee` USD."""

    account: Identifier
    instrument: Identifier
    quantity: Quantity
    price: Price
    fee: NonNegativeAmount = 0.0

    def __post_init__(self) -> None:
        if self.quantity == 0.0:
            raise ValueError("quantity: a fill trades a non-zero quantity")


class Deposit(_FeedRecord, frozen=True, kw_only=True, tag="deposit"):
    """`amount` units of `asset` credited to `account`'s collateral."""

    account: Identifier
    asset: Identifier
    amount: PositiveAmount


class Withdrawal(_FeedRecord, frozen=True, kw_only=True, tag="withdrawal"):
    """`amount` units of `asset` requested out of `account`; refused unless equity stays >= IM after it."""

    account: Identifier
    asset: Identifier
    amount: PositiveAmount


class DepthChange(_FeedRecord, frozen=True, kw_only=True, tag="depth"):
    """The order book of `asset` now holds `scale` times the snapshot's depth at every distance
    (0.5: half the depth)."""

    asset: Identifier
    scale: Scale


class VolChange(_FeedRecord, frozen=True, kw_only=True, tag="vol"):
    """A new volatility for `asset` (annualised): the scenarios are rebuilt and every account re-margined."""

    asset: Identifier
    vol: PositiveVol


class ParamsChange(_FeedRecord, frozen=True, kw_only=True, tag="params"):
    """New model parameters (a whole `solvent.params/1` document): every account is re-margined."""

    params: MarginParams


FeedRecord = Quote | Fill | Deposit | Withdrawal | DepthChange | VolChange | ParamsChange
