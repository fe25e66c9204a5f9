"""Verify a stored audit log end to end, as a privacy officer's verifier does with no database.

Every stored row is checked against what it claims: its leaf hash and chain hash are recomputed
from its canonical bytes, and the `index` and `prev_hash` inside those bytes must be its position
and the previous entry's chain hash. Rows that come with their search columns (a `ColumnRow`, as
the broker's database streams them) must also hold exactly the columns `audit.columns` derives
from those bytes. The leaf hashes then rebuild the Merkle tree, whose root at each signed
checkpoint's size must be the signed root, and consecutive checkpoints must be consistent
(RFC 9162 §2.1.4). The first problem is reported with its kind and index; at the same index a
broken chain or checkpoint is named before a column.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import cast

from audit.checkpoint import Checkpoint, NoteError, VerifierKey, open_note
from audit.columns import SEARCH_COLUMNS, UNRECORDED, mismatched_column, search_columns
from audit.diagnosis import ColumnRow, Problem, ProblemKind, Row, StoredRow, diagnose
from audit.entry import GENESIS_HASH
from audit.merkle import MerkleTree, verify_consistency

__all__ = ["ColumnRow", "Problem", "ProblemKind", "StoredRow", "VerifyResult", "verify_log"]

_leaf_hash_of = itemgetter(3)
_PARTIES = SEARCH_COLUMNS.index("parties")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome: how many entries verified, their Merkle root, and the first problem.

    `unrecorded` counts the entries whose columns were checked but whose record predates
    `parties` and `convenant_id`: those two columns of theirs have nothing to be checked against.
    """

    entries: int
    root: bytes
    checkpoints: int
    problem: Problem | None
    unrecorded: int = 0

    @property
    def ok(self) -> bool:
        """Return whether the log verified without any problem."""
        return self.problem is None


def _scan(rows: list[Row], expected: int, prev: bytes) -> int:
    """Return how many leading rows verify, starting at entry `expected` after chain hash `prev`.

    This is the hot loop: two SHA-256 calls and a few byte searches per row, no JSON parsing.
    """
    sha256 = hashlib.sha256
    hexlify = binascii.hexlify
    prev_hex = hexlify(prev)
    start = expected
    for row in rows:
        index, canonical, chain_hash, leaf_hash = row[0], row[1], row[2], row[3]
        if (index != expected
                or sha256(b"\x00" + canonical).digest() != leaf_hash
                or sha256(prev + canonical).digest() != chain_hash):
            break
        # The embedded fields, found without parsing: JCS sorts the keys (RFC 8785 §3.2.3), only
        # string-valued keys follow "prev_hash", and "index" precedes it with "name" between, so
        # in a sealed entry these are the top-level fields. Bytes crafted to mislead this search
        # are still bound by the chain and leaf hashes just checked, so the next entry's link or
        # a signed checkpoint catches them like any other rewrite.
        at = canonical.rfind(b',"prev_hash":"')
        key = canonical.rfind(b',"index":', 0, at)
        if (at < 0 or key < 0 or canonical[at + 14 : at + 78] != prev_hex
                or not canonical.startswith(b"%d," % expected, key + 9)):
            break
        prev = chain_hash
        prev_hex = hexlify(prev)
        expected += 1
    return expected - start


def _check_columns(rows: Sequence[ColumnRow]) -> tuple[int, Problem | None]:
    """Compare each row's stored search columns with those derived from its canonical bytes.

    Return how many rows have an `unrecorded` record, and the first row whose columns disagree.
    A second pass over rows the chain scan verified: one JSON parse per row.
    """
    loads = json.loads
    unrecorded = 0
    for index, canonical, _, _, stored in rows:
        try:
            derived = search_columns(loads(canonical))
        except (ValueError, KeyError, TypeError, RecursionError):
            return unrecorded, Problem(ProblemKind.EDITED, index,
                                       f"entry {index} is chained but is no audit entry: "
                                       "its columns cannot be derived from it")
        if derived != stored:
            column = mismatched_column(derived, stored)
            if column is not None:
                return unrecorded, Problem(
                    ProblemKind.EDITED, index,
                    f"the {column} column of entry {index} does not say what its canonical bytes say",
                    column)
        if derived[_PARTIES] is UNRECORDED:
            unrecorded += 1
    return unrecorded, None


def _first(*problems: Problem | None) -> Problem | None:
    """Return the problem with the lowest index, the earliest given of those at that index."""
    found = [problem for problem in problems if problem is not None]
    return min(found, key=lambda problem: -1 if problem.index is None else problem.index,
               default=None)


def _open_checkpoints(
    notes: Iterable[str],
    vkey: str | VerifierKey | Iterable[str | VerifierKey],
    origin: str | None,
) -> tuple[list[Checkpoint], Problem | None]:
    """Open every checkpoint note; stop at the first that is not validly signed for this log."""
    opened: list[Checkpoint] = []
    for number, note in enumerate(notes):
        try:
            checkpoint = open_note(note, vkey)
        except NoteError as exc:
            return opened, Problem(ProblemKind.BAD_SIGNATURE, None, f"checkpoint {number}: {exc}")
        if origin is not None and checkpoint.origin != origin:
            return opened, Problem(ProblemKind.BAD_SIGNATURE, None,
                                   f"checkpoint {number} is signed for log {checkpoint.origin!r}")
        opened.append(checkpoint)
    return sorted(opened, key=lambda checkpoint: checkpoint.size), None


def _check_checkpoints(
    tree: MerkleTree, checkpoints: list[Checkpoint]
) -> tuple[int, Problem | None]:
    """Compare checkpoints within the tree with its roots; return how many matched, first miss."""
    matched = 0
    vouched = 0  # every entry below this index is covered by a matching checkpoint
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        if checkpoint.size > tree.size:
            break
        if tree.root(checkpoint.size) != checkpoint.root:
            return matched, Problem(
                ProblemKind.CHECKPOINT_MISMATCH, vouched,
                f"entries {vouched}..{checkpoint.size - 1} do not hash to the root signed at "
                f"size {checkpoint.size}: they were rewritten after signing")
        if previous is not None and not verify_consistency(
                previous.size, checkpoint.size, previous.root, checkpoint.root,
                tree.prove_consistency(previous.size, checkpoint.size)):
            return matched, Problem(
                ProblemKind.CHECKPOINT_MISMATCH, previous.size,
                f"checkpoints at sizes {previous.size} and {checkpoint.size} are inconsistent")
        matched += 1
        vouched = checkpoint.size
        previous = checkpoint
    return matched, None


def verify_log(
    entries: Iterable[StoredRow] | Iterable[ColumnRow],
    checkpoints: Iterable[str],
    vkey: str | VerifierKey | Iterable[str | VerifierKey],
    progress: Callable[[int], None] | None = None,
    *,
    progress_every: int = 65_536,
    origin: str | None = None,
) -> VerifyResult:
    """Verify stored rows (index, canonical, chain_hash, leaf_hash), in index order, from index 0.

    A row may carry a fifth element, its stored search columns in `SEARCH_COLUMNS` order; they
    must be what `audit.columns.search_columns` derives from its canonical bytes.
    `checkpoints` are signed checkpoint notes and `vkey` the verifier key(s) they must carry a
    signature of (and, if given, `origin` the log they must name). `progress(n)` is called after
    every `progress_every` rows with the number of rows verified so far. Rows must hold `bytes`.
    Problems without an entry index (a bad checkpoint signature) have index None.
    """
    if progress_every < 1:
        raise ValueError("progress_every must be at least 1")
    opened, problem = _open_checkpoints(checkpoints, vkey, origin)
    if problem is not None:
        return VerifyResult(0, MerkleTree().root(), 0, problem)
    tree = MerkleTree()
    rows: Iterator[Row] = iter(entries)
    expected, prev, before_prev = 0, GENESIS_HASH, None
    chain_problem: Problem | None = None
    column_problem: Problem | None = None
    unrecorded = 0
    while chunk := list(islice(rows, progress_every)):
        good = _scan(chunk, expected, prev)
        if good and column_problem is None and len(chunk[0]) > 4:
            # The chain goes on being checked past a bad column: an entry that was inserted,
            # not edited, shows as a broken link right after it.
            count, column_problem = _check_columns(cast(list[ColumnRow], chunk[:good]))
            unrecorded += count
        if good:
            tree.extend(map(_leaf_hash_of, chunk[:good]))
            before_prev = chunk[good - 2][2] if good > 1 else prev
            prev = chunk[good - 1][2]
            expected += good
        if good < len(chunk):
            chain_problem = diagnose(chunk[good:], rows, expected, prev, before_prev)
            break
        if progress is not None:
            progress(expected)
    matched, problem = _check_checkpoints(tree, opened)
    if problem is None:
        problem = chain_problem
    if problem is None and opened and opened[-1].size > tree.size:
        problem = Problem(ProblemKind.TRUNCATED, tree.size,
                          f"the log has {tree.size} entries but a checkpoint signed "
                          f"{opened[-1].size}")
    return VerifyResult(tree.size, tree.root(), matched, _first(problem, column_problem),
                        unrecorded)
