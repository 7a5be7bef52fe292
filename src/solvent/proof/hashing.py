"""The hashes of the solvency tree (solvent.proof/1), one node at a time: the specification a verifier follows.

    leaf    = SHA-256(0x00 || salt (32) || amounts (5 x u64 big-endian) || status (1) || account id (UTF-8))
    node    = SHA-256(0x01 || left hash || left amounts || right hash || right amounts)
    padding = SHA-256(0x02), amounts all 0: the right sibling of the last node of a layer of odd length

A node's amounts are its children's sums, column by column, each below 2^64. The parent's hash commits to each
child's amounts separately, not only to their total: with the total alone (Maxwell's first construction), a
prover can show two siblings different sums for each other and count a liability once for both (Chalkias,
Lewi, Mohassel and Nikolaenko 2020, "Broken proofs of solvency"; ../shared/REFERENCES.md). Amounts are unsigned,
so no leaf can carry a negative value that cancels another's liability. The leading tag byte keeps a leaf, a
node and the padding from ever hashing the same bytes (a leaf cannot pass for a node). The tree's own builder
(proof/tree.py) hashes whole layers at once; this module is its one-node twin.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Final

LEAF_TAG: Final = b"\x00"
NODE_TAG: Final = b"\x01"
PAD_TAG: Final = b"\x02"
HASH_BYTES: Final = 32
N_AMOUNTS: Final = 5
AMOUNT_BYTES: Final = 8 * N_AMOUNTS
_AMOUNTS: Final = struct.Struct(">5Q")
#: The padding node's hash.
PAD_HASH: Final = hashlib.sha256(PAD_TAG).digest()


def pack_amounts(amounts: Sequence[int]) -> bytes:
    """Five unsigned 64-bit big-endian integers (struct.error if one is negative or too large)."""
    return _AMOUNTS.pack(*amounts)


def leaf_hash(salt: bytes, amounts: Sequence[int], status: int, account: str) -> bytes:
    """The hash of one account's leaf."""
    return hashlib.sha256(LEAF_TAG + salt + pack_amounts(amounts) + bytes((status,)) + account.encode()).digest()


def node_hash(left: bytes, left_amounts: Sequence[int], right: bytes, right_amounts: Sequence[int]) -> bytes:
    """The hash of the node above `left` and `right`."""
    return hashlib.sha256(NODE_TAG + left + pack_amounts(left_amounts) + right + pack_amounts(right_amounts)).digest()
