"""RFC 9162 Merkle proofs against a naive transcription of the RFC's recursive definitions."""

from __future__ import annotations

import random

import pytest

from exchange import merkle


def naive_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return merkle.leaf_hash(leaves[0])
    k = merkle._split(len(leaves))
    return merkle.node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = merkle._split(n)
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [naive_mth(leaves)]
    k = merkle._split(n)
    if m <= k:
        return naive_subproof(m, leaves[:k], complete) + [naive_mth(leaves[k:])]
    return naive_subproof(m - k, leaves[k:], False) + [naive_mth(leaves[:k])]


class MemoryTree:
    """Perfect-subtree hashes kept the way the ledger keeps them."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def append(self, leaf: bytes) -> None:
        index, level = self.size, 0
        self.nodes[(0, index)] = merkle.leaf_hash(leaf)
        while index & 1:
            left = self.nodes[(level, index - 1)]
            right = self.nodes[(level, index)]
            index >>= 1
            level += 1
            self.nodes[(level, index)] = merkle.node_hash(left, right)
        self.size += 1

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


@pytest.fixture(scope="module")
def tree():
    leaves = [f"event {i}".encode() for i in range(70)]
    t = MemoryTree()
    for leaf in leaves:
        t.append(leaf)
    return leaves, t


def test_roots_match_the_rfc_definition(tree):
    leaves, t = tree
    for n in range(0, len(leaves) + 1):
        assert merkle.root_hash(n, t.node) == naive_mth(leaves[:n])


def test_inclusion_proofs_match_and_verify(tree):
    leaves, t = tree
    for n in range(1, len(leaves) + 1):
        root = merkle.root_hash(n, t.node)
        for m in range(n):
            proof = merkle.inclusion_proof(m, n, t.node)
            assert proof == naive_path(m, leaves[:n])
            merkle.verify_inclusion(leaves[m], m, n, proof, root)


def test_consistency_proofs_match_and_verify(tree):
    leaves, t = tree
    for n in range(1, len(leaves) + 1):
        new_root = merkle.root_hash(n, t.node)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, t.node)
            assert proof == (naive_subproof(m, leaves[:n], True) if m < n else [])
            merkle.verify_consistency(m, n, merkle.root_hash(m, t.node), new_root, proof)


def test_tampering_is_detected(tree):
    leaves, t = tree
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(2, len(leaves))
        m = rng.randrange(n)
        root = merkle.root_hash(n, t.node)
        proof = merkle.inclusion_proof(m, n, t.node)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaves[m] + b"!", m, n, proof, root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaves[m], (m + 1) % n if n > 1 else m, n, proof, root)
        if proof:
            bad = list(proof)
            bad[rng.randrange(len(bad))] = bytes(32)
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(leaves[m], m, n, bad, root)
        old = rng.randint(1, n - 1)
        cproof = merkle.consistency_proof(old, n, t.node)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, n, bytes(32), root, cproof)
        with pytest.raises(merkle.ProofError):  # a proof for another size
            merkle.verify_consistency(
                old,
                n - 1 if n - 1 > old else n,
                merkle.root_hash(old, t.node),
                root,
                merkle.consistency_proof(old, n - 1, t.node) if n - 1 > old else cproof[:-1],
            )


def test_needed_nodes_is_logarithmic(tree):
    _, t = tree
    wanted = merkle.needed_nodes(lambda node: merkle.inclusion_proof(37, 70, node))
    assert wanted <= set(t.nodes)
    assert len(wanted) <= 2 * (70).bit_length() ** 2


def test_bad_requests_are_refused():
    t = MemoryTree()
    t.append(b"a")
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(1, 1, t.node)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(2, 1, t.node)
