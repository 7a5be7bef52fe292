"""What each account's leaf commits to: its amounts in whole micro-USD, its status, a salt, its id.

Amounts are unsigned integers (1 unit = 1e-6 USD, `UNIT_USD`) so that every sum up the tree is exact and no
amount can be negative: an account's equity E is split into `equity` = max(E, 0) and `deficit` = max(-E, 0),
and its `shortfall` is max(MM - E, 0), what it lacks to stand at maintenance. The status is derived from the
rounded amounts, so that a verifier can check it from the leaf alone.

The salt hides the account id inside its leaf (a sibling's leaf hash reveals nothing about its owner). It is
HMAC-SHA256 of the id keyed by the venue's secret (RFC 2104, a keyed PRF), so that the same secret gives the
same salts, hence the same root, however the accounts arrive; each account receives its own salt inside its
proof, never the secret. The tree's builder computes them all in a compiled pass over OpenSSL (proof/tree.py);
`salt_of` is its one-account twin with the standard library's `hmac`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
U64Array = NDArray[np.uint64]

#: Units of every committed amount per USD: 1 unit = 1 micro-USD (USDC's precision).
UNITS_PER_USD: Final = 1_000_000
UNIT_USD: Final = 1e-6
#: The committed amounts of a leaf and of every node, in this order (each an unsigned 64-bit integer).
AMOUNTS: Final[tuple[str, ...]] = ("equity", "deficit", "im", "mm", "shortfall")
#: Leaf status codes, from the rounded amounts: equity >= IM; MM <= equity < IM; 0 <= equity < MM; equity < 0.
STATUSES: Final[tuple[str, ...]] = ("HEALTHY", "BELOW_IM", "LIQUIDATABLE", "BANKRUPT")
#: Every column of the tree must sum below this many units (2^63 micro-USD, about 9.2e12 USD), so that no sum
#: up the tree can overflow 64 bits.
MAX_TOTAL: Final = 2**63
SALT_BYTES: Final = 32
#: The secret's bounds (bytes): at most SHA-256's block, which HMAC then uses as it is.
SECRET_BYTES: Final = (16, 64)


def to_units(usd: FloatArray) -> NDArray[np.int64]:
    """USD amounts to whole units: usd x 1,000,000 rounded to the nearest (half to even); amounts must be finite."""
    if not np.all(np.isfinite(usd)):
        raise ValueError("amounts must be finite")
    scaled = np.rint(np.asarray(usd, dtype=np.float64) * UNITS_PER_USD)
    if scaled.size and float(np.max(np.abs(scaled))) >= MAX_TOTAL:
        raise ValueError(f"an amount reaches {MAX_TOTAL * UNIT_USD:.3g} USD, beyond 64-bit units")
    return scaled.astype(np.int64)


@dataclass(frozen=True, eq=False)
class LeafAmounts:
    """Per account (N,): `amounts` (N, 5) uint64 in AMOUNTS order and `status` (N,) uint8 (STATUSES index)."""

    amounts: U64Array
    status: NDArray[np.uint8]


def leaf_amounts(equity: FloatArray, im: FloatArray, mm: FloatArray) -> LeafAmounts:
    """Each account's committed amounts and status from its equity, IM and MM (USD, (N,) each)."""
    if np.any(np.asarray(im) < 0.0) or np.any(np.asarray(mm) < 0.0):
        raise ValueError("IM and MM must be non-negative")
    e, i, m = to_units(equity), to_units(im), to_units(mm)
    shortfall = np.maximum(m - e, 0)
    columns = np.stack([np.maximum(e, 0), np.maximum(-e, 0), i, m, shortfall], axis=1)
    totals = columns.astype(np.float64).sum(axis=0)
    if np.any(totals >= MAX_TOTAL * (1.0 - 1e-9)):
        name = AMOUNTS[int(np.argmax(totals))]
        raise ValueError(f"the venue's total {name} reaches {MAX_TOTAL * UNIT_USD:.3g} USD, beyond 64-bit units")
    status = np.where(e < 0, 3, np.where(e < m, 2, np.where(e < i, 1, 0))).astype(np.uint8)
    return LeafAmounts(columns.astype(np.uint64), status)


def check_secret(secret: bytes) -> None:
    """ValueError unless the secret is 16 to 64 bytes."""
    low, high = SECRET_BYTES
    if not low <= len(secret) <= high:
        raise ValueError(f"the secret must be {low} to {high} bytes, got {len(secret)}")


def salt_of(secret: bytes, account: str) -> bytes:
    """One account's salt: HMAC-SHA256(secret, account id in UTF-8)."""
    check_secret(secret)
    return hmac.new(secret, account.encode(), hashlib.sha256).digest()
