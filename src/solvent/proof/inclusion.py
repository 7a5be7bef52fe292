"""One account's inclusion proof: its leaf and the siblings up to the root, and the check of it against a
published root and totals, without the rest of the book (specification: proof/hashing.py)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solvent.errors import SolventError
from solvent.proof.hashing import HASH_BYTES, N_AMOUNTS, leaf_hash, node_hash
from solvent.proof.leaves import SALT_BYTES, STATUSES
from solvent.proof.tree import SolvencyTree

_LIMIT = 2**64


class ProofError(SolventError):
    """A proof that does not verify, and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the proof does not verify: {reason}")


@dataclass(frozen=True)
class InclusionProof:
    """One account's leaf (`account`, `salt`, `amounts` in AMOUNTS order and units, `status` a STATUSES index,
    `index` its position among the leaves) and `siblings`, (hash, amounts) from the leaf's sibling to the
    root's child."""

    account: str
    salt: bytes
    amounts: tuple[int, ...]
    status: int
    index: int
    siblings: tuple[tuple[bytes, tuple[int, ...]], ...]


def inclusion_proof(tree: SolvencyTree, position: int, cap_levels: int = 0) -> InclusionProof:
    """The proof of the account at `position` in `tree.account_ids`, up to the root's child, or with
    `cap_levels` k > 0 up to its node in the cap k levels below the root (proof/cap.py)."""
    index = int(tree.leaf_index[position])
    leaf = tree.layers[0]
    siblings = []
    at = index
    for layer in tree.layers[: tree.depth - min(cap_levels, tree.depth)]:
        other = at ^ 1
        siblings.append((layer.hashes[other].tobytes(), tuple(int(v) for v in layer.amounts[other])))
        at >>= 1
    return InclusionProof(
        account=tree.account_ids[position],
        salt=tree.salt[position].tobytes(),
        amounts=tuple(int(v) for v in leaf.amounts[index]),
        status=int(tree.status[position]),
        index=index,
        siblings=tuple(siblings),
    )


def add_sums(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Two nodes' amounts added column by column; ProofError where a sum reaches 2^64."""
    total = tuple(x + y for x, y in zip(a, b, strict=True))
    if any(value >= _LIMIT for value in total):
        raise ProofError("a sum overflows 64 bits: an amount below was forged (a negative value wrapped)")
    return total


def leaf_status(amounts: Sequence[int]) -> int:
    """The status the amounts imply (STATUSES index); ProofError where they contradict each other."""
    if len(amounts) != N_AMOUNTS:
        raise ProofError(f"a leaf carries {N_AMOUNTS} amounts, got {len(amounts)}")
    equity_part, deficit, im, mm, shortfall = amounts
    if equity_part and deficit:
        raise ProofError("the leaf has both equity and a deficit")
    equity = equity_part - deficit
    if shortfall != max(mm - equity, 0):
        raise ProofError(f"the leaf's shortfall {shortfall} is not max(MM - equity, 0) = {max(mm - equity, 0)}")
    return 3 if equity < 0 else 2 if equity < mm else 1 if equity < im else 0


def path_top(proof: InclusionProof, account: str | None = None) -> tuple[bytes, tuple[int, ...], int]:
    """(hash, amounts, position in its layer) of the node `proof`'s path climbs to; ProofError where the leaf is
    malformed, an amount negative or beyond 64 bits, a sum overflows, or the proof is not `account`'s."""
    if account is not None and proof.account != account:
        raise ProofError(f"the proof is for account {proof.account!r}, not {account!r}")
    if len(proof.salt) != SALT_BYTES:
        raise ProofError(f"the salt must be {SALT_BYTES} bytes, got {len(proof.salt)}")
    status = leaf_status(proof.amounts)
    if proof.status != status:
        raise ProofError(f"the leaf's status {_name(proof.status)} contradicts its amounts ({STATUSES[status]})")
    try:
        digest = leaf_hash(proof.salt, proof.amounts, proof.status, proof.account)
        amounts = proof.amounts
        at = proof.index
        for sibling, sibling_amounts in proof.siblings:
            if len(sibling) != HASH_BYTES:
                raise ProofError(f"a sibling's hash must be {HASH_BYTES} bytes, got {len(sibling)}")
            if at & 1:
                digest = node_hash(sibling, sibling_amounts, digest, amounts)
            else:
                digest = node_hash(digest, amounts, sibling, sibling_amounts)
            amounts = add_sums(amounts, sibling_amounts)
            at >>= 1
    except struct.error:
        raise ProofError("an amount is negative or beyond 64 bits") from None
    return digest, amounts, at


def verify_proof(
    proof: InclusionProof, root: bytes, totals: Sequence[int] | None = None, account: str | None = None
) -> None:
    """Raise ProofError unless `proof` leads to `root` (and to `totals`, the venue's published amounts, when
    given) with every amount non-negative, below 2^64 and every sum exact; `account`, when given, must be the
    proof's account."""
    digest, amounts, at = path_top(proof, account)
    if at:
        raise ProofError(f"leaf index {proof.index} is beyond a tree of depth {len(proof.siblings)}")
    if digest != root:
        raise ProofError(f"the path leads to root {digest.hex()}, not the published {root.hex()}")
    if totals is not None and tuple(totals) != amounts:
        raise ProofError(f"the path's totals {list(amounts)} are not the published {list(totals)}")


def _name(status: int) -> str:
    return STATUSES[status] if 0 <= status < len(STATUSES) else str(status)
