"""The CRIF reader: one-line errors naming file, row and field; what it accepts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from solvent.errors import InputError
from solvent.simm import parse_crif, read_crif
from solvent.simm.columns import parse_crif_columns

HEADER = "TradeID,PortfolioID,ProductClass,RiskType,Qualifier,Bucket,Label1,Label2,AmountCurrency,Amount,AmountUSD"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "simm_crif.csv"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{HEADER}\nt,p,RatesFX,Risk_IRCurve,USD,1,5y,OIS,USD,abc,1\n", "src: row 2.Amount: not a number: 'abc'"),
        (f"{HEADER}\nt,p,RatesFX,Risk_IRCurve,USD,1,5y,OIS,USD,1,nan\n", "src: row 2.AmountUSD: not a finite number"),
        (f"{HEADER}\nt,p,RatesFX,Risk_Crypto,BTC,,,,USD,1,1\n", "src: row 2.RiskType: unknown risk type 'Risk_Crypto'"),
        (f"{HEADER}\nt,p,Rates2,Risk_FX,EUR,,,,USD,1,1\n", "src: row 2.ProductClass: unknown product class 'Rates2'"),
        ("RiskType,Qualifier\nRisk_FX,EUR\n", "src: header: missing column(s) ProductClass, Bucket, Label1, Label2"),
        ("", "src: header: empty file"),
        (
            "ProductClass,RiskType,Qualifier,Bucket,Label1,Label2,AmountCurrency,Amount\nRatesFX,Risk_FX,EUR,,,,EUR,1\n",
            "src: row 2.AmountUSD: no USD amount for an amount in 'EUR'",
        ),
    ],
)
@pytest.mark.parametrize("parse", [parse_crif, parse_crif_columns])
def test_bad_input_names_file_row_and_field(parse: Callable[[str, str], object], text: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse(text, "src")
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_tab_separated_and_usd_amount_from_amount_currency() -> None:
    header = "ProductClass\tRiskType\tQualifier\tBucket\tLabel1\tLabel2\tAmountCurrency\tAmount"
    text = f"{header}\nRatesFX\tRisk_FX\tEUR\t\t\t\tUSD\t7.5\n"
    (record,) = parse_crif(text)
    assert (record.risk_type, record.qualifier, record.amount_usd, record.collect_regulations) == (
        "Risk_FX",
        "EUR",
        7.5,
        "",
    )


def test_schedule_rows_are_skipped_and_parameters_have_no_product_class() -> None:
    text = (
        f"{HEADER},IMModel\n"
        "t,p,RatesFX,Risk_FX,EUR,,,,USD,1,1,Schedule\n"
        "t,p,RatesFX,Param_AddOnFixedAmount,,,,,USD,5,5,SIMM\n"
    )
    (record,) = parse_crif(text)
    assert (record.risk_type, record.product_class) == ("Param_AddOnFixedAmount", "")


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_crif(tmp_path / "absent.csv")


def test_example_file_reads() -> None:
    records = read_crif(EXAMPLE)
    assert {r.portfolio for r in records} == {"fund-a", "fund-b"}
