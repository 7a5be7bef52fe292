"""The portfolio as an Arrow table: the columns of a `solvent.portfolio/1` Parquet file, one row per account.

The JSON format is converted to the same table, so that one builder (engine/book.py `book_from_arrow`) validates
both; the schema lives here, with the other formats, so that the readers and writers need no engine type.
"""

from __future__ import annotations

import pyarrow as pa

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
