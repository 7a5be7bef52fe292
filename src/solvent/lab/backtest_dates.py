"""The per-date output of a margin backtest (`solvent.backtest-dates/1`): one row per date, model and portfolio.

Columns: `date` (UTC), `asset`, `price` (the close at the date), `model`, `portfolio` ("long BTC"), `side`
("long" or "short"), `im` and `mm` (USD, the requirement held over the MPOR from the date), `loss` (the
end-of-window loss over the MPOR, USD, positive = loss) and `path_loss` (the worst point within it),
`exception` and `path_exception` (the loss above IM), `tested` (whether the date is one the backtest tests:
every h-th date with non-overlapping windows, every date otherwise) and `zone_250` (the Basel zone of the
last 250 tested dates as of the date; empty before 250). Written as CSV (dates ``2020-01-01T00:00:00Z``) and
Parquet (a UTC timestamp column, key-value metadata ``solvent.schema = solvent.backtest-dates/1``).

A portfolio backtest (`lab.portfolio_backtest`) has one row per date and model, its accounts summed
(`solvent.portfolio-backtest-dates/1`, `portfolio_date_table`), beside its summary `portfolio.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from solvent.formats.io import atomic_output
from solvent.formats.provenance import Provenance, parquet_metadata, stamped
from solvent.lab.backtest import sample_dates
from solvent.lab.margin_backtest import HistoryBacktest
from solvent.lab.portfolio_backtest import PortfolioBacktest

DATES_SCHEMA = "solvent.backtest-dates/1"
PORTFOLIO_DATES_SCHEMA = "solvent.portfolio-backtest-dates/1"


def date_table(run: HistoryBacktest) -> pa.Table:
    """The rows of one run, ordered by model, portfolio, then date."""
    n_dates, models, portfolios = run.dates.size, run.models, run.portfolios
    blocks = len(models) * len(portfolios)
    model_of = np.repeat(np.arange(len(models)), len(portfolios) * n_dates)
    portfolio_of = np.tile(np.repeat(np.arange(len(portfolios)), n_dates), len(models))
    date_of = np.tile(np.arange(n_dates), blocks)
    asset_column = np.array([run.assets.index(p.split(" ", 1)[1]) for p in portfolios])
    im = np.stack([run.requirement[m] for m in models])  # (M, P, T)
    mm = np.stack([run.maintenance[m] for m in models])
    loss = np.broadcast_to(run.loss, im.shape)
    path_loss = np.broadcast_to(run.path_loss, im.shape)
    tested = np.zeros(n_dates, dtype=np.bool_)
    tested[run.tested] = True
    zones = [_every_date(run, m, p) for m in models for p in range(len(portfolios))]
    stamps = run.dates.astype("datetime64[s]").astype(np.int64)[date_of]
    return pa.table(
        {
            "date": pa.array(stamps, type=pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "asset": pa.array(np.array(run.assets, dtype=object)[asset_column[portfolio_of]], type=pa.string()),
            "price": run.prices[date_of, asset_column[portfolio_of]],
            "model": pa.array(np.array(models, dtype=object)[model_of], type=pa.string()),
            "portfolio": pa.array(np.array(portfolios, dtype=object)[portfolio_of], type=pa.string()),
            "side": pa.array([portfolios[p].split(" ", 1)[0] for p in portfolio_of], type=pa.string()),
            "im": im.ravel(),
            "mm": mm.ravel(),
            "loss": loss.ravel(),
            "path_loss": path_loss.ravel(),
            "exception": loss.ravel() > im.ravel(),
            "path_exception": path_loss.ravel() > im.ravel(),
            "tested": tested[date_of],
            "zone_250": pa.array([zone for block in zones for zone in block], type=pa.string()),
        }
    )


def _every_date(run: HistoryBacktest, model: str, portfolio: int) -> list[str | None]:
    """The rolling zone on every date: that of the last tested date up to it (None before 250 tested)."""
    tested = run.rolling_zone(model, portfolio)
    last = np.searchsorted(run.tested, np.arange(run.dates.size), side="right") - 1
    return [tested[i] for i in last]


def write_dates(
    runs: Sequence[HistoryBacktest], out_dir: str | Path, provenance: Provenance | None = None
) -> tuple[Path, Path]:
    """`out_dir/dates.csv` and `out_dir/dates.parquet` (with the provenance in its metadata): every run's rows, each
    file written atomically."""
    table = pa.concat_tables([date_table(run) for run in runs])
    return write_table(table, out_dir, "dates", DATES_SCHEMA, provenance)


def write_portfolio(
    run: PortfolioBacktest, out_dir: str | Path, provenance: Provenance | None = None
) -> tuple[Path, Path, Path]:
    """`out_dir/portfolio.json` (`PortfolioBacktest.summary`) and `portfolio_dates.csv` / `.parquet`, the JSON and
    the Parquet with the provenance."""
    summary = Path(out_dir) / "portfolio.json"
    table = portfolio_date_table(run)
    csv_path, parquet_path = write_table(table, out_dir, "portfolio_dates", PORTFOLIO_DATES_SCHEMA, provenance)
    with atomic_output(summary) as tmp:
        document = stamped(run.summary(), provenance)
        Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    return summary, csv_path, parquet_path


def portfolio_date_table(run: PortfolioBacktest) -> pa.Table:
    """The per-date output of a portfolio backtest, one row per date and model, over the accounts with
    positions: `accounts`, `im` (their total IM, USD), `loss` and `path_loss` (their total losses over the
    MPOR, USD), `exceptions` and `path_exceptions` (how many accounts' loss exceeded their IM), `tested`."""
    n_dates, models, accounts = run.dates.size, run.models, run.tested_accounts
    date_of = np.tile(np.arange(n_dates), len(models))
    tested = np.zeros(n_dates, dtype=np.bool_)
    tested[sample_dates(n_dates, run.mpor_steps, run.windows)] = True
    stamps = run.dates.astype("datetime64[s]").astype(np.int64)[date_of]
    return pa.table(
        {
            "date": pa.array(stamps, type=pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "model": pa.array(np.repeat(np.array(models, dtype=object), n_dates), type=pa.string()),
            "accounts": np.full(date_of.size, accounts.size, dtype=np.int64),
            "im": np.concatenate([run.requirement[m][accounts].sum(axis=0) for m in models]),
            "loss": np.tile(run.loss[accounts].sum(axis=0), len(models)),
            "path_loss": np.tile(run.path_loss[accounts].sum(axis=0), len(models)),
            "exceptions": np.concatenate([run.exceptions(m)[accounts].sum(axis=0) for m in models]),
            "path_exceptions": np.concatenate([run.exceptions(m, path=True)[accounts].sum(axis=0) for m in models]),
            "tested": tested[date_of],
        }
    )


def write_table(
    table: pa.Table, out_dir: str | Path, name: str, schema: str, provenance: Provenance | None = None
) -> tuple[Path, Path]:
    """`out_dir/<name>.csv` (dates as ``2020-01-01T00:00:00Z``) and `out_dir/<name>.parquet` (`schema` in
    its metadata), each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = out / f"{name}.csv", out / f"{name}.parquet"
    with atomic_output(parquet_path) as tmp:
        metadata = {b"solvent.schema": schema.encode(), **parquet_metadata(provenance)}
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    text = pc.strftime(table.column("date"), format="%Y-%m-%dT%H:%M:%SZ")
    with atomic_output(csv_path) as tmp:
        pcsv.write_csv(table.set_column(0, "date", text), tmp)
    return csv_path, parquet_path
