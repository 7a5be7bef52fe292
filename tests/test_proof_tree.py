"""The Merkle-sum solvency tree: its layer-at-a-time builder against a one-node-at-a-time twin, every proof
verifying, order independence, and each forgery failing (the flaw of sum-only nodes and of signed amounts:
Chalkias, Lewi, Mohassel and Nikolaenko 2020, "Broken proofs of solvency"; ../shared/REFERENCES.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent._numba import SERIAL_BELOW
from solvent.proof.files import load_tree, write_outputs
from solvent.proof.hashing import PAD_HASH, leaf_hash, node_hash
from solvent.proof.inclusion import InclusionProof, ProofError, inclusion_proof, leaf_status, verify_proof
from solvent.proof.leaves import MAX_TOTAL, UNIT_USD, leaf_amounts, salt_of, to_units
from solvent.proof.statement import solvency_statement
from solvent.proof.tree import build_tree

SECRET = bytes(range(32))
AMOUNT_LIMIT = 2**64


def venue(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """n accounts: ids, equity (some negative, some below MM), IM, MM (USD)."""
    rng = np.random.default_rng(seed)
    im = np.abs(rng.normal(5_000.0, 3_000.0, n))
    mm = im * 0.5
    equity = rng.normal(8_000.0, 9_000.0, n)
    return [f"acct-{k:05d}" for k in range(n)], equity, im, mm


def twin_root(ids: list[str], equity: np.ndarray, im: np.ndarray, mm: np.ndarray) -> tuple[bytes, tuple[int, ...]]:
    """The root and totals built one node at a time with proof/hashing.py, in plain Python integers."""
    leaves = leaf_amounts(equity, im, mm)
    nodes = []
    for k, account in enumerate(ids):
        amounts = tuple(int(v) for v in leaves.amounts[k])
        nodes.append((leaf_hash(salt_of(SECRET, account), amounts, int(leaves.status[k]), account), amounts))
    nodes.sort(key=lambda node: node[0])
    while len(nodes) > 1:
        if len(nodes) % 2:
            nodes.append((PAD_HASH, (0, 0, 0, 0, 0)))
        nodes = [
            (node_hash(lh, la, rh, ra), tuple(x + y for x, y in zip(la, ra, strict=True)))
            for (lh, la), (rh, ra) in zip(nodes[0::2], nodes[1::2], strict=True)
        ]
    return nodes[0]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 33])
def test_layer_builder_matches_the_one_node_twin(n: int) -> None:
    ids, equity, im, mm = venue(n, seed=n)
    tree = build_tree(ids, leaf_amounts(equity, im, mm), SECRET)
    assert (tree.root, tree.totals) == twin_root(ids, equity, im, mm)


def test_every_proof_verifies_and_the_totals_are_the_exact_sums() -> None:
    ids, equity, im, mm = venue(1_000)
    tree = build_tree(ids, leaf_amounts(equity, im, mm), SECRET)
    for position in range(len(ids)):
        verify_proof(inclusion_proof(tree, position), tree.root, tree.totals, ids[position])
    units = [to_units(x).tolist() for x in (equity, im, mm)]
    e, i, m = units
    assert tree.totals == (
        sum(max(x, 0) for x in e),
        sum(max(-x, 0) for x in e),
        sum(i),
        sum(m),
        sum(max(b - a, 0) for a, b in zip(e, m, strict=True)),
    )
    assert tree.depth == 10


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.randoms(use_true_random=False))
def test_the_root_is_the_same_in_any_order(n: int, rnd: object) -> None:
    ids, equity, im, mm = venue(n, seed=n)
    order = list(range(n))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    first = build_tree(ids, leaf_amounts(equity, im, mm), SECRET)
    again = build_tree([ids[k] for k in order], leaf_amounts(equity[order], im[order], mm[order]), SECRET)
    assert (again.root, again.totals) == (first.root, first.totals)


def test_the_root_depends_on_the_secret_and_on_every_amount() -> None:
    ids, equity, im, mm = venue(9)
    root = build_tree(ids, leaf_amounts(equity, im, mm), SECRET).root
    assert build_tree(ids, leaf_amounts(equity, im, mm), bytes(32)).root != root
    bumped = im.copy()
    bumped[4] += UNIT_USD
    assert build_tree(ids, leaf_amounts(equity, bumped, mm), SECRET).root != root


@pytest.fixture(scope="module")
def small_tree():  # type: ignore[no-untyped-def]
    ids, equity, im, mm = venue(13, seed=3)
    equity[5] = -250.0  # a bankrupt account
    return build_tree(ids, leaf_amounts(equity, im, mm), SECRET)


def _proof(tree, position: int = 5) -> InclusionProof:  # type: ignore[no-untyped-def]
    return inclusion_proof(tree, position)


def test_a_changed_leaf_fails(small_tree) -> None:  # type: ignore[no-untyped-def]
    proof = _proof(small_tree, 2)
    equity, deficit, im, mm, shortfall = proof.amounts
    forged = dataclasses.replace(proof, amounts=(equity, deficit, im - 1, mm, shortfall))  # less IM claimed
    with pytest.raises(ProofError, match="leads to root"):
        verify_proof(forged, small_tree.root, small_tree.totals)


def test_a_changed_sibling_sum_fails(small_tree) -> None:  # type: ignore[no-untyped-def]
    proof = _proof(small_tree)
    h, a = proof.siblings[1]
    forged = dataclasses.replace(
        proof, siblings=(proof.siblings[0], (h, (a[0], a[1], a[2] - 1, a[3], a[4])), *proof.siblings[2:])
    )
    with pytest.raises(ProofError, match="leads to root"):
        verify_proof(forged, small_tree.root)


def test_changed_published_totals_fail(small_tree) -> None:  # type: ignore[no-untyped-def]
    totals = list(small_tree.totals)
    totals[4] -= 1  # a smaller shortfall published than committed
    with pytest.raises(ProofError, match="totals"):
        verify_proof(_proof(small_tree), small_tree.root, totals)


def test_a_swapped_sibling_fails(small_tree) -> None:  # type: ignore[no-untyped-def]
    proof = _proof(small_tree)
    with pytest.raises(ProofError, match="leads to root"):
        verify_proof(dataclasses.replace(proof, index=proof.index ^ 1), small_tree.root)  # the pair's order swapped
    swapped = (proof.siblings[1], proof.siblings[0], *proof.siblings[2:])  # two levels' siblings swapped
    with pytest.raises(ProofError, match="leads to root"):
        verify_proof(dataclasses.replace(proof, siblings=swapped), small_tree.root)


def test_another_account_cannot_claim_the_leaf(small_tree) -> None:  # type: ignore[no-untyped-def]
    proof = _proof(small_tree)
    with pytest.raises(ProofError, match="not 'acct-00000'"):
        verify_proof(proof, small_tree.root, account="acct-00000")
    with pytest.raises(ProofError, match="leads to root"):
        verify_proof(dataclasses.replace(proof, account="acct-00000"), small_tree.root)


@pytest.mark.parametrize(
    ("amounts", "status", "message"),
    [
        ((10, 5, 0, 0, 0), 0, "both equity and a deficit"),
        ((10, 0, 30, 20, 0), 2, "shortfall 0 is not"),
        ((10, 0, 30, 20, 10), 0, "contradicts"),
    ],
)
def test_an_inconsistent_leaf_fails(small_tree, amounts, status, message) -> None:  # type: ignore[no-untyped-def]
    proof = dataclasses.replace(_proof(small_tree), amounts=amounts, status=status)
    with pytest.raises(ProofError, match=message):
        verify_proof(proof, small_tree.root)


def test_an_index_beyond_the_tree_fails(small_tree) -> None:  # type: ignore[no-untyped-def]
    proof = _proof(small_tree)
    with pytest.raises(ProofError, match="beyond a tree"):
        verify_proof(dataclasses.replace(proof, index=proof.index + (1 << small_tree.depth)), small_tree.root)


# ------------------------------------------------------------------ the flaws our construction closes
def _naive_leaf(account: str, liability: int) -> bytes:
    return hashlib.sha256(f"{account}:{liability}".encode()).digest()


def _naive_node(total: int, left: bytes, right: bytes) -> bytes:
    """Maxwell's first construction: the parent commits to its children's total only (signed, any size)."""
    return hashlib.sha256(total.to_bytes(16, "big", signed=True) + left + right).digest()


def _naive_verify(account: str, liability: int, side: int, sibling: tuple[bytes, int], root: tuple[bytes, int]) -> bool:
    mine = _naive_leaf(account, liability)
    h, s = sibling
    total = liability + s
    parent = _naive_node(total, mine, h) if side == 0 else _naive_node(total, h, mine)
    return (parent, total) == root


def test_sum_only_nodes_let_two_accounts_share_one_liability_and_ours_do_not() -> None:
    """Two accounts owed 10 each; the prover publishes a total of 10 and shows each the other's sum as 0."""
    a, b = _naive_leaf("alice", 10), _naive_leaf("bob", 10)
    root = (_naive_node(10, a, b), 10)
    assert _naive_verify("alice", 10, 0, (b, 0), root)  # the naive construction is fooled, for both
    assert _naive_verify("bob", 10, 1, (a, 0), root)

    salt_a, salt_b = salt_of(SECRET, "alice"), salt_of(SECRET, "bob")
    # IM and MM of 10 units each, equity 0: the same trick on the requirement
    status = leaf_status((0, 0, 10, 10, 10))
    leaf_a = leaf_hash(salt_a, (0, 0, 10, 10, 10), status, "alice")
    leaf_b = leaf_hash(salt_b, (0, 0, 10, 10, 10), status, "bob")
    zero = (0, 0, 0, 0, 0)
    forged_root = node_hash(leaf_a, (0, 0, 10, 10, 10), leaf_b, zero)  # alice's view: bob's sums 0
    alice = InclusionProof("alice", salt_a, (0, 0, 10, 10, 10), status, 0, ((leaf_b, zero),))
    bob = InclusionProof("bob", salt_b, (0, 0, 10, 10, 10), status, 1, ((leaf_a, zero),))
    verify_proof(alice, forged_root, (0, 0, 10, 10, 10))
    with pytest.raises(ProofError, match="leads to root"):  # bob's path commits alice's sums as 0: another root
        verify_proof(bob, forged_root, (0, 0, 10, 10, 10))


def test_a_negative_leaf_cancels_a_liability_naively_and_fails_in_ours() -> None:
    """A fake account owing -100 hides alice's 100 in a signed sum tree; ours has no negative amount to give it,
    and a wrapped 2^64 - 100 overflows the verifier's exact sums."""
    alice, mallory = _naive_leaf("alice", 100), _naive_leaf("mallory", -100)
    root = (_naive_node(0, alice, mallory), 0)
    assert _naive_verify("alice", 100, 0, (mallory, -100), root)  # fooled: a venue owing nothing

    salt_a = salt_of(SECRET, "alice")
    mine = (0, 0, 100, 100, 100)
    status = leaf_status(mine)
    mine_hash = leaf_hash(salt_a, mine, status, "alice")
    negative = (0, 0, -100, -100, -100)
    with pytest.raises(ProofError, match="negative or beyond 64 bits"):
        verify_proof(InclusionProof("alice", salt_a, mine, status, 0, ((mallory, negative),)), root[0], (0,) * 5)
    wrapped = tuple((AMOUNT_LIMIT - 100) if v else 0 for v in mine)  # -100 modulo 2^64
    forged_root = node_hash(mine_hash, mine, mallory, wrapped)  # the totals wrap to 0 modulo 2^64
    with pytest.raises(ProofError, match="overflows 64 bits"):
        verify_proof(InclusionProof("alice", salt_a, mine, status, 0, ((mallory, wrapped),)), forged_root, (0,) * 5)


def test_a_negative_equity_hidden_in_a_subtree_fails() -> None:
    """A subtree whose sibling sums carry a wrapped negative equity, making the venue's equity look larger by
    cancelling a deficit, is refused at the first sum that overflows."""
    ids, equity, im, mm = venue(4, seed=11)
    equity[1] = -5_000.0
    tree = build_tree(ids, leaf_amounts(equity, im, mm), SECRET)
    proof = inclusion_proof(tree, 1)
    h, a = proof.siblings[0]
    deficit = proof.amounts[1]
    hidden = (a[0], (a[1] - deficit) % AMOUNT_LIMIT, a[2], a[3], a[4])  # the sibling "owes" -deficit
    with pytest.raises(ProofError, match="overflows 64 bits"):
        verify_proof(dataclasses.replace(proof, siblings=((h, hidden), *proof.siblings[1:])), tree.root)


# ------------------------------------------------------------------ leaves and files
def test_amounts_are_rounded_to_micro_usd_and_bounded() -> None:
    assert to_units(np.array([1.0000004, 1.0000006, -2.6e-6, 3.4e-6, 0.5e-6])).tolist() == [
        1_000_000,
        1_000_001,
        -3,
        3,
        0,
    ]
    with pytest.raises(ValueError, match="beyond 64-bit"):
        to_units(np.array([MAX_TOTAL * UNIT_USD * 2]))
    with pytest.raises(ValueError, match="total im"):
        leaf_amounts(np.zeros(3), np.full(3, 4e12), np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        leaf_amounts(np.zeros(1), np.array([-1.0]), np.zeros(1))


def test_statuses_follow_the_rounded_amounts() -> None:
    leaves = leaf_amounts(np.array([10.0, 5.0, 1.0, -1.0]), np.full(4, 8.0), np.full(4, 4.0))
    assert leaves.status.tolist() == [0, 1, 2, 3]
    assert [leaf_status(tuple(int(v) for v in row)) for row in leaves.amounts] == [0, 1, 2, 3]


def test_repeated_accounts_are_refused() -> None:
    with pytest.raises(ValueError, match="'b' appears twice"):
        build_tree(["a", "b", "b"], leaf_amounts(np.ones(3), np.ones(3), np.ones(3)), SECRET)


def test_the_tree_files_give_back_the_same_proofs(small_tree, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_outputs(tmp_path, small_tree, solvency_statement(small_tree, 0.0), proofs_for=[0])
    loaded = load_tree(tmp_path)
    assert loaded.root == small_tree.root
    for position in range(len(small_tree.account_ids)):
        assert inclusion_proof(loaded, position) == inclusion_proof(small_tree, position)


def test_threads_build_the_same_tree_and_the_salts_are_hmac_sha256() -> None:
    """The compiled kernels in 3 parts (above SERIAL_BELOW rows: the parallel build) give the tree of one part,
    and each salt is the standard library's HMAC-SHA256 of the id (non-ASCII ids too)."""
    n = SERIAL_BELOW + 7
    ids, equity, im, mm = venue(n, seed=5)
    ids = [f"{account}-é€{'ü' * (k % 4)}" for k, account in enumerate(ids)]
    leaves = leaf_amounts(equity, im, mm)
    alone = build_tree(ids, leaves, SECRET, processes=1)
    split = build_tree(ids, leaves, SECRET, processes=3)
    assert (split.root, split.totals) == (alone.root, alone.totals) == twin_root(ids, equity, im, mm)
    assert np.array_equal(split.salt, alone.salt) and np.array_equal(split.leaf_index, alone.leaf_index)
    for k in (0, 1, 2, 3, n - 1):
        assert split.salt[k].tobytes() == hmac.new(SECRET, ids[k].encode(), hashlib.sha256).digest()


@settings(max_examples=60, deadline=None)
@given(
    position=st.integers(0, 12),
    level=st.integers(0, 3),
    column=st.integers(0, 4),
    delta=st.integers(-5, 5).filter(bool),
)
def test_any_changed_amount_on_the_path_fails(small_tree, position: int, level: int, column: int, delta: int) -> None:  # type: ignore[no-untyped-def]
    proof = inclusion_proof(small_tree, position)
    h, a = proof.siblings[level]
    changed = tuple(v + delta if k == column else v for k, v in enumerate(a))
    forged = dataclasses.replace(proof, siblings=(*proof.siblings[:level], (h, changed), *proof.siblings[level + 1 :]))
    with pytest.raises(ProofError):
        verify_proof(forged, small_tree.root, small_tree.totals)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, 12), level=st.integers(0, 3), byte=st.integers(0, 31), bit=st.integers(0, 7))
def test_any_flipped_hash_bit_fails(small_tree, position: int, level: int, byte: int, bit: int) -> None:  # type: ignore[no-untyped-def]
    proof = inclusion_proof(small_tree, position)
    h, a = proof.siblings[level]
    flipped = bytearray(h)
    flipped[byte] ^= 1 << bit
    forged = dataclasses.replace(
        proof, siblings=(*proof.siblings[:level], (bytes(flipped), a), *proof.siblings[level + 1 :])
    )
    with pytest.raises(ProofError, match="leads to root"):
        verify_proof(forged, small_tree.root)


@pytest.mark.parametrize("size", [16, 33, 64])
def test_salts_follow_hmac_for_any_secret_length(size: int) -> None:
    """A key up to SHA-256's 64-byte block is zero-padded by HMAC (RFC 2104), as the kernel does."""
    secret = bytes(range(100, 100 + size))
    tree = build_tree(["a", "bb", ""], leaf_amounts(np.ones(3), np.ones(3), np.ones(3)), secret)
    assert [s.tobytes() for s in tree.salt] == [
        hmac.new(secret, x, hashlib.sha256).digest() for x in (b"a", b"bb", b"")
    ]


@pytest.mark.parametrize("size", [15, 65])
def test_a_secret_of_the_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="the secret must be 16 to 64 bytes"):
        build_tree(["a"], leaf_amounts(np.ones(1), np.ones(1), np.ones(1)), bytes(size))


def test_libcrypto_is_found_where_find_library_finds_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slim system without ldconfig: the library hashlib itself loaded is used, and its SHA-256 is found."""
    import ctypes.util

    from solvent.proof import openssl

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    path = openssl._hashlib_libcrypto()
    assert path is not None and "libcrypto" in path
    assert openssl.sha256.__wrapped__() != 0
