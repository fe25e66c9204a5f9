"""Name the first tampering in a stored log, once the fast scan has found where it starts.

Only the entry at the first failing position and the rows after it are looked at, with full JSON
parsing: this runs once per verification, on the failure path.

How the kinds differ, with e the first index that did not verify and prev the chain hash of e-1:

* edited: the row's bytes do not match its own stored hashes; or it claims index e but does not
  link to prev (its prev_hash was changed); or it links correctly but its successor does not link
  to it (entry e-1 was replaced and resealed, so the first bad index is e-1).
* deleted: the row claims a later index and no later row claims e (or the row is unreadable
  and the index column jumps past e).
* reordered: the row claims a later index, index e does turn up further on, and no index occurs
  twice: the same entries in another order.
* inserted: a row claims an index that was already seen (a copy or a fork), or a row that does
  not fit is followed by the genuine entry e, or a claimed index cannot belong to this log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ColumnRow", "Problem", "ProblemKind", "Row", "StoredRow", "diagnose", "peek_index"]

StoredRow = tuple[int, bytes, bytes, bytes]
"""What the database stores per entry: (index, canonical bytes, chain hash, leaf hash)."""

ColumnRow = tuple[int, bytes, bytes, bytes, tuple[Any, ...]]
"""A stored row with the values of its search columns (`audit.columns.SEARCH_COLUMNS` order)."""

Row = StoredRow | ColumnRow
"""Either kind of row: verify_log and diagnose take both."""


class ProblemKind(StrEnum):
    """What went wrong first."""

    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first problem found: its kind, the first index it affects, and an explanation.

    `column` names the stored search column that contradicts its entry's canonical bytes, when
    that is the problem.
    """

    kind: ProblemKind
    index: int | None
    detail: str
    column: str | None = None


@dataclass(frozen=True, slots=True)
class _Claim:
    """What a row's own bytes claim: its index and the chain hash it follows."""

    index: int
    prev: bytes
    consistent: bool  # its bytes hash to its stored leaf and chain hash (given that prev)


def _parse(canonical: bytes) -> tuple[int, bytes] | None:
    """Return the index and prev_hash an entry's bytes claim, or None if it is no entry."""
    try:
        record = json.loads(canonical)
        index, prev = record["index"], bytes.fromhex(record["prev_hash"])
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    if type(index) is not int or index < 0 or len(prev) != 32:
        return None
    return index, prev


def peek_index(canonical: bytes) -> int | None:
    """Return the `index` an entry's bytes claim, cheaply, or None if it has none."""
    # JCS sorts keys and every key after "index" holds a string, null or a list of strings, in
    # which `,"index":` cannot occur, so the last one is the top-level one in an entry as sealed.
    at = canonical.rfind(b',"index":')
    if at >= 0:
        end = canonical.find(b",", at + 9)
        digits = canonical[at + 9 : end] if end > 0 else b""
        if digits.isdigit() and (digits == b"0" or not digits.startswith(b"0")):
            return int(digits)
    parsed = _parse(canonical)
    return None if parsed is None else parsed[0]


def _claim(row: Row) -> _Claim | None:
    """Parse what a row claims and whether its bytes match its own stored hashes."""
    canonical, chain_hash, leaf_hash = row[1], row[2], row[3]
    parsed = _parse(canonical)
    if parsed is None:
        return None
    index, prev = parsed
    sha256 = hashlib.sha256
    consistent = (sha256(b"\x00" + canonical).digest() == leaf_hash
                  and sha256(prev + canonical).digest() == chain_hash)
    return _Claim(index, prev, consistent)


class _Rows:
    """The rows from the first failure on, read from the iterator only as far as needed."""

    def __init__(self, first: list[Row], rest: Iterator[Row]) -> None:
        """Hold the rows read so far and the iterator with the rest."""
        self._rows = first
        self._rest = rest

    def get(self, position: int) -> Row | None:
        """Return the row `position` places after the first failing one, if there is one."""
        while len(self._rows) <= position:
            row = next(self._rest, None)
            if row is None:
                return None
            self._rows.append(row)
        return self._rows[position]

    def claimed_indices(self) -> list[int | None]:
        """Return the index every row after the first failing one claims (reads them all).

        Only the indices are kept, not the rows: this may run over the rest of a large log.
        """
        claimed = [peek_index(row[1]) for row in self._rows[1:]]
        claimed.extend(peek_index(row[1]) for row in self._rest)
        return claimed


def _links(row: Row | None, prev: bytes, index: int) -> bool:
    """Return whether `row` is a sound entry `index` following chain hash `prev`."""
    claim = None if row is None else _claim(row)
    return claim is not None and claim.consistent and claim.prev == prev and claim.index == index


def diagnose(
    first: list[Row],
    rest: Iterator[Row],
    expected: int,
    prev: bytes,
    before_prev: bytes | None,
) -> Problem:
    """Classify the failure at `first[0]`, the row where entry `expected` should have been.

    `prev` and `before_prev` are the verified chain hashes of entries expected-1 and expected-2
    (GENESIS_HASH standing in before entry 0; `before_prev` is None when expected < 1).
    """
    rows = _Rows(first, rest)
    e = expected
    row = first[0]
    stored_index = row[0]
    claim = _claim(row)
    if claim is None or not claim.consistent:
        if stored_index > e:
            return Problem(ProblemKind.DELETED, e,
                           f"the index column jumps from {e - 1} to {stored_index}")
        if claim is None:
            return Problem(ProblemKind.EDITED, e, f"entry {e} is not a JSON audit entry any more")
        return Problem(ProblemKind.EDITED, e,
                       f"entry {e}'s bytes do not match its stored leaf or chain hash")
    if claim.index == e and claim.prev == prev:
        return Problem(ProblemKind.EDITED, e,
                       f"entry {e} is sound but stored as index {stored_index} "
                       "or not laid out as sealed")
    if claim.index == e:
        after = rows.get(1)
        if _links(after, prev, e):
            return Problem(ProblemKind.INSERTED, e,
                           f"an extra entry claiming index {e} stands before the real entry {e}")
        if e > 0 and _links(after, row[2], e + 1):
            return Problem(ProblemKind.EDITED, e - 1,
                           f"entry {e} and its successors follow a different entry {e - 1} "
                           f"(prev_hash {claim.prev.hex()[:16]}...) than the one stored")
        return Problem(ProblemKind.EDITED, e,
                       f"entry {e}'s prev_hash does not link to entry {e - 1}")
    if claim.index < e:
        if claim.index == e - 1 and claim.prev == before_prev:
            # Two rows claim e-1 after the same entry e-2: the one entry e links to is genuine.
            if _links(rows.get(1), row[2], e):
                return Problem(ProblemKind.INSERTED, e - 1,
                               f"an extra entry claiming index {e - 1} stands before "
                               f"the real entry {e - 1}")
        return Problem(ProblemKind.INSERTED, e,
                       f"the entry at position {e} claims index {claim.index}, seen already")
    later = rows.claimed_indices()
    if e not in later:
        return Problem(ProblemKind.DELETED, e,
                       f"entry {e} is missing: the next entry present claims index {claim.index}")
    if claim.index in later or claim.index >= e + 1 + len(later):
        return Problem(ProblemKind.INSERTED, e,
                       f"the entry at position {e} (claiming index {claim.index}) "
                       "does not belong to this log")
    return Problem(ProblemKind.REORDERED, e,
                   f"the entry at position {e} claims index {claim.index}; "
                   f"entry {e} comes later")

