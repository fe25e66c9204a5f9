"""Hash Merkle tree nodes and check inclusion and consistency proofs (RFC 6962, RFC 9162).

This is the part of the Merkle code a verifier needs without a tree: the two hash functions and
the two proof verification algorithms, written step for step as RFC 9162 §2.1.3.2 and §2.1.4.2
give them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "hash_children",
    "hash_leaf",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

# RFC 6962 §2.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(data: bytes) -> bytes:
    """Return the leaf hash SHA-256(0x00 || data) (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash SHA-256(0x01 || left || right) (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _well_formed(proof: Sequence[bytes], *hashes: bytes) -> bool:
    """Return whether every proof element and given hash is exactly one SHA-256 digest."""
    return all(len(node) == HASH_SIZE for node in proof) and all(
        len(node) == HASH_SIZE for node in hashes
    )


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return whether `proof` shows leaf `index` with `leaf_hash` in the tree `root` of `size`."""
    if not _well_formed(proof, leaf_hash, root):
        return False
    # RFC 9162 §2.1.3.2, steps 1-5.
    if index >= size or index < 0:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return whether `proof` shows the tree `old_root` is a prefix of the tree `new_root`.

    RFC 9162 §2.1.4.2 covers 0 < old_size < new_size. Around it: a tree is consistent with
    itself through the empty proof (§2.1.4.1 defines PROOF(n, D[n]) as empty), and the empty
    tree, whose root is SHA-256() (RFC 6962 §2.1), is a prefix of every tree.
    """
    if not _well_formed(proof, old_root, new_root):
        return False
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    # RFC 9162 §2.1.4.2, steps 1-7.
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
