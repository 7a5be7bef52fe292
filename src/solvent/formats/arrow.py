"""The portfolio as an Arrow table: the columns of a `solvent.portfolio/1` Parquet file, one row per account.

The JSON format is converted to the same table (`accounts_table`), so that one builder (engine/book.py
`book_from_arrow`) validates both; the schema lives here, with the other formats, so that the readers and writers
need no engine type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from solvent.formats.arrow_numpy import float_array, offsets_array, string_array

if TYPE_CHECKING:
    from solvent.formats.schemas import Account

POSITION_TYPE = pa.struct(
    [("instrument", pa.string()), ("quantity", pa.float64()), ("entry_price", pa.float64()), ("venue", pa.string())]
)
ACCOUNTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("collateral", pa.map_(pa.string(), pa.float64())),
        ("positions", pa.list_(POSITION_TYPE)),
        ("risk_tier", pa.float64()),
        ("mode", pa.string()),
        ("parent", pa.string()),
    ]
)
# The same columns with instrument names and collateral assets dictionary-encoded, as the Parquet reader hands
# them back (read_dictionary). Accepted as they are, so millions of names are neither built nor hashed again.
NAME_CODES = pa.dictionary(pa.int32(), pa.string())
ENCODED_TYPES = {
    "collateral": pa.map_(NAME_CODES, pa.float64()),
    "positions": pa.list_(
        pa.struct(
            [
                ("instrument", NAME_CODES),
                ("quantity", pa.float64()),
                ("entry_price", pa.float64()),
                ("venue", pa.string()),
            ]
        )
    ),
}
ENCODED_SCHEMA = pa.schema([pa.field(f.name, ENCODED_TYPES.get(f.name, f.type)) for f in ACCOUNTS_SCHEMA])


def accounts_table(accounts: Sequence[Account]) -> pa.Table:
    """Decoded accounts as an ACCOUNTS_SCHEMA table: the table `pa.Table.from_pylist` makes of their records.

    Built from the values' buffers (formats/arrow_numpy.py), not by pyarrow's conversion, which imports pandas.
    """
    positions = [position for account in accounts for position in account.positions]
    balances = [balance for account in accounts for balance in account.collateral.items()]
    position_values = pa.StructArray.from_arrays(
        [
            string_array([p.instrument for p in positions]),
            float_array([p.quantity for p in positions]),
            float_array([p.entry_price for p in positions]),
            string_array([p.venue for p in positions]),
        ],
        fields=list(POSITION_TYPE),
    )
    columns = [
        string_array([account.id for account in accounts]),
        pa.MapArray.from_arrays(
            offsets_array([len(account.collateral) for account in accounts]),
            string_array([asset for asset, _ in balances]),
            float_array([amount for _, amount in balances]),
            type=ACCOUNTS_SCHEMA.field("collateral").type,
        ),
        pa.ListArray.from_arrays(
            offsets_array([len(account.positions) for account in accounts]),
            position_values,
            type=ACCOUNTS_SCHEMA.field("positions").type,
        ),
        float_array([account.risk_tier for account in accounts]),
        string_array([account.mode for account in accounts]),
        string_array([account.parent for account in accounts]),
    ]
    return pa.Table.from_arrays(columns, schema=ACCOUNTS_SCHEMA)
