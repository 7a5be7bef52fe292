"""The Merkle-sum solvency tree over every account, built a layer at a time (hashing spec: proof/hashing.py).

Leaves are sorted by their own hash, so the tree depends on the accounts and the venue's secret, never on the
order the accounts arrive in (a leaf's position reveals nothing about its owner either). Compiled kernels lay out
each preimage in a row buffer and hash it with OpenSSL's SHA-256 (proof/openssl.py), the salts' HMAC too, the
rows of a layer split into one part per thread; child amounts add as uint64 columns (the totals were checked
below 2^63, so no sum overflows). proof/hashing.py's one-node functions, over hashlib, are the kernels' twin.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.proof.hashing import AMOUNT_BYTES, HASH_BYTES, LEAF_TAG, NODE_TAG, PAD_HASH
from solvent.proof.leaves import SALT_BYTES, LeafAmounts, check_secret
from solvent.proof.openssl import (
    BLOCK_BYTES,
    digest_final,
    digest_init,
    digest_update,
    md_ctx_free,
    md_ctx_new,
    sha256,
)

U8Array = NDArray[np.uint8]
U64Array = NDArray[np.uint64]

_NODE = 1 + 2 * (HASH_BYTES + AMOUNT_BYTES)
#: A leaf's preimage before the account id: tag, salt, amounts, status.
_LEAF_FIXED = 1 + SALT_BYTES + AMOUNT_BYTES + 1
_PAD = np.frombuffer(PAD_HASH, dtype=np.uint8)
_IPAD, _OPAD = 0x36, 0x5C  # HMAC's pads (RFC 2104)


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


@jit(parallel=True)
def _leaf_kernel(
    amounts_be: U8Array,
    status: U8Array,
    id_bytes: U8Array,
    id_offsets: NDArray[np.int64],
    pads: U8Array,
    md: int,
    parts: int,
    salt: U8Array,
    leaf: U8Array,
) -> int:
    """Each account's salt, HMAC-SHA256(secret, id) from the key's inner and outer `pads` (2, 64), and leaf hash,
    into `salt` and `leaf` (N, 32), with OpenSSL's `md` (SHA-256); the rows split into `parts`. Returns the
    count of failed OpenSSL calls."""
    n = amounts_be.shape[0]
    longest = 0
    for i in range(n):
        longest = max(longest, id_offsets[i + 1] - id_offsets[i])
    failed = np.zeros(parts, dtype=np.int64)
    for part in prange(parts):
        ctx = md_ctx_new()
        if ctx == 0:
            failed[part] = 1
            continue
        row = np.empty(_LEAF_FIXED + longest, dtype=np.uint8)
        row[0] = LEAF_TAG[0]
        inner = np.empty(HASH_BYTES, dtype=np.uint8)
        ok = 0
        calls = 0
        for i in range(n * part // parts, n * (part + 1) // parts):
            start, stop = id_offsets[i], id_offsets[i + 1]
            ok += digest_init(ctx, md, 0)
            ok += digest_update(ctx, pads[0].ctypes.data, BLOCK_BYTES)
            ok += digest_update(ctx, id_bytes.ctypes.data + start, stop - start)
            ok += digest_final(ctx, inner.ctypes.data, 0)
            ok += digest_init(ctx, md, 0)
            ok += digest_update(ctx, pads[1].ctypes.data, BLOCK_BYTES)
            ok += digest_update(ctx, inner.ctypes.data, HASH_BYTES)
            ok += digest_final(ctx, salt[i].ctypes.data, 0)
            row[1 : 1 + SALT_BYTES] = salt[i]
            row[1 + SALT_BYTES : 1 + SALT_BYTES + AMOUNT_BYTES] = amounts_be[i]
            row[_LEAF_FIXED - 1] = status[i]
            row[_LEAF_FIXED : _LEAF_FIXED + stop - start] = id_bytes[start:stop]
            ok += digest_init(ctx, md, 0)
            ok += digest_update(ctx, row.ctypes.data, _LEAF_FIXED + stop - start)
            ok += digest_final(ctx, leaf[i].ctypes.data, 0)
            calls += 11
        md_ctx_free(ctx)
        failed[part] = calls - ok
    return int(failed.sum())


@jit(parallel=True)
def _node_kernel(hashes: U8Array, amounts_be: U8Array, md: int, parts: int, out: U8Array) -> int:
    """The hash of each pair (2k, 2k + 1) of a layer's nodes into `out` (n / 2, 32), with OpenSSL's `md`
    (SHA-256); the pairs split into `parts`. Returns the count of failed OpenSSL calls."""
    half = hashes.shape[0] // 2
    side = HASH_BYTES + AMOUNT_BYTES
    failed = np.zeros(parts, dtype=np.int64)
    for part in prange(parts):
        ctx = md_ctx_new()
        if ctx == 0:
            failed[part] = 1
            continue
        row = np.empty(_NODE, dtype=np.uint8)
        row[0] = NODE_TAG[0]
        ok = 0
        calls = 0
        for k in range(half * part // parts, half * (part + 1) // parts):
            for child in range(2):
                at = 1 + child * side
                row[at : at + HASH_BYTES] = hashes[2 * k + child]
                row[at + HASH_BYTES : at + side] = amounts_be[2 * k + child]
            ok += digest_init(ctx, md, 0)
            ok += digest_update(ctx, row.ctypes.data, _NODE)
            ok += digest_final(ctx, out[k].ctypes.data, 0)
            calls += 3
        md_ctx_free(ctx)
        failed[part] = calls - ok
    return int(failed.sum())


def _checked(failed: int) -> None:
    if failed:
        raise RuntimeError(f"OpenSSL failed {failed} SHA-256 calls")


def _hmac_pads(secret: bytes) -> U8Array:
    """(2, 64) the key, zero-padded to SHA-256's block, XOR the inner and the outer pad (RFC 2104)."""
    check_secret(secret)
    key = np.zeros(BLOCK_BYTES, dtype=np.uint8)
    key[: len(secret)] = np.frombuffer(secret, dtype=np.uint8)
    return np.stack([key ^ np.uint8(_IPAD), key ^ np.uint8(_OPAD)])


def _utf8(account_ids: Sequence[str]) -> tuple[U8Array, NDArray[np.int64]]:
    """(every id's UTF-8 bytes, one after another; (N + 1,) where each starts), encoded by Arrow."""
    ids = pa.array(account_ids, type=pa.large_string())
    if ids.null_count:
        raise ValueError("an account id is missing")
    _, offsets, data = ids.buffers()
    starts = np.frombuffer(offsets, dtype=np.int64)[ids.offset : ids.offset + len(ids) + 1]
    if data is None:  # every id empty: still a buffer, for the kernel's pointer
        return np.zeros(1, dtype=np.uint8), starts
    return np.frombuffer(data, dtype=np.uint8), starts


def _leaves(account_ids: Sequence[str], leaves: LeafAmounts, secret: bytes, parts: int) -> tuple[U8Array, U8Array]:
    """((N, 32) salts, (N, 32) leaf hashes) in the accounts' order."""
    flat, starts = _utf8(account_ids)
    n = len(account_ids)
    salt = np.empty((n, SALT_BYTES), dtype=np.uint8)
    leaf = np.empty((n, HASH_BYTES), dtype=np.uint8)
    pads = _hmac_pads(secret)
    _checked(_leaf_kernel(_be(leaves.amounts), leaves.status, flat, starts, pads, sha256(), parts, salt, leaf))
    return salt, leaf


def _padded(hashes: U8Array, amounts: U64Array) -> Layer:
    """The layer, with the padding node appended when its length is odd."""
    if hashes.shape[0] % 2:
        hashes = np.concatenate([hashes, _PAD[np.newaxis]])
        amounts = np.concatenate([amounts, np.zeros((1, amounts.shape[1]), dtype=np.uint64)])
    return Layer(hashes, amounts)


def _parent(layer: Layer, parts: int) -> tuple[U8Array, U64Array]:
    """The next layer up: each pair's node hash and amounts."""
    out = np.empty((layer.hashes.shape[0] // 2, HASH_BYTES), dtype=np.uint8)
    _checked(_node_kernel(layer.hashes, _be(layer.amounts), sha256(), parts, out))
    return out, layer.amounts[0::2] + layer.amounts[1::2]


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
    """Hashing threads (the CLI's `--processes`): one per core."""
    return os.cpu_count() or 1


def build_tree(account_ids: Sequence[str], leaves: LeafAmounts, secret: bytes, processes: int = 1) -> SolvencyTree:
    """The tree over accounts `account_ids` (N >= 1, distinct) with their committed amounts (`leaf_amounts`)
    and the salts' key `secret` (SECRET_BYTES long).

    `processes`: how many parts each batch of rows is hashed in, one per thread of the compiled kernels (1:
    this thread alone; `default_processes()`: one per core). The tree is the same whatever the number.
    """
    n = len(account_ids)
    if n == 0:
        raise ValueError("a solvency tree needs at least one account")
    parts = max(1, processes)
    salt, hashes = _leaves(account_ids, leaves, secret, parts)
    _check_distinct(account_ids, salt)
    order = canonical_order(hashes)
    layers = [_padded(hashes[order], leaves.amounts[order])] if n > 1 else [Layer(hashes, leaves.amounts)]
    while layers[-1].hashes.shape[0] > 1:
        up_hashes, up_amounts = _parent(layers[-1], parts)
        top = up_hashes.shape[0] == 1
        layers.append(Layer(up_hashes, up_amounts) if top else _padded(up_hashes, up_amounts))
    leaf_index = np.empty(n, dtype=np.int64)
    leaf_index[order] = np.arange(n)
    return SolvencyTree(tuple(layers), tuple(account_ids), leaf_index, salt, leaves.status)
