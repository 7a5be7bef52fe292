"""Fit the packaged demo generator, src/solvent/data/demo_generator.json, from real daily closes.

Input: the Bitstamp daily file in ../shared/data/prices (bitstamp_btc_eth_ltc_daily_2014_2020.csv,
BTC from 2014-11-28, ETH from 2017-11-09, LTC from 2017-06-25, all to 2020-01-17), read as-is by
`solvent.market.history.read_history`.

- BTC and ETH: zero-mean GARCH(1,1) by normal quasi-maximum likelihood (`fit_garch`) on their own
  daily log returns, Student-t degrees of freedom by maximum likelihood on the standardised
  residuals (`fit_t_dof`).
- SOL: no SOL history exists in this period (SOL trades from 2020), so SOL uses LTC's fit as a
  proxy, a smaller, more volatile alt-coin; its correlation with BTC and ETH is LTC's.
- Correlation: the Gaussian-copula correlation of the normal scores of the standardised residuals,
  on the dates where BTC, ETH and LTC all have returns.
- Start prices BTC 95,000, ETH 3,500, SOL 180 USD are illustrative round levels (late-2024/2025
  magnitudes), not fitted.

Run from the repository root:  .venv/bin/python scripts/fit_demo_generator.py [PRICES_CSV] [OUT_JSON]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "prices" / "bitstamp_btc_eth_ltc_daily_2014_2020.csv"
DEFAULT_OUTPUT = ROOT / "src" / "solvent" / "data" / "demo_generator.json"

FITTED_FROM = {"BTC": "BTC", "ETH": "ETH", "SOL": "LTC"}
START_PRICES = {"BTC": 95_000.0, "ETH": 3_500.0, "SOL": 180.0}
SOURCE = (
    "Fitted by scripts/fit_demo_generator.py to Bitstamp daily closes "
    "(bitstamp_btc_eth_ltc_daily_2014_2020.csv; BTC 2014-11-28..2020-01-17, ETH 2017-11-09..2020-01-17): "
    "zero-mean GARCH(1,1) by normal QMLE, Student-t dof by ML on standardised residuals, Gaussian-copula "
    "correlation of their normal scores. SOL has no history in that period: SOL uses LTC's fit as a proxy. "
    "Start prices (BTC 95000, ETH 3500, SOL 180 USD) are illustrative, not fitted."
)


def main(argv: list[str]) -> int:
    from solvent.formats.io import write_text_atomic
    from solvent.market.history import read_history
    from solvent.market.synthetic import fit_generator

    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_INPUT
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    history = read_history(source)
    generator = fit_generator(history, FITTED_FROM, START_PRICES, SOURCE)
    text = generator.to_json().decode()

    def write(handle: IO[str]) -> None:
        handle.write(text)

    write_text_atomic(output, write)
    for asset in generator.assets:
        vol = (asset.garch.unconditional_variance * 365.0) ** 0.5
        print(
            f"{asset.name} (from {asset.fitted_from}): omega={asset.omega:.3e} alpha={asset.alpha:.4f} "
            f"beta={asset.beta:.4f} dof={asset.dof:.2f} unconditional vol={vol:.1%}/yr"
        )
    print("correlation:", [[round(v, 3) for v in row] for row in generator.correlation])
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
