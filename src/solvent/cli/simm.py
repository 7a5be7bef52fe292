"""`solvent simm` (ISDA SIMM of CRIF files) and `solvent crif` (a CRIF from a portfolio's Greeks), docs/simm.md."""

from __future__ import annotations

import click

from solvent.choices import SIMM_DEFAULT_VERSION, SIMM_VERSIONS
from solvent.cli.guards import fail_cleanly
from solvent.cli.options import format_option, market_option, out_option, params_option, portfolio_option
from solvent.cli.output import emit, emit_text


@click.command()
@click.argument("crif_paths", nargs=-1, required=True, metavar="CRIF...")
@click.option(
    "--version",
    "simm_version",
    type=click.Choice(sorted(SIMM_VERSIONS)),
    default=SIMM_DEFAULT_VERSION,
    show_default=True,
)
@click.option("--calibration", "calibration_path", default=None, help="A calibration XML in ORE's layout instead.")
@click.option("--mpor", type=click.Choice(["10", "1"]), default="10", show_default=True, help="Margin period (days).")
@click.option(
    "--high-vol-fx", default="", metavar="CCY,...", help="Currencies (e.g. crypto) to weigh as high-volatility FX."
)
@format_option("table", "json", "csv")
@out_option()
@fail_cleanly
def simm(
    crif_paths: tuple[str, ...],
    simm_version: str,
    calibration_path: str | None,
    mpor: str,
    high_vol_fx: str,
    fmt: str,
    out_path: str | None,
) -> None:
    """ISDA SIMM of every portfolio in one or more CRIF files (docs/simm.md)."""
    from solvent.formats.provenance import provenance_of
    from solvent.simm.report import print_table, simm_report, to_csv, to_json

    high = [c.strip() for c in high_vol_fx.split(",") if c.strip()]
    report = simm_report(crif_paths, simm_version, int(mpor), calibration_path, high)
    settings = {"version": simm_version, "mpor_days": int(mpor), "high_vol_fx": high}
    files = {f"crif[{i}]": path for i, path in enumerate(crif_paths)} | {"calibration": calibration_path}
    provenance = provenance_of(files, {"simm": settings})
    if fmt == "csv":
        emit_text(to_csv(report), out_path)
        return
    emit(fmt, out_path, lambda console: print_table(report, console), lambda: to_json(report, provenance).rstrip("\n"))


@click.command()
@portfolio_option()
@market_option()
@params_option()
@click.option("--mapping", type=click.Choice(["equity", "fx"]), default="equity", show_default=True)
@click.option("--equity-bucket", default="Residual", show_default=True, help="SIMM equity bucket for crypto.")
@click.option("--vega-tenor", default="6m", show_default=True, help="SIMM tenor label for the net vega.")
@out_option("Write the CRIF here instead of standard output.")
@fail_cleanly
def crif(
    portfolio_path: str,
    market_path: str,
    params_path: str | None,
    mapping: str,
    equity_bucket: str,
    vega_tenor: str,
    out_path: str | None,
) -> None:
    """A CRIF (delta and vega per account and asset, from the Greeks) for `solvent simm` (docs/simm.md)."""
    from solvent.convert.inputs import load_params, load_portfolio
    from solvent.formats.io import load_market
    from solvent.simm.crypto import CryptoMapping, crif_csv, crif_from_portfolio

    choice = CryptoMapping(
        risk_class="fx" if mapping == "fx" else "equity", equity_bucket=equity_bucket, vega_tenor=vega_tenor
    )
    params = load_params(params_path) if params_path else None
    crif_rows = crif_from_portfolio(load_portfolio(portfolio_path), load_market(market_path), choice, params)
    emit_text(crif_csv(crif_rows), out_path)
