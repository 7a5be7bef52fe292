"""The stream's state file (`solvent.state/1`): everything needed to resume a stream exactly where it stopped.

An uncompressed NumPy .npz (a zip of .npy arrays, read with allow_pickle=False): `meta` holds one JSON
document (schema, parameters, the venue rules' parameters, the market snapshot, instruments, accounts, the
insurance fund, counters), and the arrays are grouped by prefix: `store.*` (positions and balances),
`market.*` (the feed's overlays), `figures.*` (last margin figures and liquidation bookkeeping),
`velocity.*` (the price-velocity EWMAs), `scenarios.im.*` / `scenarios.mm.*` (the epoch's scenario set,
kept so that a resumed stream prices on exactly the same scenarios) and `history.*` (the price history,
when the scenarios need one). Risk arrays are not stored: they are rebuilt from the market and the
scenarios, asset by asset, which gives the same numbers bit for bit (`refresh_risk_arrays`).

A damaged file is bad input, never a crash (issue 12 item 14): `meta.shapes` records every array's shape and
dtype, and the `checksum` array holds a SHA-256 over every other array (name, dtype, shape and bytes, in name
order, `meta` included), both checked before anything is restored. Files written before the checksum carry
neither and are checked for their arrays' presence and consistency only.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BaselineParams
from solvent.engine.book import Book
from solvent.errors import InputError
from solvent.formats.errors import read_bytes
from solvent.formats.io import atomic_output
from solvent.formats.schemas import Instrument, MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.params import MarginParams
from solvent.scenarios.base import ScenarioSet

T = TypeVar("T")

STATE_SCHEMA = "solvent.state/1"


class StateMeta(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `meta` document of a solvent.state/1 file (docs/formats.md, "solvent.state/1")."""

    schema: str
    params: MarginParams
    snapshot: MarketSnapshot
    instruments: list[Instrument]
    accounts: list[str]
    parents: list[str | None]
    venues: list[str]
    fund: float
    fund_start: float
    next_seq: int
    last_input_seq: int
    last_time: datetime
    totals: dict[str, Any]
    portfolio_source: str
    market_source: str
    has_history: bool
    history_assets: list[str]
    has_mm_scenarios: bool
    model: str = "multi"
    baselines: BaselineParams | None = None  # absent from older files: the defaults
    margin_calls: bool = True  # absent from older files: the defaults
    reflag: bool = True
    # name -> [dtype, *shape] of every other array of the file (absent from files written before it)
    shapes: dict[str, list[str | int]] | None = None


CHECKSUM = "checksum"


def _digest(arrays: dict[str, NDArray[Any]]) -> str:
    """SHA-256 over every array but the checksum itself: name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name == CHECKSUM:
            continue
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _shape(value: NDArray[Any]) -> list[str | int]:
    return [value.dtype.str, *value.shape]


def _scenario_arrays(prefix: str, scenarios: ScenarioSet) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {
        f"{prefix}.name": np.array(scenarios.name),
        f"{prefix}.price_move": scenarios.price_rows,  # every scenario's moves, or the stored ones with repeats
        f"{prefix}.vol_move": scenarios.vol_rows,
        f"{prefix}.pnl_weight": scenarios.pnl_weight,
        f"{prefix}.group": scenarios.group,
        f"{prefix}.horizon_years": np.array(scenarios.horizon_years),
        f"{prefix}.labels": np.array(scenarios.labels, dtype=np.str_),
    }
    if scenarios.vol_term is not None:
        out[f"{prefix}.vol_term"] = np.array(scenarios.vol_term)
    if scenarios.group_asset is not None:
        out[f"{prefix}.group_asset"] = scenarios.group_asset
    if scenarios.repeats is not None:
        out[f"{prefix}.repeats"] = scenarios.repeats
    return out


def _scenarios(prefix: str, data: dict[str, NDArray[Any]]) -> ScenarioSet:
    vol_term = data.get(f"{prefix}.vol_term")
    group_asset = data.get(f"{prefix}.group_asset")
    repeats = data.get(f"{prefix}.repeats")
    return ScenarioSet(
        name=str(data[f"{prefix}.name"]),
        price_rows=data[f"{prefix}.price_move"],
        vol_rows=data[f"{prefix}.vol_move"],
        repeats=None if repeats is None else np.asarray(repeats, dtype=np.int64),
        pnl_weight=data[f"{prefix}.pnl_weight"],
        group=data[f"{prefix}.group"],
        horizon_years=float(data[f"{prefix}.horizon_years"]),
        labels=tuple(str(x) for x in data[f"{prefix}.labels"].tolist()),
        vol_term=None if vol_term is None else (float(vol_term[0]), float(vol_term[1]), float(vol_term[2])),
        group_asset=None if group_asset is None else np.asarray(group_asset, dtype=np.int64),
    )


@dataclass(frozen=True)
class SavedStream:
    """What a state file holds, decoded: the meta, the accounts (as a book without positions or balances: the
    store's arrays put them back), the array groups by prefix (`store`, `market`, `figures`, `velocity`), the
    epoch's scenario sets and the price history."""

    meta: StateMeta
    book: Book
    groups: dict[str, dict[str, NDArray[Any]]]
    scenarios: ScenarioSet
    mm_scenarios: ScenarioSet | None
    history: PriceHistory | None


def write_state(
    path: str | os.PathLike[str],
    meta: StateMeta,
    groups: dict[str, dict[str, NDArray[Any]]],
    scenarios: ScenarioSet,
    mm_scenarios: ScenarioSet | None,
    history: PriceHistory | None,
) -> None:
    """Save a stream (see the module docstring): `groups` are the arrays by prefix; the file appears whole or
    not at all."""
    arrays: dict[str, NDArray[Any]] = {
        f"{prefix}.{name}": value for prefix, group in groups.items() for name, value in group.items()
    }
    arrays |= _scenario_arrays("scenarios.im", scenarios)
    if mm_scenarios is not None:
        arrays |= _scenario_arrays("scenarios.mm", mm_scenarios)
    if history is not None:
        arrays["history.timestamps"] = history.timestamps.astype("datetime64[s]").astype(np.int64)
        arrays["history.closes"] = history.closes
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    meta = msgspec.structs.replace(meta, shapes={name: _shape(value) for name, value in arrays.items()})
    arrays["meta"] = np.array(msgspec.json.encode(meta).decode())
    arrays[CHECKSUM] = np.array(_digest(arrays))
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def read_state(path: str | os.PathLike[str], resume: Callable[[SavedStream], T]) -> T:
    """`resume` applied to the stream saved in `path`; a file that is not a whole, undamaged solvent.state/1
    (or whose arrays `resume` finds inconsistent) is an InputError."""
    source = os.fspath(path)
    data, meta = _read_checked(source)
    try:
        return resume(_decode(data, meta))
    except (ValueError, KeyError, IndexError, TypeError) as error:  # arrays that agree with no stream
        raise InputError(source, "arrays", f"inconsistent with the meta ({error})") from None


def _read_checked(source: str) -> tuple[dict[str, NDArray[Any]], StateMeta]:
    """The arrays and the meta of a state file, checked: readable, the right schema, every array present with
    the shape and dtype the meta records, and the checksum right; else an InputError naming what is wrong."""
    raw = read_bytes(source)
    if not raw:
        raise InputError(source, "", "file is empty")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
    except Exception as error:  # a damaged zip raises any of a dozen types (BadZipFile, EOFError, zlib.error, ...)
        raise InputError(source, "", f"not a readable {STATE_SCHEMA} file ({type(error).__name__}: {error})") from None
    if "meta" not in data:
        raise InputError(source, "meta", f"missing: not a {STATE_SCHEMA} file")
    stored = data.get(CHECKSUM)
    try:
        meta = msgspec.json.decode(str(data["meta"]), type=StateMeta)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError) as error:
        raise InputError(source, "meta", f"not a readable {STATE_SCHEMA} file ({error})") from None
    if meta.schema != STATE_SCHEMA:
        raise InputError(source, "meta.schema", f"expected {STATE_SCHEMA!r}, got {meta.schema!r}")
    if meta.shapes is not None:
        if stored is None:
            raise InputError(source, CHECKSUM, "missing: the file records its arrays but not their SHA-256")
        for name, shape in meta.shapes.items():
            if name not in data:
                raise InputError(source, name, "array missing")
            if _shape(data[name]) != shape:
                raise InputError(source, name, f"array of {_shape(data[name])}, the meta records {shape}")
        extra = sorted(set(data) - set(meta.shapes) - {"meta", CHECKSUM})
        if extra:
            raise InputError(source, extra[0], "an array the meta does not record")
    if stored is not None and (stored.shape != () or str(stored) != _digest(data)):
        raise InputError(source, CHECKSUM, "the arrays do not match the file's SHA-256: the file is damaged")
    return data, meta


def _decode(data: dict[str, NDArray[Any]], meta: StateMeta) -> SavedStream:
    n = len(meta.accounts)
    book = Book(
        instruments=tuple(meta.instruments),
        account_ids=np.array(meta.accounts, dtype=object),
        pos_offsets=np.zeros(n + 1, dtype=np.int64),
        pos_instrument=np.zeros(0, dtype=np.int32),
        pos_quantity=np.zeros(0),
        pos_entry=np.zeros(0),
        collateral_assets=(),
        col_offsets=np.zeros(n + 1, dtype=np.int64),
        col_asset=np.zeros(0, dtype=np.int32),
        col_amount=np.zeros(0),
        risk_tier=np.asarray(data["store.risk_tier"], dtype=np.float64),
        mode=np.asarray(data["store.mode"], dtype=np.int8),
        parent=np.array(meta.parents, dtype=object),
        venues=tuple(meta.venues),
    )
    history = None
    if meta.has_history:
        history = PriceHistory(
            timestamps=data["history.timestamps"].astype("datetime64[s]"),
            assets=tuple(meta.history_assets),
            closes=data["history.closes"],
        )
    groups: dict[str, dict[str, NDArray[Any]]] = {"store": {}, "market": {}, "figures": {}, "velocity": {}}
    for name, value in data.items():
        prefix, _, key = name.partition(".")
        if prefix in groups:
            groups[prefix][key] = value
    mm = _scenarios("scenarios.mm", data) if meta.has_mm_scenarios else None
    return SavedStream(meta, book, groups, _scenarios("scenarios.im", data), mm, history)
