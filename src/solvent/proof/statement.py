"""The venue's solvency statement: the tree's root and committed totals, what they say in USD (net equity
against MM and IM, the shortfall of accounts below MM, the deficit of accounts below zero against the
insurance fund), the Merkle cap that accounts' proofs stop at (proof/cap.py), and the Cover-2 stress figure where
the book itself was given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solvent.formats.proof import STATEMENT_SCHEMA
from solvent.proof.cap import DEFAULT_CAP_LEVELS, MerkleCap, merkle_cap
from solvent.proof.cover2 import Cover2
from solvent.proof.leaves import AMOUNTS, UNIT_USD
from solvent.proof.tree import SolvencyTree


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0.0 else None


@dataclass(frozen=True)
class SolvencyStatement:
    """What `solvent prove` publishes: `root` (hex), `depth`, `n_accounts`, `totals` (units, AMOUNTS order),
    the insurance fund (USD), the market time and scenario method margined at (when known), Cover 2
    (None without the book) and the Merkle cap (`cap`)."""

    root: str
    depth: int
    n_accounts: int
    totals: tuple[int, ...]
    insurance_fund: float
    market_time: str | None = None
    scenario_method: str | None = None
    cover2: Cover2 | None = None
    cap: MerkleCap | None = None

    @property
    def usd(self) -> dict[str, float]:
        """The totals in USD, by AMOUNTS name."""
        return {name: value * UNIT_USD for name, value in zip(AMOUNTS, self.totals, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """The solvent.solvency/2 document."""
        usd = self.usd
        net = (self.totals[0] - self.totals[1]) * UNIT_USD
        return {
            "schema": STATEMENT_SCHEMA,
            "hash": "SHA-256",
            "unit_usd": UNIT_USD,
            "market_time": self.market_time,
            "root": self.root,
            "depth": self.depth,
            "n_accounts": self.n_accounts,
            "totals": dict(zip(AMOUNTS, self.totals, strict=True)),
            "solvency": {
                "net_equity": net,
                **usd,
                "insurance_fund": self.insurance_fund,
                "equity_over_mm": _ratio(net, usd["mm"]),
                "equity_over_im": _ratio(net, usd["im"]),
                "fund_over_deficit": _ratio(self.insurance_fund, usd["deficit"]),
            },
            "scenario_method": self.scenario_method,
            "cover2": None if self.cover2 is None else self.cover2.to_dict(),
            "cap": None if self.cap is None else _cap_dict(self.cap),
        }

    def summary_lines(self) -> list[str]:
        """The statement in a few lines, for the terminal."""
        doc = self.to_dict()
        figures = doc["solvency"]
        lines = [
            f"root {self.root} ({self.n_accounts:,} accounts, depth {self.depth})",
            f"net equity {figures['net_equity']:,.2f} USD against MM {figures['mm']:,.2f} and IM {figures['im']:,.2f}",
            f"shortfall below MM {figures['shortfall']:,.2f} USD; deficit below zero {figures['deficit']:,.2f} USD;"
            f" insurance fund {self.insurance_fund:,.2f} USD",
        ]
        if self.cover2 is not None:
            c = self.cover2
            ratio = "n/a (no uncovered stress loss)" if c.coverage_ratio is None else f"{c.coverage_ratio:.3f}"
            who = ", ".join(f"{d.group} {d.uncovered_loss:,.2f}" for d in c.defaulters) or "none"
            lines.append(f"Cover 2: {c.loss:,.2f} USD in scenario {c.scenario!r} ({who}); fund / loss {ratio}")
        return lines


def _cap_dict(cap: MerkleCap) -> dict[str, Any]:
    """The statement's `cap` record."""
    nodes = [{"hash": digest.hex(), "sums": list(sums)} for digest, sums in cap.nodes]
    return {"levels": cap.levels, "nodes": nodes}


def solvency_statement(
    tree: SolvencyTree,
    insurance_fund: float,
    *,
    market_time: str | None = None,
    scenario_method: str | None = None,
    cover2: Cover2 | None = None,
    cap_levels: int = DEFAULT_CAP_LEVELS,
) -> SolvencyStatement:
    """The statement of `tree` (its root and totals, its cap `cap_levels` below the root) with the fund and,
    when computed, Cover 2."""
    return SolvencyStatement(
        root=tree.root.hex(),
        depth=tree.depth,
        n_accounts=len(tree.account_ids),
        totals=tree.totals,
        insurance_fund=insurance_fund,
        market_time=market_time,
        scenario_method=scenario_method,
        cover2=cover2,
        cap=merkle_cap(tree, cap_levels),
    )
