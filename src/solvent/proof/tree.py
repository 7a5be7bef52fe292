"""The Merkle-sum solvency tree over every account, built a layer at a time (hashing spec: proof/hashing.py).

Leaves are sorted by their own hash, so the tree depends on the accounts and the venue's secret, never on the
order the accounts arrive in (a leaf's position reveals nothing about its owner either). Each layer's preimages
are assembled as one (n, bytes) array by numpy and hashed row by row with hashlib, the only per-node Python,
split over the cores' processes for large layers; child amounts add as uint64 columns (the totals were checked
below 2^63, so no sum overflows).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.proof.hashing import AMOUNT_BYTES, HASH_BYTES, LEAF_TAG, NODE_TAG, PAD_HASH
from solvent.proof.leaves import SALT_BYTES, LeafAmounts, salt_hasher

U8Array = NDArray[np.uint8]
U64Array = NDArray[np.uint64]

_NODE = 1 + 2 * (HASH_BYTES + AMOUNT_BYTES)
_PAD = np.frombuffer(PAD_HASH, dtype=np.uint8)
#: Rows of a batch (accounts, or nodes of a layer) from which the hashing is split over processes.
PARALLEL_ROWS = 65_536
#: Processes at most (the 2-core target machine uses 2).
MAX_PROCESSES = 4


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of the tree: `hashes` (n, 32) uint8 and `amounts` (n, 5) uint64, padded to an even length
    below the root (the padding node last)."""

    hashes: U8Array
    amounts: U64Array


@dataclass(frozen=True, eq=False)
class SolvencyTree:
    """Every layer from the leaves (0) to the root, and each account's leaf: `leaf_index` (N,) its position in
    layer 0, `salt` (N, 32), `status` (N,), in the order the accounts were given (`account_ids`)."""

    layers: tuple[Layer, ...]
    account_ids: tuple[str, ...]
    leaf_index: NDArray[np.int64]
    salt: U8Array
    status: NDArray[np.uint8]

    @property
    def root(self) -> bytes:
        """The root's hash."""
        return bytes(self.layers[-1].hashes[0].tobytes())

    @property
    def totals(self) -> tuple[int, ...]:
        """The venue's totals (the root's amounts, AMOUNTS order, units)."""
        return tuple(int(v) for v in self.layers[-1].amounts[0])

    @property
    def depth(self) -> int:
        """Siblings on every path from a leaf to the root."""
        return len(self.layers) - 1


def _be(amounts: U64Array) -> U8Array:
    """(n, 5) uint64 -> (n, 40) bytes, big-endian."""
    return np.ascontiguousarray(amounts, dtype=">u8").view(np.uint8).reshape(amounts.shape[0], AMOUNT_BYTES)


def _digest_rows(buffer: bytes, width: int) -> bytes:
    """The SHA-256 digests, concatenated, of each `width`-byte row of `buffer` (a worker's task)."""
    view = memoryview(buffer)
    sha = hashlib.sha256
    return b"".join([sha(view[k : k + width]).digest() for k in range(0, len(buffer), width)])


def _digest_leaves(secret: bytes, ids: Sequence[bytes], tail: bytes) -> tuple[bytes, bytes]:
    """(salts, leaf hashes), each concatenated, of accounts `ids` whose amounts and status (41 bytes each) are
    `tail` (a worker's task)."""
    width = AMOUNT_BYTES + 1
    copy = salt_hasher(secret).copy
    sha = hashlib.sha256

    def salt_of(account: bytes) -> bytes:
        h = copy()
        h.update(account)
        return h.digest()

    salt = list(map(salt_of, ids))
    tails = [tail[k : k + width] for k in range(0, len(tail), width)]
    leaf = [sha(b"".join((LEAF_TAG, s, t, a))).digest() for s, t, a in zip(salt, tails, ids, strict=True)]
    return b"".join(salt), b"".join(leaf)


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    edges = [n * k // parts for k in range(parts + 1)]
    return list(itertools.pairwise(edges))


class _Hasher:
    """Hashes a batch in this process, or split over `processes` (this one and workers) when it has at least
    PARALLEL_ROWS rows: hashlib holds the GIL on messages this short, so threads would not help."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool: ProcessPoolExecutor | None = None
        if processes > 1:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            self.pool = ProcessPoolExecutor(processes - 1, mp_context=multiprocessing.get_context(method))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _parts(self, n: int) -> list[tuple[int, int]]:
        return _bounds(n, self.processes if self.pool is not None and n >= PARALLEL_ROWS else 1)

    def rows(self, rows: U8Array) -> U8Array:
        """(n, 32) SHA-256 of each row of (n, L) bytes."""
        n, width = rows.shape
        (first, *rest) = self._parts(n)
        pool = self.pool
        futures = [pool.submit(_digest_rows, rows[a:b].tobytes(), width) for a, b in rest] if pool else []
        digests = [_digest_rows(rows[first[0] : first[1]].tobytes(), width)]
        digests += [future.result() for future in futures]
        return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(n, HASH_BYTES)

    def leaves(self, secret: bytes, ids: Sequence[bytes], leaves: LeafAmounts) -> tuple[U8Array, U8Array]:
        """((N, 32) salts, (N, 32) leaf hashes) of accounts `ids` (UTF-8)."""
        n = len(ids)
        tail = np.empty((n, AMOUNT_BYTES + 1), dtype=np.uint8)  # amounts and status: between the salt and the id
        tail[:, :AMOUNT_BYTES] = _be(leaves.amounts)
        tail[:, AMOUNT_BYTES] = leaves.status
        (first, *rest) = self._parts(n)
        pool = self.pool
        futures = [pool.submit(_digest_leaves, secret, ids[a:b], tail[a:b].tobytes()) for a, b in rest] if pool else []
        done = [_digest_leaves(secret, ids[first[0] : first[1]], tail[first[0] : first[1]].tobytes())]
        done += [future.result() for future in futures]
        salt = np.frombuffer(b"".join(d[0] for d in done), dtype=np.uint8).reshape(n, SALT_BYTES)
        return salt, np.frombuffer(b"".join(d[1] for d in done), dtype=np.uint8).reshape(n, HASH_BYTES)


def _padded(hashes: U8Array, amounts: U64Array) -> Layer:
    """The layer, with the padding node appended when its length is odd."""
    if hashes.shape[0] % 2:
        hashes = np.concatenate([hashes, _PAD[np.newaxis]])
        amounts = np.concatenate([amounts, np.zeros((1, amounts.shape[1]), dtype=np.uint64)])
    return Layer(hashes, amounts)


def _parent(layer: Layer, hasher: _Hasher) -> tuple[U8Array, U64Array]:
    """The next layer up: each pair's node hash and amounts."""
    half = layer.hashes.shape[0] // 2
    be = _be(layer.amounts)
    rows = np.empty((half, _NODE), dtype=np.uint8)
    rows[:, 0] = NODE_TAG[0]
    side = HASH_BYTES + AMOUNT_BYTES
    for offset, part in ((0, slice(0, None, 2)), (side, slice(1, None, 2))):
        rows[:, 1 + offset : 1 + offset + HASH_BYTES] = layer.hashes[part]
        rows[:, 1 + offset + HASH_BYTES : 1 + offset + side] = be[part]
    return hasher.rows(rows), layer.amounts[0::2] + layer.amounts[1::2]


def _words(hashes: U8Array) -> NDArray[np.uint64]:
    """(n, 4) each hash as big-endian 64-bit words (their order is the bytes' order)."""
    return np.ascontiguousarray(hashes).view(">u8").reshape(hashes.shape[0], HASH_BYTES // 8).astype(np.uint64)


def canonical_order(hashes: U8Array) -> NDArray[np.int64]:
    """The permutation sorting hashes ascending as bytes: by their first word, all four where two share it."""
    words = _words(hashes)
    order = np.argsort(words[:, 0], kind="stable")
    first = words[order, 0]
    if np.any(first[1:] == first[:-1]):  # about 3e-8 at 1,000,000 random hashes
        order = np.lexsort(tuple(words[:, k] for k in range(words.shape[1] - 1, -1, -1)))
    return order.astype(np.int64)


def _check_distinct(account_ids: Sequence[str], salt: U8Array) -> None:
    """ValueError naming a repeated account id (distinct ids have distinct salts but for a 2^-64 chance that
    the first words of two meet, which the exact check below then clears)."""
    first = np.sort(_words(salt)[:, 0])
    if np.any(first[1:] == first[:-1]):
        repeated = [account for account, count in Counter(account_ids).items() if count > 1]
        if repeated:
            raise ValueError(f"account {repeated[0]!r} appears twice")


def default_processes() -> int:
    """One process per core, at most MAX_PROCESSES."""
    return min(os.cpu_count() or 1, MAX_PROCESSES)


def build_tree(account_ids: Sequence[str], leaves: LeafAmounts, secret: bytes, processes: int = 1) -> SolvencyTree:
    """The tree over accounts `account_ids` (N >= 1, distinct) with their committed amounts (`leaf_amounts`).

    `processes`: how many processes hash the batches of at least PARALLEL_ROWS rows (1: this process alone;
    `default_processes()`: one per core). The tree is the same whatever the number. The workers are started by
    multiprocessing's forkserver (spawn where there is none), which imports the calling script's main module:
    a script passing `processes` > 1 keeps its own work under `if __name__ == "__main__":`.
    """
    n = len(account_ids)
    if n == 0:
        raise ValueError("a solvency tree needs at least one account")
    processes = processes if n >= PARALLEL_ROWS else 1
    id_bytes = [account.encode() for account in account_ids]
    hasher = _Hasher(processes)
    try:
        salt, hashes = hasher.leaves(secret, id_bytes, leaves)
        _check_distinct(account_ids, salt)
        order = canonical_order(hashes)
        layers = [_padded(hashes[order], leaves.amounts[order])] if n > 1 else [Layer(hashes, leaves.amounts)]
        while layers[-1].hashes.shape[0] > 1:
            up_hashes, up_amounts = _parent(layers[-1], hasher)
            top = up_hashes.shape[0] == 1
            layers.append(Layer(up_hashes, up_amounts) if top else _padded(up_hashes, up_amounts))
    finally:
        hasher.close()
    leaf_index = np.empty(n, dtype=np.int64)
    leaf_index[order] = np.arange(n)
    return SolvencyTree(tuple(layers), tuple(account_ids), leaf_index, salt, leaves.status)
