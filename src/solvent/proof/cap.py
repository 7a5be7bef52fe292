"""The Merkle cap: the tree's nodes a fixed number of levels below the root, published in the statement, so that
an account's proof stops at its cap node instead of climbing to the root (plonky2's `MerkleCap`; the same idea as
a Merkle "frontier" published beside the root).

With a cap of `levels` (k) the statement carries the 2^k nodes (at most; the last may be the padding node) of the
layer k below the root, each its hash and its five sums, and a proof carries depth - k siblings. A verifier checks
(a) once per statement, that the cap hashes up to the published root with the published totals (2^k - 1 node
hashes, the tree's own padding rule: proof/hashing.py), and (b) per proof, that the path ends at the cap node its
leaf index names (index >> (depth - k)), hash and sums. The tree and its root are those without a cap; k = 0 is
the root alone, the proof a full path.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solvent.proof.hashing import HASH_BYTES, N_AMOUNTS, PAD_HASH, node_hash
from solvent.proof.inclusion import InclusionProof, ProofError, add_sums, path_top
from solvent.proof.tree import SolvencyTree

#: The default cap height: a proof at 1,000,000 accounts (depth 20) then under 1,000 bytes (docs/benchmarks.md).
DEFAULT_CAP_LEVELS = 6

Node = tuple[bytes, tuple[int, ...]]


@dataclass(frozen=True)
class MerkleCap:
    """The nodes (hash, sums in AMOUNTS order) of the layer `levels` below the root of a tree of `depth`."""

    levels: int
    depth: int
    nodes: tuple[Node, ...]


def merkle_cap(tree: SolvencyTree, levels: int) -> MerkleCap:
    """The cap of `tree` `levels` below its root (at most its depth: a taller cap is the leaves)."""
    if levels < 0:
        raise ValueError(f"the cap's levels must be >= 0, got {levels}")
    levels = min(levels, tree.depth)
    layer = tree.layers[tree.depth - levels]
    nodes = tuple(
        (layer.hashes[k].tobytes(), tuple(int(v) for v in layer.amounts[k])) for k in range(layer.hashes.shape[0])
    )
    return MerkleCap(levels, tree.depth, nodes)


def cap_top(cap: MerkleCap) -> Node:
    """The root node (hash, sums) the cap hashes up to; ProofError where its shape or an amount is wrong."""
    if not 0 <= cap.levels <= cap.depth:
        raise ProofError(f"a cap of {cap.levels} levels in a tree of depth {cap.depth}")
    count = len(cap.nodes)
    smallest = 2 ** (cap.levels - 1) + 1 if cap.levels else 1
    if not smallest <= count <= 2**cap.levels or (cap.levels and count % 2):
        raise ProofError(f"a cap of {cap.levels} levels has {count} nodes, not {smallest} to {2**cap.levels} (even)")
    nodes = list(cap.nodes)
    try:
        for _ in range(cap.levels):
            if len(nodes) % 2:
                nodes.append((PAD_HASH, (0,) * N_AMOUNTS))
            for digest, sums in nodes:
                if len(digest) != HASH_BYTES or len(sums) != N_AMOUNTS:
                    raise ProofError(f"a cap node carries a {HASH_BYTES}-byte hash and {N_AMOUNTS} sums")
            nodes = [
                (node_hash(left, left_sums, right, right_sums), add_sums(left_sums, right_sums))
                for (left, left_sums), (right, right_sums) in zip(nodes[0::2], nodes[1::2], strict=True)
            ]
    except struct.error:
        raise ProofError("a cap node's sum is negative or beyond 64 bits") from None
    return nodes[0]


def verify_cap(cap: MerkleCap, root: bytes, totals: Sequence[int] | None = None) -> None:
    """Raise ProofError unless the cap hashes up to `root` (and to `totals`, when given)."""
    digest, sums = cap_top(cap)
    if digest != root:
        raise ProofError(f"the statement's cap hashes to {digest.hex()}, not the published root {root.hex()}")
    if totals is not None and tuple(totals) != sums:
        raise ProofError(f"the cap's sums {list(sums)} are not the published totals {list(totals)}")


def verify_proof_to_cap(proof: InclusionProof, cap: MerkleCap, account: str | None = None) -> None:
    """Raise ProofError unless `proof` (depth - levels siblings) leads to the cap node its leaf index names, hash
    and sums (the cap itself checked against the root: `verify_cap`)."""
    below = cap.depth - cap.levels
    if len(proof.siblings) != below:
        raise ProofError(
            f"the proof has {len(proof.siblings)} siblings; below a cap of {cap.levels} levels in a tree of depth"
            f" {cap.depth} it needs {below}"
        )
    digest, sums, at = path_top(proof, account)
    if at >= len(cap.nodes):
        raise ProofError(f"leaf index {proof.index} names cap node {at}, beyond the cap's {len(cap.nodes)}")
    if (digest, sums) != cap.nodes[at]:
        raise ProofError(f"the path leads to {digest.hex()} {list(sums)}, not the statement's cap node {at}")
