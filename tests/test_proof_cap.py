"""The Merkle cap (proof/cap.py): the cap against the layer a one-node-at-a-time twin builds, every proof of a
tree verifying below every cap height, the statement's cap read back, and each forgery failing: a changed leaf,
sibling sum or cap node, swapped siblings or cap nodes, a hidden negative equity, a proof presented for another
cap node, a cap of the wrong shape."""

from __future__ import annotations

import dataclasses
import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.formats.proof import StatementDocument
from solvent.proof.cap import MerkleCap, cap_top, merkle_cap, verify_cap, verify_proof_to_cap
from solvent.proof.encoding import decode_proof, encode_proof
from solvent.proof.hashing import PAD_HASH, leaf_hash, node_hash
from solvent.proof.inclusion import ProofError, inclusion_proof
from solvent.proof.leaves import leaf_amounts, salt_of
from solvent.proof.prove import published_root
from solvent.proof.statement import solvency_statement
from solvent.proof.tree import SolvencyTree, build_tree

SECRET = bytes(range(32))
AMOUNT_LIMIT = 2**64
Node = tuple[bytes, tuple[int, ...]]


def venue(n: int, seed: int = 0) -> SolvencyTree:
    """A tree of n accounts (some bankrupt, some below MM)."""
    rng = np.random.default_rng(seed)
    im = np.abs(rng.normal(5_000.0, 3_000.0, n))
    equity = rng.normal(8_000.0, 9_000.0, n)
    return build_tree([f"acct-{k:05d}" for k in range(n)], leaf_amounts(equity, im, im * 0.5), SECRET)


def twin_layers(tree: SolvencyTree) -> list[list[Node]]:
    """Every layer from the leaves up, built one node at a time with proof/hashing.py from the accounts' leaves
    (each layer below the root padded to an even length, as the tree's specification says)."""
    leaves = []
    for position, account in enumerate(tree.account_ids):
        amounts = tuple(int(v) for v in tree.layers[0].amounts[tree.leaf_index[position]])
        status = int(tree.status[position])
        leaves.append((leaf_hash(salt_of(SECRET, account), amounts, status, account), amounts))
    layers = [sorted(leaves)]
    while len(layers[-1]) > 1:
        nodes = layers[-1]
        if len(nodes) % 2:
            nodes.append((PAD_HASH, (0,) * 5))
        layers.append(
            [
                (node_hash(lh, la, rh, ra), tuple(x + y for x, y in zip(la, ra, strict=True)))
                for (lh, la), (rh, ra) in zip(nodes[0::2], nodes[1::2], strict=True)
            ]
        )
    return layers


CASES = [(n, k) for n in (1, 2, 3, 7, 13, 33) for k in range(int(np.ceil(np.log2(n))) + 2)]


@pytest.mark.parametrize(("n", "levels"), CASES)
def test_the_cap_is_the_twins_layer_and_hashes_to_the_root(n: int, levels: int) -> None:
    tree = venue(n, seed=n)
    layers = twin_layers(tree)
    cap = merkle_cap(tree, levels)
    assert cap.levels == min(levels, tree.depth) and cap.depth == tree.depth == len(layers) - 1
    assert list(cap.nodes) == layers[tree.depth - cap.levels]
    assert cap_top(cap) == (tree.root, tree.totals)
    verify_cap(cap, tree.root, tree.totals)


@pytest.mark.parametrize(("n", "levels"), CASES)
def test_every_proof_verifies_below_every_cap_height(n: int, levels: int) -> None:
    tree = venue(n, seed=n + 100)
    cap = merkle_cap(tree, levels)
    for position, account in enumerate(tree.account_ids):
        proof = inclusion_proof(tree, position, levels)
        assert len(proof.siblings) == tree.depth - cap.levels
        decoded = decode_proof(account, encode_proof(proof))
        assert decoded == proof
        verify_proof_to_cap(decoded, cap, account)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 70), levels=st.integers(0, 8), seed=st.integers(0, 2**16), pick=st.integers(0, 10**6))
def test_any_proof_of_any_tree_verifies_at_any_cap(n: int, levels: int, seed: int, pick: int) -> None:
    tree = venue(n, seed)
    cap = merkle_cap(tree, levels)
    verify_cap(cap, tree.root, tree.totals)
    verify_proof_to_cap(inclusion_proof(tree, pick % n, levels), cap)


@pytest.fixture(scope="module")
def tree() -> SolvencyTree:
    return venue(29, seed=5)  # depth 5


LEVELS = 2


@pytest.fixture(scope="module")
def cap(tree: SolvencyTree) -> MerkleCap:
    return merkle_cap(tree, LEVELS)


def test_a_changed_leaf_fails(tree: SolvencyTree, cap: MerkleCap) -> None:
    proof = inclusion_proof(tree, 3, LEVELS)
    equity, deficit, im, mm, shortfall = proof.amounts
    forged = dataclasses.replace(proof, amounts=(equity, deficit, im - 1, mm, shortfall))
    with pytest.raises(ProofError, match="not the statement's cap node"):
        verify_proof_to_cap(forged, cap)


@pytest.mark.parametrize(("level", "column"), [(0, 2), (1, 4), (2, 0)])
def test_a_changed_sibling_sum_fails(tree: SolvencyTree, cap: MerkleCap, level: int, column: int) -> None:
    proof = inclusion_proof(tree, 3, LEVELS)
    digest, sums = proof.siblings[level]
    changed = tuple(v + (column == k) for k, v in enumerate(sums))
    siblings = (*proof.siblings[:level], (digest, changed), *proof.siblings[level + 1 :])
    with pytest.raises(ProofError, match="not the statement's cap node"):
        verify_proof_to_cap(dataclasses.replace(proof, siblings=siblings), cap)


def test_swapped_siblings_fail(tree: SolvencyTree, cap: MerkleCap) -> None:
    proof = inclusion_proof(tree, 3, LEVELS)
    with pytest.raises(ProofError, match="not the statement's cap node"):
        verify_proof_to_cap(dataclasses.replace(proof, index=proof.index ^ 1), cap)
    swapped = (proof.siblings[1], proof.siblings[0], *proof.siblings[2:])
    with pytest.raises(ProofError, match="not the statement's cap node"):
        verify_proof_to_cap(dataclasses.replace(proof, siblings=swapped), cap)


def test_a_negative_equity_hidden_below_the_cap_fails(tree: SolvencyTree, cap: MerkleCap) -> None:
    """A sibling whose deficit is wrapped below zero (cancelling the leaf's own) is refused at the sum."""
    position = next(p for p in range(len(tree.account_ids)) if int(tree.status[p]) == 3)  # a bankrupt account
    proof = inclusion_proof(tree, position, LEVELS)
    digest, sums = proof.siblings[0]
    hidden = (sums[0], (sums[1] - proof.amounts[1]) % AMOUNT_LIMIT, *sums[2:])
    with pytest.raises(ProofError, match="overflows 64 bits"):
        verify_proof_to_cap(dataclasses.replace(proof, siblings=((digest, hidden), *proof.siblings[1:])), cap)


def test_a_proof_presented_for_another_cap_node_fails(tree: SolvencyTree, cap: MerkleCap) -> None:
    """The leaf index's high bits name the cap node: pointing them at another node fails, as does an index
    beyond the cap."""
    proof = inclusion_proof(tree, 3, LEVELS)
    below = tree.depth - LEVELS
    mine = proof.index >> below
    for other in range(len(cap.nodes)):
        if other != mine:
            moved = dataclasses.replace(proof, index=(proof.index & ((1 << below) - 1)) | (other << below))
            with pytest.raises(ProofError, match=f"not the statement's cap node {other}"):
                verify_proof_to_cap(moved, cap)
    with pytest.raises(ProofError, match="beyond the cap"):
        verify_proof_to_cap(dataclasses.replace(proof, index=proof.index | (len(cap.nodes) << below)), cap)


def test_a_proof_of_the_wrong_length_fails(tree: SolvencyTree, cap: MerkleCap) -> None:
    with pytest.raises(ProofError, match="it needs 3"):
        verify_proof_to_cap(inclusion_proof(tree, 3, LEVELS + 1), cap)
    with pytest.raises(ProofError, match="it needs 3"):
        verify_proof_to_cap(inclusion_proof(tree, 3, 0), cap)


def _with(cap: MerkleCap, k: int, node: Node) -> MerkleCap:
    return dataclasses.replace(cap, nodes=(*cap.nodes[:k], node, *cap.nodes[k + 1 :]))


@pytest.mark.parametrize("column", range(5))
def test_an_altered_cap_node_fails_against_the_root(tree: SolvencyTree, cap: MerkleCap, column: int) -> None:
    digest, sums = cap.nodes[1]
    lowered = tuple(v - (k == column) for k, v in enumerate(sums))
    with pytest.raises(ProofError, match="not the published root"):
        verify_cap(_with(cap, 1, (digest, lowered)), tree.root, tree.totals)
    flipped = bytes([digest[0] ^ 1]) + digest[1:]
    with pytest.raises(ProofError, match="not the published root"):
        verify_cap(_with(cap, 1, (flipped, sums)), tree.root)


def test_swapped_cap_nodes_fail_against_the_root(tree: SolvencyTree, cap: MerkleCap) -> None:
    swapped = dataclasses.replace(cap, nodes=(cap.nodes[1], cap.nodes[0], *cap.nodes[2:]))
    with pytest.raises(ProofError, match="not the published root"):
        verify_cap(swapped, tree.root)


def test_published_totals_must_be_the_caps_sums(tree: SolvencyTree, cap: MerkleCap) -> None:
    totals = list(tree.totals)
    totals[4] -= 1
    with pytest.raises(ProofError, match="not the published totals"):
        verify_cap(cap, tree.root, totals)


@pytest.mark.parametrize(
    ("levels", "count", "message"),
    [(2, 2, "has 2 nodes, not 3 to 4"), (2, 3, "has 3 nodes"), (1, 4, "has 4 nodes, not 2 to 2"), (7, 4, "depth 5")],
)
def test_a_cap_of_the_wrong_shape_fails(cap: MerkleCap, levels: int, count: int, message: str) -> None:
    nodes = (cap.nodes * 2)[:count]
    with pytest.raises(ProofError, match=message):
        cap_top(MerkleCap(levels, cap.depth, nodes))


def test_a_cap_sum_beyond_64_bits_fails(cap: MerkleCap) -> None:
    digest, sums = cap.nodes[0]
    with pytest.raises(ProofError, match="beyond 64 bits"):
        cap_top(_with(cap, 0, (digest, (AMOUNT_LIMIT, *sums[1:]))))


def test_the_statements_cap_reads_back(tree: SolvencyTree, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The cap written into a solvent.solvency/2 statement is the cap a verifier reads; a solvent.solvency/1
    statement (no cap) still reads, its proofs checked against the root alone."""
    document = solvency_statement(tree, 0.0, cap_levels=LEVELS).to_dict()
    msgspec.json.decode(json.dumps(document), type=StatementDocument)
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(document))
    root, totals, read = published_root(str(path), None)
    assert (root, totals, read) == (tree.root, tree.totals, merkle_cap(tree, LEVELS))
    old = {k: v for k, v in document.items() if k != "cap"} | {"schema": "solvent.solvency/1"}
    path.write_text(json.dumps(old))
    assert published_root(str(path), None) == (tree.root, tree.totals, None)
