"""What the streaming engine publishes (`solvent.events/1`): immutable, sequence-numbered facts, in past tense.

Every event carries its own sequence number `seq` (0, 1, 2, ... over a whole run, continued across a
saved and reloaded state), the `time` of the batch that produced it and `cause`, the sequence number of
the feed record that led to it (for a batch, its last record). Amounts are USD unless named otherwise.
The same feed and starting state give the same events, byte for byte (`encode_events`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final, Literal

import msgspec

EVENTS_SCHEMA: Final = "solvent.events/1"


class _Event(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    seq: int
    time: datetime
    cause: int


class InputRejected(_Event, frozen=True, kw_only=True, tag="InputRejected"):
    """A well-formed feed record the venue refused; the state is unchanged by it. `field` names the
    offending field of the record."""

    record: str
    field: str
    reason: str


class FillRejected(_Event, frozen=True, kw_only=True, tag="FillRejected"):
    """A fill record at an off-market price, not booked (the state is unchanged by it): `price` (USD per unit of
    the underlying) is farther from the instrument's `mark` (the same unit) than `band` (`pretrade.price_band`)
    times its forward (docs/model.md, "Pre-trade what-if")."""

    account: str
    instrument: str
    quantity: float
    price: float
    mark: float
    band: float
    reason: str


class ParametersChanged(_Event, frozen=True, kw_only=True, tag="ParametersChanged"):
    """New model parameters took effect (`digest`: SHA-256 of their canonical JSON); all accounts re-margined."""

    digest: str


class MarginCallIssued(_Event, frozen=True, kw_only=True, tag="MarginCallIssued"):
    """Equity fell below IM (but not below MM): the account must add collateral or reduce risk."""

    account: str
    equity: float
    im: float
    mm: float


class AccountBecameLiquidatable(_Event, frozen=True, kw_only=True, tag="AccountBecameLiquidatable"):
    """Equity fell below MM."""

    account: str
    equity: float
    mm: float


class AccountFlaggedEarly(_Event, frozen=True, kw_only=True, tag="AccountFlaggedEarly"):
    """The probability of breaching MM within the liquidation horizon rose above the threshold
    (predictive liquidation): the account became reduce-only."""

    account: str
    breach_probability: float
    equity: float
    mm: float
    loss_vol: float


class LiquidationExecuted(_Event, frozen=True, kw_only=True, tag="LiquidationExecuted"):
    """Part of a position was closed in the market: `quantity` contracts traded (negative sold) at
    `price`; the account paid `fee` to the insurance fund. `reason`: "maintenance" (equity < MM),
    "predictive" (an early flag with `predictive.action` "deleverage") or "bankruptcy" (a full close-out)."""

    account: str
    instrument: str
    quantity: float
    price: float
    fee: float
    reason: Literal["maintenance", "predictive", "bankruptcy"]


class AccountRecovered(_Event, frozen=True, kw_only=True, tag="AccountRecovered"):
    """Equity is back at or above IM after a margin call, a flag or a liquidation."""

    account: str
    equity: float
    im: float


class InsuranceFundPaid(_Event, frozen=True, kw_only=True, tag="InsuranceFundPaid"):
    """The insurance fund covered `amount` of a bankrupt account's deficit; `fund_after` is its balance."""

    account: str
    amount: float
    fund_after: float


class AutoDeleveraged(_Event, frozen=True, kw_only=True, tag="AutoDeleveraged"):
    """`quantity` contracts of the counterparty's position were closed against the bankrupt `account`
    at its bankruptcy `price` (signed as the counterparty's position)."""

    account: str
    counterparty: str
    instrument: str
    quantity: float
    price: float


class LossSocialised(_Event, frozen=True, kw_only=True, tag="LossSocialised"):
    """`amount` of a bankrupt account's deficit was charged to `accounts_charged` solvent accounts,
    pro rata to equity."""

    account: str
    amount: float
    accounts_charged: int


class LossUnresolved(_Event, frozen=True, kw_only=True, tag="LossUnresolved"):
    """A deficit nothing could cover: the venue is short of `amount`."""

    account: str
    amount: float


class LiquidationsPaused(_Event, frozen=True, kw_only=True, tag="LiquidationsPaused"):
    """The oracle of `asset` left the OK state (`reason`: its `OracleStatus` name): no account exposed to the
    asset is liquidated, new risk on it is refused, a withdrawal must end the account's exposure to it, until
    `LiquidationsResumed` (docs/model.md, "Oracle uncertainty", "A degraded oracle")."""

    asset: str
    reason: str


class LiquidationsResumed(_Event, frozen=True, kw_only=True, tag="LiquidationsResumed"):
    """The oracle of `asset` is OK again (`reason`: the status it left): liquidation on its price resumes."""

    asset: str
    reason: str


Event = (
    InputRejected
    | FillRejected
    | ParametersChanged
    | MarginCallIssued
    | AccountBecameLiquidatable
    | AccountFlaggedEarly
    | LiquidationExecuted
    | AccountRecovered
    | InsuranceFundPaid
    | AutoDeleveraged
    | LossSocialised
    | LossUnresolved
    | LiquidationsPaused
    | LiquidationsResumed
)

_ENCODER = msgspec.json.Encoder()


def encode_events(events: Iterable[Event]) -> bytes:
    """NDJSON, one event per line: the `solvent.events/1` file."""
    return b"".join(_ENCODER.encode(event) + b"\n" for event in events)


def decode_events(data: bytes) -> list[Event]:
    """Parse an events file written by `encode_events`."""
    decoder = msgspec.json.Decoder(Event)
    return [decoder.decode(line) for line in data.splitlines() if line.strip()]
