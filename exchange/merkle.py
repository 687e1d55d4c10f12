"""Merkle tree hashing, inclusion and consistency proofs as in RFC 9162 (CT version 2).

Storage-agnostic: the tree is read through ``node(level, index)``, the hash of the perfect subtree
covering leaves ``[index * 2**level, (index + 1) * 2**level)``. Any range the RFC's recursion asks
for is a right fold of such perfect subtrees, so a proof at size ``n`` reads O(log² n) stored
hashes at most and never a whole level. :func:`needed_nodes` lists them up front, so a database
can fetch them in one query.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows RFC 9162 §2.1.3.2 and
§2.1.4.2 and needs nothing but hashes: it is what an auditor runs offline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

__all__ = [
    "NodeReader",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "needed_nodes",
    "node_hash",
    "range_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

NodeReader = Callable[[int, int], bytes]
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or a request that makes no sense (sizes out of range)."""


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(start: int, size: int, node: NodeReader) -> bytes:
    """MTH of leaves ``[start, start + size)`` (``start`` aligned, as the RFC recursion has it)."""
    if size == 0:
        return EMPTY_ROOT
    parts: list[bytes] = []
    offset = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            parts.append(node(level, offset >> level))
            offset += 1 << level
    result = parts.pop()
    while parts:
        result = node_hash(parts.pop(), result)
    return result


def root_hash(size: int, node: NodeReader) -> bytes:
    """The tree head hash at ``size``."""
    return range_hash(0, size, node)


def inclusion_proof(index: int, size: int, node: NodeReader) -> list[bytes]:
    """PATH(index, D[size]): sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            proof.append(range_hash(start + k, n - k, node))
            n = k
        else:
            proof.append(range_hash(start, k, node))
            start, n, m = start + k, n - k, m - k
    proof.reverse()
    return proof


def consistency_proof(old: int, new: int, node: NodeReader) -> list[bytes]:
    """PROOF(old, D[new]) of RFC 9162 §2.1.4.1."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from size {old} to {new}")
    proof: list[bytes] = []
    start, n, m, complete = 0, new, old, True
    while m != n:
        k = _split(n)
        if m <= k:
            proof.append(range_hash(start + k, n - k, node))
            n = k
        else:
            proof.append(range_hash(start, k, node))
            start, n, m, complete = start + k, n - k, m - k, False
    if not complete:
        proof.append(range_hash(start, m, node))
    proof.reverse()
    return proof


def needed_nodes(request: Callable[[NodeReader], object]) -> set[tuple[int, int]]:
    """The (level, index) pairs ``request`` reads, found by a dry run with dummy hashes."""
    seen: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        seen.add((level, index))
        return EMPTY_ROOT

    request(record)
    return seen


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes, *, hashed: bool = False
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows leaf ``index`` in the tree with ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf if hashed else leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is too short for the tree size")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the signed root hash")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows tree ``old`` is a prefix of tree ``new``."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency between sizes {old} and {new}")
    if old == new:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("two heads of the same size with different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != old_root:
        raise ProofError("the consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the consistency proof does not lead to the new root")
