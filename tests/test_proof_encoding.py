"""solvent.proof/2's binary body: LEB128 and ZigZag against protobuf's worked examples, the round trip of every
proof of a tree (each still verifying), and each malformed body refused with the byte and field named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.proof.encoding import ProofEncodingError, _varint, _zigzag, decode_proof, encode_proof
from solvent.proof.inclusion import InclusionProof, ProofError, inclusion_proof, leaf_status, verify_proof
from solvent.proof.leaves import leaf_amounts
from solvent.proof.tree import build_tree

SECRET = bytes(range(32))
U64 = st.integers(0, 2**64 - 1)


def varint(value: int) -> bytes:
    out = bytearray()
    _varint(value, out)
    return bytes(out)


def test_varints_and_zigzag_match_protobufs_worked_examples() -> None:
    """protobuf.dev, "Encoding": 1 is 01, 150 is 96 01; ZigZag maps 0, -1, 1, -2 to 0, 1, 2, 3 and
    0x7fffffff, -0x80000000 to 0xfffffffe, 0xffffffff."""
    assert varint(1) == b"\x01" and varint(150) == b"\x96\x01" and varint(300) == b"\xac\x02"
    assert varint(2**64 - 1) == b"\xff" * 9 + b"\x01"
    assert [_zigzag(v) for v in (0, -1, 1, -2, 2**31 - 1, -(2**31))] == [0, 1, 2, 3, 2**32 - 2, 2**32 - 1]
    with pytest.raises(ValueError, match="not an unsigned 64-bit"):
        varint(2**64)


def one_proof(depth: int = 3) -> InclusionProof:
    siblings = tuple((bytes([k]) * 32, (k, 0, 150, 75, 2**63 + k)) for k in range(depth))
    return InclusionProof("alice", bytes(range(32)), (0, 20, 150, 75, 95), 3, 5, siblings)


def test_the_body_is_laid_out_as_documented() -> None:
    """salt, index, depth, ZigZag(E), im, mm, then each sibling's hash and five amounts (docs/formats.md)."""
    proof = one_proof(1)
    leaf = b"\x05" + b"\x01" + varint(39) + b"\x96\x01" + b"\x4b"  # E = -20: ZigZag 39
    sibling = b"\x00" * 32 + b"\x00\x00\x96\x01\x4b" + b"\x80" * 9 + b"\x01"
    assert encode_proof(proof) == bytes(range(32)) + leaf + sibling
    assert decode_proof("alice", encode_proof(proof)) == proof


leaves = st.tuples(st.integers(-(2**62), 2**62), st.integers(0, 2**62), st.integers(0, 2**62))


@settings(max_examples=200, deadline=None)
@given(
    leaf=leaves,
    index=st.integers(0, 2**20 - 1),
    siblings=st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.tuples(U64, U64, U64, U64, U64)), max_size=24),
)
def test_any_proof_round_trips(leaf: tuple[int, int, int], index: int, siblings: list) -> None:  # type: ignore[type-arg]
    equity, im, mm = leaf
    amounts = (max(equity, 0), max(-equity, 0), im, mm, max(mm - equity, 0))
    proof = InclusionProof("ü-7", bytes(32), amounts, leaf_status(amounts), index, tuple(siblings))
    assert decode_proof("ü-7", encode_proof(proof)) == proof


def test_every_proof_of_a_tree_round_trips_and_verifies() -> None:
    rng = np.random.default_rng(4)
    n = 300
    equity = rng.normal(8_000.0, 9_000.0, n)
    im = np.abs(rng.normal(5_000.0, 3_000.0, n))
    ids = [f"acct-{k}" for k in range(n)]
    tree = build_tree(ids, leaf_amounts(equity, im, im / 2), SECRET)
    for position in range(n):
        proof = inclusion_proof(tree, position)
        body = encode_proof(proof)
        assert decode_proof(ids[position], body) == proof
        verify_proof(decode_proof(ids[position], body), tree.root, tree.totals, ids[position])
        assert len(body) < 32 + 5 * 8 + 4 + tree.depth * (32 + 5 * 8)  # below fixed-width bytes


def test_a_leaf_whose_status_contradicts_its_amounts_is_not_encoded() -> None:
    with pytest.raises(ValueError, match="status does not follow"):
        encode_proof(dataclasses.replace(one_proof(), status=0))
    with pytest.raises(ProofError, match="shortfall"):
        encode_proof(dataclasses.replace(one_proof(), amounts=(0, 20, 150, 75, 94)))


BODY = encode_proof(one_proof())
SALT_AND_INDEX = 33  # the salt, then index 5 in one byte


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (BODY[:-1], "the proof ends after"),
        (BODY[:20], "byte 0, salt: the proof ends after 20 bytes"),
        (BODY[:SALT_AND_INDEX], "byte 33, depth: the proof ends after 33 bytes"),
        (BODY[: len(BODY) - 6], "sibling 2 amount 4: the proof ends after"),
        (BODY + b"\x00", "byte 179, end: 1 bytes after the last sibling"),  # 38 + 3 x 47 bytes
        (BODY + BODY[-47:], "47 bytes after the last sibling"),
        (BODY[:SALT_AND_INDEX] + b"\x80" * 9 + b"\x02" + BODY[34:], "byte 33, depth: a varint beyond 64 bits"),
        (BODY[:SALT_AND_INDEX] + b"\xff" * 10 + b"\x01" + BODY[34:], "depth: a varint longer than 10 bytes"),
        (BODY[:SALT_AND_INDEX] + b"\x83\x00" + BODY[34:], "depth: a varint with a redundant trailing zero byte"),
        (BODY[:SALT_AND_INDEX] + b"\x41" + BODY[34:], "depth: 65 levels"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_byte(body: bytes, message: str) -> None:
    with pytest.raises(ProofEncodingError, match=message):
        decode_proof("alice", body)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, len(BODY) - 1), extra=st.binary(min_size=1, max_size=40))
def test_any_truncated_or_padded_body_is_refused(cut: int, extra: bytes) -> None:
    with pytest.raises(ProofEncodingError):
        decode_proof("alice", BODY[:cut])
    with pytest.raises(ProofEncodingError):
        decode_proof("alice", BODY + extra)
