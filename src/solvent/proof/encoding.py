"""The binary body of a solvent.proof/3 (and /2) document: one account's inclusion proof in about 1.3 KB at a
million accounts up to the root (solvent.proof/2), against 1.5 KB as fixed-width bytes and 3.4 KB as
solvent.proof/1's JSON, and about 0.9 KB up to a Merkle cap of 6 levels (solvent.proof/3, proof/cap.py).

    salt (32) || index || depth || E || im || mm || depth x (sibling hash (32) || 5 sibling amounts)

Every integer but the hashes and the salt is an unsigned LEB128 varint (7 bits a byte, low bits first, the top
bit set on every byte but the last): an amount is 8 bytes wide in the tree but most are far below 2^56, and a
leaf's are below 2^35 (34,000 USD). `index` is the leaf's position, whose bits from the lowest say on which side
each sibling lies (1: the sibling is on the left), its bits above the siblings' the cap node the path ends at;
`depth` is the number of siblings (the tree's depth less the cap's levels). The leaf carries its
equity E = equity - deficit (ZigZag: 2E for E >= 0, -2E - 1 below), IM and MM: its `equity` = max(E, 0),
`deficit` = max(-E, 0), `shortfall` = max(MM - E, 0) and status follow from them, as the verifier requires
anyway (proof/inclusion.py `leaf_status`), so leaving them out drops nothing a verifier needs and no leaf a
verifier would accept. The siblings' amounts are sums and travel whole, in AMOUNTS order.

A body is decoded exactly or refused: a varint of more than 10 bytes, one that does not fit 64 bits, one with a
redundant trailing zero byte (so each proof has one encoding), bytes missing, and bytes left over are each
`ProofEncodingError`, naming the byte offset and the field.
"""

from __future__ import annotations

from solvent.proof.hashing import HASH_BYTES, N_AMOUNTS
from solvent.proof.inclusion import InclusionProof, leaf_status
from solvent.proof.leaves import SALT_BYTES

_LIMIT = 2**64
#: The most bytes a 64-bit varint takes.
MAX_VARINT_BYTES = 10


class ProofEncodingError(ValueError):
    """A body that is not a valid encoding: says where (byte offset, field) and what is wrong."""


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if value % 2 == 0 else -((value + 1) >> 1)


def _varint(value: int, out: bytearray) -> None:
    if not 0 <= value < _LIMIT:
        raise ValueError(f"{value} is not an unsigned 64-bit integer")
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)


def encode_proof(proof: InclusionProof) -> bytes:
    """The body of `proof` (its account id travels beside it, in the document); ValueError where the leaf's
    status or shortfall do not follow from its amounts (such a leaf never verifies)."""
    if leaf_status(proof.amounts) != proof.status:
        raise ValueError("the leaf's status does not follow from its amounts")
    equity, deficit, im, mm, _ = proof.amounts
    out = bytearray(proof.salt)
    for value in (proof.index, len(proof.siblings), _zigzag(equity - deficit), im, mm):
        _varint(value, out)
    for digest, amounts in proof.siblings:
        out += digest
        for value in amounts:
            _varint(value, out)
    return bytes(out)


class _Reader:
    """Reads a body front to back, each read naming its field where it fails."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def fail(self, field: str, what: str) -> ProofEncodingError:
        return ProofEncodingError(f"byte {self.at}, {field}: {what}")

    def fixed(self, size: int, field: str) -> bytes:
        if self.at + size > len(self.body):
            raise self.fail(field, f"the proof ends after {len(self.body)} bytes (truncated)")
        chunk = self.body[self.at : self.at + size]
        self.at += size
        return chunk

    def varint(self, field: str) -> int:
        value = 0
        for k in range(MAX_VARINT_BYTES):
            if self.at + k >= len(self.body):
                raise self.fail(field, f"the proof ends after {len(self.body)} bytes (truncated)")
            byte = self.body[self.at + k]
            value |= (byte & 0x7F) << (7 * k)
            if byte < 0x80:
                if k and not byte:
                    raise self.fail(field, "a varint with a redundant trailing zero byte")
                if value >= _LIMIT:
                    raise self.fail(field, "a varint beyond 64 bits")
                self.at += k + 1
                return value
        raise self.fail(field, f"a varint longer than {MAX_VARINT_BYTES} bytes")


def decode_proof(account: str, body: bytes) -> InclusionProof:
    """The proof of `account` that `body` encodes (ProofEncodingError where it is not a valid encoding)."""
    read = _Reader(body)
    salt = read.fixed(SALT_BYTES, "salt")
    index = read.varint("index")
    depth = read.varint("depth")
    if depth > 64:
        raise read.fail("depth", f"{depth} levels: a tree of 64-bit leaf indices has at most 64")
    equity = _unzigzag(read.varint("leaf equity"))
    im = read.varint("leaf im")
    mm = read.varint("leaf mm")
    amounts = (max(equity, 0), max(-equity, 0), im, mm, max(mm - equity, 0))
    siblings = []
    for level in range(depth):
        digest = read.fixed(HASH_BYTES, f"sibling {level} hash")
        siblings.append((digest, tuple(read.varint(f"sibling {level} amount {k}") for k in range(N_AMOUNTS))))
    if read.at != len(body):
        raise read.fail("end", f"{len(body) - read.at} bytes after the last sibling")
    return InclusionProof(
        account=account,
        salt=salt,
        amounts=amounts,
        status=leaf_status(amounts),
        index=index,
        siblings=tuple(siblings),
    )
