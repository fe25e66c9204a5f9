"""Build RFC 6962 Merkle trees over leaf hashes and prove inclusion and consistency in them.

The tree hash (RFC 6962 §2.1, RFC 9162 §2.1.1) is MTH({}) = SHA-256(), MTH({d}) = SHA-256(0x00 ||
d), MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) with k the largest power of two
smaller than n. Every subtree that this recursion visits starts at a multiple of a power of two at
least as large as itself, so its hash is a right-to-left fold of *perfect* subtrees (2**level
leaves, aligned). Those perfect nodes are all a tree ever has to store: `MerkleTree` keeps them in
memory, and a database can keep them in a table and serve them through `NodeSource`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from audit.proof import (
    EMPTY_ROOT,
    HASH_SIZE,
    hash_children,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "NodeSource",
    "compute_root",
    "hash_children",
    "hash_leaf",
    "list_range_nodes",
    "plan_consistency",
    "plan_inclusion",
    "prove_consistency",
    "prove_inclusion",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

Node = tuple[int, int]
"""A perfect subtree as (level, index): it covers leaves [index << level, (index + 1) << level)."""


@runtime_checkable
class NodeSource(Protocol):
    """Anything that returns the hash of a complete, aligned subtree (level 0 = leaf hashes)."""

    def get_node(self, level: int, index: int) -> bytes:
        """Return the hash of perfect subtree `index` at `level`."""
        ...


def _largest_power_below(n: int) -> int:
    """Return the largest power of two strictly smaller than `n` (n >= 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def list_range_nodes(start: int, end: int) -> list[Node]:
    """List the perfect nodes, left to right, whose fold is MTH(D[start:end]).

    `start` must be a multiple of the largest power of two not above `end - start`, which holds
    for every subtree the RFC 6962 recursion visits.
    """
    nodes: list[Node] = []
    width = end - start
    offset = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            if offset % (1 << level):
                raise ValueError(f"range [{start}, {end}) is not a subtree of a Merkle tree")
            nodes.append((level, offset >> level))
            offset += 1 << level
    return nodes


def plan_inclusion(index: int, size: int) -> list[list[Node]]:
    """Return the nodes behind each hash of PATH(index, D[size]) (RFC 9162 §2.1.3.1).

    Each proof element is the fold of its list of perfect nodes; a database can fetch all of them
    in one query before building the proof.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    plan: list[list[Node]] = []
    start, end = 0, size
    # RFC 9162: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k,
    #                         = PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise.
    # Walking down collects the appended hashes top first, so the plan is reversed at the end.
    while end - start > 1:
        k = _largest_power_below(end - start)
        if index < start + k:
            plan.append(list_range_nodes(start + k, end))
            end = start + k
        else:
            plan.append(list_range_nodes(start, start + k))
            start += k
    plan.reverse()
    return plan


def plan_consistency(old_size: int, new_size: int) -> list[list[Node]]:
    """Return the nodes behind each hash of PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1).

    The proof between a tree and itself, and from the empty tree, is empty.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    plan: list[list[Node]] = []
    if old_size in (0, new_size):
        return plan
    start, end, m, complete = 0, new_size, old_size, True
    # RFC 9162: SUBPROOF(m, D[m], true) = {}, SUBPROOF(m, D[m], false) = {MTH(D[m])};
    # for m < n: SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) if m <= k,
    #            SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) otherwise.
    while m != end - start:
        k = _largest_power_below(end - start)
        if m <= k:
            plan.append(list_range_nodes(start + k, end))
            end = start + k
        else:
            plan.append(list_range_nodes(start, start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        plan.append(list_range_nodes(start, end))
    plan.reverse()
    return plan


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect subtree hashes right to left into the hash of the range they cover."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = hash_children(left, result)
    return result


def _as_source(source: NodeSource | Sequence[bytes], size: int) -> NodeSource:
    """Return `source` itself, or a tree built from the first `size` leaf hashes it lists."""
    if isinstance(source, NodeSource):
        return source
    if len(source) < size:
        raise ValueError(f"{len(source)} leaf hashes do not make a tree of size {size}")
    return MerkleTree(source[:size])


def _build(plan: list[list[Node]], source: NodeSource) -> list[bytes]:
    """Turn a proof plan into proof hashes by fetching and folding its nodes."""
    get = source.get_node
    return [_fold([get(level, index) for level, index in nodes]) for nodes in plan]


def compute_root(size: int, source: NodeSource | Sequence[bytes]) -> bytes:
    """Return MTH(D[size]) from perfect nodes (or from a list of leaf hashes)."""
    if size == 0:
        return EMPTY_ROOT
    return _build([list_range_nodes(0, size)], _as_source(source, size))[0]


def prove_inclusion(index: int, size: int, source: NodeSource | Sequence[bytes]) -> list[bytes]:
    """Return the audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1)."""
    return _build(plan_inclusion(index, size), _as_source(source, size))


def prove_consistency(
    old_size: int, new_size: int, source: NodeSource | Sequence[bytes]
) -> list[bytes]:
    """Return the consistency proof from size `old_size` to `new_size` (RFC 9162 §2.1.4.1)."""
    return _build(plan_consistency(old_size, new_size), _as_source(source, new_size))


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of a list of leaf hashes (RFC 6962 §2.1)."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    # Pairing a level and carrying an odd last node up unchanged gives the RFC 6962 split: the
    # carried node is the right-edge subtree the recursion would hash on its own.
    while len(level) > 1:
        odd = level[-1:] if len(level) % 2 else []
        level = [sha256(b"\x01" + left + right).digest() for left, right in
                 zip(level[0::2], level[1::2], strict=False)] + odd
    return level[0]


class MerkleTree:
    """An append-only Merkle tree that keeps every perfect subtree hash in memory.

    Level `l` is one bytearray of 32-byte hashes, node `i` at offset 32 * i; N leaves take about
    2N hashes (64 MB for a million leaves). Roots and proofs for any size up to `size` come from
    O(log² N) stored nodes.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        """Start a tree, optionally with leaf hashes already in it."""
        self._levels: list[bytearray] = [bytearray()]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Return the number of leaves."""
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash."""
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaf hashes and every perfect subtree they complete."""
        hashes = list(leaf_hashes)
        if not hashes:
            return
        if any(len(leaf) != HASH_SIZE for leaf in hashes):
            raise ValueError("leaf hashes must be 32 bytes")
        self._levels[0] += b"".join(hashes)
        sha256 = hashlib.sha256
        level = 0
        while True:
            below = self._levels[level]
            pairs = len(below) // (2 * HASH_SIZE)
            if level + 1 == len(self._levels):
                if pairs == 0:
                    return
                self._levels.append(bytearray())
            above = self._levels[level + 1]
            done = len(above) // HASH_SIZE
            if done == pairs:
                return  # nothing new here means nothing new higher up either
            chunk = bytes(below[done * 2 * HASH_SIZE : pairs * 2 * HASH_SIZE])
            above += b"".join([sha256(b"\x01" + chunk[i : i + 2 * HASH_SIZE]).digest()
                               for i in range(0, len(chunk), 2 * HASH_SIZE)])
            level += 1

    def get_node(self, level: int, index: int) -> bytes:
        """Return the hash of perfect subtree `index` at `level` (level 0: leaf hashes)."""
        if level < 0 or index < 0 or level >= len(self._levels):
            raise IndexError(f"no node ({level}, {index}) in a tree of size {self.size}")
        nodes = self._levels[level]
        start = index * HASH_SIZE
        if start + HASH_SIZE > len(nodes):
            raise IndexError(f"no node ({level}, {index}) in a tree of size {self.size}")
        return bytes(nodes[start : start + HASH_SIZE])

    def list_new_nodes(self, since_size: int) -> list[tuple[int, int, bytes]]:
        """List (level, index, hash) of the perfect nodes completed after size `since_size`.

        A database layer stores these after each append so that it can serve `get_node` itself.
        """
        found: list[tuple[int, int, bytes]] = []
        for level, nodes in enumerate(self._levels):
            for index in range(since_size >> level, len(nodes) // HASH_SIZE):
                start = index * HASH_SIZE
                found.append((level, index, bytes(nodes[start : start + HASH_SIZE])))
        return found

    def _check_size(self, size: int | None) -> int:
        """Return `size`, defaulting to the whole tree and refusing sizes it does not have."""
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree has {self.size} leaves, not {size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Return the tree hash of the first `size` leaves (all of them by default)."""
        return compute_root(self._check_size(size), self)

    def prove_inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the audit path of leaf `index` in the tree of the first `size` leaves."""
        return prove_inclusion(index, self._check_size(size), self)

    def prove_consistency(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof between the trees of `old_size` and `new_size` leaves."""
        return prove_consistency(old_size, self._check_size(new_size), self)
