"""The stream core's shared vocabulary: the figures the monitor publishes, the run's totals, the numbered
event journal the engine owns, and the commands one stage hands the next (`Changes`, `Sliced`).

Nothing here computes margin or knows a component: every component imports this module, none imports another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.stream import events as ev

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

HEALTHY, MARGIN_CALL, LIQUIDATABLE = 0, 1, 2
#: Rounding, USD: a settled bankrupt account's residue is booked against the insurance fund, and a shortfall
#: against IM or MM this small raises no call.
DUST_USD = 1e-6

Sink = Callable[[Sequence[ev.Event]], None]


def seconds(time: datetime) -> float:
    """The feed's clock in POSIX seconds."""
    return time.timestamp()


@dataclass
class Figures:
    """The last margin figures of every account (N,), and its liquidation bookkeeping. The monitor writes
    them; the liquidator writes `cooldown_until` only; everyone else reads them."""

    im: FloatArray
    mm: FloatArray
    equity: FloatArray
    status: NDArray[np.int8]
    flagged: NDArray[np.bool_]
    breach: FloatArray
    loss_vol: FloatArray
    in_liquidation: NDArray[np.bool_]
    cooldown_until: FloatArray
    first_flag: FloatArray
    first_liquidatable: FloatArray

    @classmethod
    def empty(cls, n: int) -> Figures:
        """Zero figures for n accounts (first_* are NaN: never)."""
        return cls(
            im=np.zeros(n),
            mm=np.zeros(n),
            equity=np.zeros(n),
            status=np.zeros(n, dtype=np.int8),
            flagged=np.zeros(n, dtype=np.bool_),
            breach=np.zeros(n),
            loss_vol=np.zeros(n),
            in_liquidation=np.zeros(n, dtype=np.bool_),
            cooldown_until=np.full(n, -math.inf),
            first_flag=np.full(n, math.nan),
            first_liquidatable=np.full(n, math.nan),
        )


@dataclass
class Totals:
    """Running totals of a stream (the summary's figures); each stage counts what it did."""

    records: int = 0
    batches: int = 0
    rejected: int = 0
    liquidations: int = 0
    liquidated_notional: float = 0.0
    fees_to_fund: float = 0.0
    fund_paid: float = 0.0
    adl_fills: int = 0
    socialised: float = 0.0
    unresolved: float = 0.0
    remargined: int = 0  # account re-margins, all batches together (what the health screen saves)
    batch_ms: list[float] = field(default_factory=list)


class Journal:
    """The events of the batch under way, numbered 0, 1, 2, ... over the whole run in the order the stages
    append them. The engine owns it (and so the sequence); stages append, the engine publishes (`take`).

    Stages that publish many events at once number them inline (`next_seq`, then store the next one back)."""

    def __init__(self, next_seq: int = 0) -> None:
        self.next_seq = next_seq
        self.events: list[ev.Event] = []

    def emit(self, kind: type[ev.Event], time: datetime, cause: int, **fields: Any) -> None:
        """Append one event of `kind`, numbered next."""
        self.events.append(kind(seq=self.next_seq, time=time, cause=cause, **fields))
        self.next_seq += 1

    def take(self) -> list[ev.Event]:
        """The events appended since the last `take`, in order; the journal is left empty."""
        events, self.events = self.events, []
        return events


@dataclass
class Changes:
    """What ingest changed in one batch, for the monitor: assets whose price, depth or oracle moved (`moved`;
    `rescaled`: their depth; `dirty` until their risk arrays are refreshed; `priced`: quoted, with the time of
    the last quote, until aggregated), accounts that traded or moved collateral, and whether a new epoch starts."""

    moved: set[int] = field(default_factory=set)
    rescaled: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    priced: dict[int, float] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    new_epoch: bool = False


@dataclass(frozen=True)
class Sliced:
    """What the liquidator did, for the backstop and the monitor: the accounts it sliced (ascending), those of
    them found bankrupt (left to the backstop), and the fee of each trade, in order (owed to the insurance fund)."""

    rows: IndexArray
    bankrupt: IndexArray
    fees: list[float]
