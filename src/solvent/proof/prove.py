"""`solvent prove`'s library side: the tree and statement from a margin output, or from the book and market
(which adds Cover 2, whose stress needs the positions)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from solvent.engine.book import Book
from solvent.engine.equity import integrated_deltas
from solvent.engine.margin import margin_accounts, risk_context
from solvent.errors import InputError
from solvent.factors.haircuts import require_collateral_vols
from solvent.formats.errors import read_bytes
from solvent.formats.schemas import MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import build_market_state
from solvent.params import MarginParams
from solvent.proof.cap import DEFAULT_CAP_LEVELS, MerkleCap
from solvent.proof.cover2 import Cover2, cover2
from solvent.proof.files import MarginFigures, load_statement
from solvent.proof.leaves import leaf_amounts
from solvent.proof.statement import SolvencyStatement, solvency_statement
from solvent.proof.tree import SolvencyTree, build_tree


def prove_figures(
    figures: MarginFigures,
    secret: bytes,
    insurance_fund: float,
    cover: Cover2 | None = None,
    processes: int = 1,
    cap_levels: int = DEFAULT_CAP_LEVELS,
) -> tuple[SolvencyTree, SolvencyStatement]:
    """The tree over the accounts of a margin run and the venue's statement (`processes`: see `build_tree`;
    `cap_levels`: the Merkle cap's height below the root, proof/cap.py)."""
    leaves = leaf_amounts(figures.equity, figures.im, figures.mm)
    tree = build_tree(figures.account_ids, leaves, secret, processes)
    statement = solvency_statement(
        tree,
        insurance_fund,
        market_time=figures.market_time,
        scenario_method=figures.scenario_method,
        cover2=cover,
        cap_levels=cap_levels,
    )
    return tree, statement


def prove_book(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    secret: bytes,
    insurance_fund: float,
    history: PriceHistory | None = None,
    *,
    processes: int = 1,
    cap_levels: int = DEFAULT_CAP_LEVELS,
    portfolio_source: str = "<portfolio>",
    market_source: str = "<market>",
) -> tuple[SolvencyTree, SolvencyStatement]:
    """Margin `book` at `market` (as `solvent margin` does), then the tree, the statement and Cover 2 on the
    margin run's own scenarios."""
    state = build_market_state(list(book.instruments), market, params, portfolio_source, market_source)
    require_collateral_vols(book, state, params, market_source)
    context = risk_context(state, params, history)
    result = margin_accounts(book, state, params, context, portfolio_source, predictive=False)
    extra = integrated_deltas(book, state, params, portfolio_source)
    cover = cover2(book, context.arrays, context.scenarios.labels, result.equity, insurance_fund, extra)
    figures = MarginFigures(
        book.account_ids.tolist(), result.equity, result.im, result.mm, market.time.isoformat(), result.scenario_method
    )
    return prove_figures(figures, secret, insurance_fund, cover, processes, cap_levels)


def read_secret(path: str | None) -> bytes:
    """The salts' key from a file of 32 to 128 hex digits (16 to 64 bytes); None gives a fresh random key (the
    root then differs from run to run: pass the same file to reproduce one)."""
    if path is None:
        return os.urandom(32)
    text = read_bytes(path).decode(errors="replace").strip()
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2}){16,64}", text):
        raise InputError(path, "", "the secret must be 32 to 128 hex digits (16 to 64 bytes)")
    return bytes.fromhex(text)


def proof_positions(tree: SolvencyTree, accounts: Sequence[str]) -> list[int]:
    """Positions (in `tree.account_ids`) of `accounts`, or of every account when none is named."""
    if not accounts:
        return list(range(len(tree.account_ids)))
    where = {account: k for k, account in enumerate(tree.account_ids)}
    missing = [a for a in accounts if a not in where]
    if missing:
        raise InputError("", "--account", f"unknown account {missing[0]!r}")
    return [where[a] for a in accounts]


def published_root(
    statement_path: str | None, root: str | None
) -> tuple[bytes, tuple[int, ...] | None, MerkleCap | None]:
    """(the root, the totals or None, the cap or None) a verifier checks against: from a statement file, or a
    root in hex."""
    if statement_path is not None:
        statement = load_statement(statement_path)
        t = statement.totals
        cap = None
        if statement.cap is not None:
            nodes = tuple((bytes.fromhex(n.hash), tuple(n.sums)) for n in statement.cap.nodes)
            cap = MerkleCap(statement.cap.levels, statement.depth, nodes)
        return bytes.fromhex(statement.root), (t.equity, t.deficit, t.im, t.mm, t.shortfall), cap
    assert root is not None, "a statement or a root"
    if not re.fullmatch(r"[0-9a-fA-F]{64}", root):
        raise InputError("", "--root", f"must be 64 hex digits, got {root!r}")
    return bytes.fromhex(root), None, None
