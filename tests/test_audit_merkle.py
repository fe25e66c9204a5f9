"""The RFC 6962 Merkle tree: published test vectors, a literal reference, corrupted proofs."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    compute_root,
    hash_leaf,
    plan_consistency,
    plan_inclusion,
    prove_consistency,
    prove_inclusion,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# -- published vectors ---------------------------------------------------------------------------
# The eight leaves and the roots of their prefixes from the Certificate Transparency reference
# implementation (google/certificate-transparency merkle_tree_test.cc), with the inclusion and
# consistency proofs as Trillian's merkle/log_verifier_test.go publishes them (leaf numbers
# there are 1-based; the indices below are 0-based).

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
LEAF_HASHES = [hash_leaf(leaf) for leaf in LEAVES]

INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


# -- a literal reference: RFC 6962 §2.1, §2.1.1 and §2.1.2 as written -------------------------


def ref_split(n: int) -> int:
    """Return k, the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """Return MTH(D[n]) over entries (not hashes), by the recursive definition."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = ref_split(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """Return PATH(m, D[n])."""
    if len(d) == 1:
        return []
    k = ref_split(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """Return SUBPROOF(m, D[n], b)."""
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = ref_split(len(d))
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


DATA = [os.urandom(i % 7) + bytes([i]) for i in range(64)]
DATA_HASHES = [hashlib.sha256(b"\x00" + d).digest() for d in DATA]
DATA_TREE = MerkleTree(DATA_HASHES)


def flip(node: bytes, at: int = 0) -> bytes:
    """Return `node` with one bit flipped."""
    return node[:at] + bytes([node[at] ^ 1]) + node[at + 1 :]


# -- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(9))
def test_roots_match_ct_vectors(size: int) -> None:
    """Every way of computing a root gives the published root of the first `size` leaves."""
    assert root_hash(LEAF_HASHES[:size]) == ROOTS[size]
    assert MerkleTree(LEAF_HASHES[:size]).root() == ROOTS[size]
    assert MerkleTree(LEAF_HASHES).root(size) == ROOTS[size]
    assert compute_root(size, LEAF_HASHES) == ROOTS[size]
    assert ref_mth(LEAVES[:size]) == ROOTS[size]


def test_empty_root_is_hash_of_nothing() -> None:
    """The empty tree's root is SHA-256 of the empty string."""
    assert EMPTY_ROOT == ROOTS[0] == MerkleTree().root()


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    """Inclusion proofs equal the published ones and verify against the published roots."""
    expected = [bytes.fromhex(node) for node in proof]
    assert prove_inclusion(index, size, LEAF_HASHES) == expected
    assert verify_inclusion(index, size, LEAF_HASHES[index], expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    """Consistency proofs equal the published ones and verify against the published roots."""
    expected = [bytes.fromhex(node) for node in proof]
    assert prove_consistency(old, new, LEAF_HASHES) == expected
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


# -- against the literal reference ----------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 65))
def test_inclusion_matches_reference(size: int) -> None:
    """For every leaf of a tree of `size`, the proof is RFC 6962's PATH and it verifies."""
    root = ref_mth(DATA[:size])
    assert DATA_TREE.root(size) == root
    for index in range(size):
        proof = DATA_TREE.prove_inclusion(index, size)
        assert proof == ref_path(index, DATA[:size])
        assert verify_inclusion(index, size, DATA_HASHES[index], proof, root)


@pytest.mark.parametrize("new", range(1, 65))
def test_consistency_matches_reference(new: int) -> None:
    """For every old size up to `new`, the proof is RFC 6962's PROOF and it verifies."""
    new_root = ref_mth(DATA[:new])
    for old in range(1, new + 1):
        proof = DATA_TREE.prove_consistency(old, new)
        assert proof == ref_subproof(old, DATA[:new], True)
        assert verify_consistency(old, new, ref_mth(DATA[:old]), new_root, proof)


# -- corrupted proofs ----------------------------------------------------------------------------

INCLUSION_CASES = [(i, n) for n in (1, 2, 3, 5, 7, 8, 13, 16, 31, 64) for i in {0, n // 2, n - 1}]


@pytest.mark.parametrize(("index", "size"), INCLUSION_CASES)
def test_corrupted_inclusion_proofs_fail(index: int, size: int) -> None:
    """A proof fails for another index, size, leaf or root, or with a hash or length altered."""
    leaf, root = DATA_HASHES[index], DATA_TREE.root(size)
    proof = DATA_TREE.prove_inclusion(index, size)
    assert verify_inclusion(index, size, leaf, proof, root)
    for other in {index - 1, index + 1, index ^ 2, size} - {index}:
        assert not verify_inclusion(other, size, leaf, proof, root)
    # Only sizes whose audit paths have another length are caught by the proof itself; the size
    # is otherwise bound by the signed checkpoint that carries it.
    for other in {size * 2, size // 2, 0} - {size}:
        assert not verify_inclusion(index, other, leaf, proof, root)
    assert not verify_inclusion(index, size, flip(leaf), proof, root)
    assert not verify_inclusion(index, size, leaf, proof, flip(root, 31))
    assert not verify_inclusion(index, size, leaf, proof, EMPTY_ROOT)
    for position in range(len(proof)):
        for at in (0, 17, 31):
            bad = list(proof)
            bad[position] = flip(bad[position], at)
            assert not verify_inclusion(index, size, leaf, bad, root)
    assert not verify_inclusion(index, size, leaf, [*proof, root], root)
    assert not verify_inclusion(index, size, leaf, [root, *proof], root)
    assert not verify_inclusion(index, size, leaf, [*proof, b""], root)
    if proof:
        assert not verify_inclusion(index, size, leaf, proof[:-1], root)
        assert not verify_inclusion(index, size, leaf, proof[1:], root)
        assert not verify_inclusion(index, size, leaf, [proof[0][:31], *proof[1:]], root)


CONSISTENCY_CASES = [(m, n) for n in (2, 3, 5, 8, 13, 16, 33, 64) for m in {1, n // 2, n - 1}]


@pytest.mark.parametrize(("old", "new"), CONSISTENCY_CASES)
def test_corrupted_consistency_proofs_fail(old: int, new: int) -> None:
    """A proof fails for other sizes or roots, swapped roots, or with any hash or length altered."""
    old_root, new_root = DATA_TREE.root(old), DATA_TREE.root(new)
    proof = DATA_TREE.prove_consistency(old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    for other in {old - 1, old + 1, old ^ 2, old * 2} - {old}:
        assert not verify_consistency(other, new, old_root, new_root, proof)
    for other in {new * 2, new // 2} - {new}:
        assert not verify_consistency(old, other, old_root, new_root, proof)
    assert not verify_consistency(old, new, flip(old_root), new_root, proof)
    assert not verify_consistency(old, new, old_root, flip(new_root), proof)
    assert not verify_consistency(old, new, new_root, old_root, proof)
    assert not verify_consistency(old, new, old_root, new_root, [])
    for position in range(len(proof)):
        bad = list(proof)
        bad[position] = flip(bad[position], 5)
        assert not verify_consistency(old, new, old_root, new_root, bad)
    assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    assert not verify_consistency(old, new, old_root, new_root, [proof[0], *proof])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, b""])
    assert not verify_consistency(old, new, old_root, new_root, proof[:-1])


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 5, EMPTY_ROOT, ROOTS[5], [], True),
        (1, 1, ROOTS[1], ROOTS[1], [], True),
        (1, 1, ROOTS[1], ROOTS[2], [], False),
        (0, 5, ROOTS[1], ROOTS[5], [], False),
        (0, 5, EMPTY_ROOT, ROOTS[5], [EMPTY_ROOT], False),
        (1, 1, ROOTS[1], ROOTS[1], [ROOTS[1]], False),
        (1, 0, ROOTS[1], EMPTY_ROOT, [], False),
        (2, 1, ROOTS[2], ROOTS[1], [], False),
        (1, 2, ROOTS[1], ROOTS[2], [], False),
    ],
)
def test_trivial_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], ok: bool
) -> None:
    """Equal and empty trees need an empty proof; shrinking trees never verify."""
    assert verify_consistency(old, new, old_root, new_root, proof) is ok


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (5, 3), (-1, 4)])
def test_inclusion_outside_the_tree_fails(index: int, size: int) -> None:
    """A leaf index outside the tree can neither be proven nor verified."""
    assert not verify_inclusion(index, size, LEAF_HASHES[0], [], ROOTS[1])
    with pytest.raises(ValueError):
        plan_inclusion(index, size)


# -- the incremental tree ------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 8, 64])
def test_appending_in_batches_builds_the_same_tree(batch: int) -> None:
    """A tree grown in batches has the same roots and nodes as one built at once."""
    tree = MerkleTree()
    for start in range(0, 64, batch):
        tree.extend(DATA_HASHES[start : start + batch])
        assert tree.root() == ref_mth(DATA[: tree.size])
    assert tree.list_new_nodes(0) == DATA_TREE.list_new_nodes(0)


@pytest.mark.parametrize("since", [0, 1, 7, 8, 33])
def test_new_nodes_are_what_a_store_needs(since: int) -> None:
    """Nodes stored after each append serve every proof through the NodeSource protocol."""

    class Store:
        """A dictionary standing in for a database table of (level, index) -> hash."""

        def __init__(self) -> None:
            """Start empty."""
            self.nodes: dict[tuple[int, int], bytes] = {}

        def get_node(self, level: int, index: int) -> bytes:
            """Return a stored node."""
            return self.nodes[level, index]

    store, tree = Store(), MerkleTree(DATA_HASHES[:since])
    store.nodes.update(((level, index), node) for level, index, node in tree.list_new_nodes(0))
    tree.extend(DATA_HASHES[since:])
    store.nodes.update(((level, index), node) for level, index, node in tree.list_new_nodes(since))
    assert len(store.nodes) == 2 * 64 - 1
    assert compute_root(50, store) == DATA_TREE.root(50)
    assert prove_inclusion(37, 50, store) == DATA_TREE.prove_inclusion(37, 50)
    assert prove_consistency(21, 50, store) == DATA_TREE.prove_consistency(21, 50)
    needed = {node for nodes in plan_consistency(21, 50) for node in nodes}
    assert needed <= set(store.nodes)


def test_wrong_leaf_hash_length_is_refused() -> None:
    """Leaf hashes must be 32 bytes."""
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree([b"\x00" * 31])


def test_proofs_at_a_million_leaves_are_fast() -> None:
    """With a million leaves, inclusion and consistency proofs take well under 5 ms each."""
    blob = os.urandom(32 * 1_000_000)
    tree = MerkleTree(blob[i : i + 32] for i in range(0, len(blob), 32))
    root = tree.root()
    started = time.perf_counter()
    for index in range(0, 1_000_000, 10_007):
        proof = tree.prove_inclusion(index)
        assert verify_inclusion(index, tree.size, tree.get_node(0, index), proof, root)
    inclusion = (time.perf_counter() - started) / 100
    started = time.perf_counter()
    for old in range(1, 1_000_000, 10_007):
        proof = tree.prove_consistency(old, 999_999)
        assert len(proof) < 45
    consistency = (time.perf_counter() - started) / 100
    assert inclusion < 0.005 and consistency < 0.005
