"""Writers for margin results: `solvent.margin/1` JSON and Parquet (same fields, one row per account)."""

from __future__ import annotations

import math
import os
from typing import Any

import msgspec
import pyarrow.parquet as pq

from solvent.engine.results import MarginResult
from solvent.formats.io import atomic_output
from solvent.formats.provenance import Provenance, parquet_metadata, stamped

RESULT_SCHEMA = "solvent.margin/1"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def marks_document(result: MarginResult) -> dict[str, Any]:
    """Per asset (every asset of the market, USD included): the price it was margined at, its uncertainty, its
    oracle status (DIRECT for one quoted price) and the sources rejected, each with the reason."""
    return {name: mark.to_dict() for name, mark in result.marks.items()}


def result_document(result: MarginResult, market_time: str, provenance: Provenance | None = None) -> dict[str, Any]:
    """The JSON document: run metadata, what made it (`provenance`, when given), oracle status per sourced asset
    and its warnings (one line per degraded asset), what each asset was margined at (`assets`), and one record per
    account (health null when MM is 0). Every IM term of IM_TERMS and every per-asset term of ASSET_TERMS is always
    present."""
    index = {name: a for a, name in enumerate(result.assets)}
    accounts = [account_document(result, n, index) for n in range(result.n_accounts)]
    document = {
        "schema": RESULT_SCHEMA,
        "market_time": market_time,
        "scenario_method": result.scenario_method,
        "n_scenarios": result.n_scenarios,
        "oracle_status": dict(result.oracle_status),
        "warnings": list(result.oracle_warnings),
        "marks": marks_document(result),
        "accounts": accounts,
    }
    return stamped(document, provenance)


def account_document(result: MarginResult, n: int, index: dict[str, int] | None = None) -> dict[str, Any]:
    """One account's record of the `solvent.margin/1` document (the `n`-th of `result`): IM and every term, MM,
    equity, health, Greeks and the predictive figures. `index`: asset name -> column of `result.assets`."""
    if index is None:
        index = {name: a for a, name in enumerate(result.assets)}
    return {
        "account": str(result.account_ids[n]),
        "im": float(result.im[n]),
        "mm": float(result.mm[n]),
        "equity": float(result.equity[n]),
        "health": _finite_or_none(float(result.health[n])),
        "liquidatable": bool(result.liquidatable[n]),
        "collateral": float(result.collateral[n]),
        "unrealised_pnl": float(result.unrealised_pnl[n]),
        **(
            {}
            if result.breach_probability is None or result.early_flag is None or result.loss_vol is None
            else {
                "breach_probability": float(result.breach_probability[n]),
                "early_flag": bool(result.early_flag[n]),
                "loss_vol": float(result.loss_vol[n]),
            }
        ),
        **({} if result.hhi is None else {"hhi": float(result.hhi[n])}),
        **({} if result.collateral_haircut is None else {"collateral_haircut": float(result.collateral_haircut[n])}),
        "terms": {name: float(values[n]) for name, values in result.terms.items()},
        "term_by_asset": {
            name: {asset: float(values[n, index[asset]]) for asset in result.traded_assets}
            for name, values in result.term_by_asset.items()
        },
        "greeks": {
            asset: {
                "delta": float(result.greeks[n, index[asset], 0]),
                "gamma": float(result.greeks[n, index[asset], 1]),
                "vega": float(result.greeks[n, index[asset], 2]),
            }
            for asset in result.traded_assets
        },
    }


def result_json(result: MarginResult, market_time: str, provenance: Provenance | None = None) -> bytes:
    """The `solvent.margin/1` JSON document as indented bytes."""
    return msgspec.json.format(msgspec.json.encode(result_document(result, market_time, provenance)), indent=2)


def write_result(
    result: MarginResult,
    path: str | os.PathLike[str],
    fmt: str,
    market_time: str,
    provenance: Provenance | None = None,
) -> None:
    """Write results as "json" or "parquet", atomically; the provenance, when given, in the document or in the
    Parquet metadata (`solvent.provenance`)."""
    with atomic_output(path) as tmp:
        if fmt == "json":
            with open(tmp, "wb") as handle:
                handle.write(result_json(result, market_time, provenance))
        else:
            metadata = {
                b"solvent.schema": RESULT_SCHEMA.encode(),
                b"solvent.market_time": market_time.encode(),
                b"solvent.scenario_method": result.scenario_method.encode(),
                b"solvent.n_scenarios": str(result.n_scenarios).encode(),
                b"solvent.marks": msgspec.json.encode(marks_document(result)),
                **parquet_metadata(provenance),
            }
            table = result.to_arrow().replace_schema_metadata(metadata)
            pq.write_table(table, tmp, compression="zstd")
