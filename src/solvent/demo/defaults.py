"""The demo venue's size and seed, importable without numpy so that the command line's options can show them."""

from __future__ import annotations

from typing import Final

#: Accounts in `solvent demo`'s venue.
DEMO_ACCOUNTS: Final = 100_000
#: The seed of every synthetic draw of the demo (history, market, book) and of the crash and stress runs.
DEMO_SEED: Final = 7
