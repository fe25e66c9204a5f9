"""Derive the search columns a database keeps beside each sealed entry from the entry alone.

The canonical bytes are the record; the columns beside them (its name, subject, trace, time and
above all `parties`, which decides who may see the entry) are copies for search. `search_columns`
is the one derivation: the broker stores what it returns when it appends an entry, and
`audit.verify` derives it again from every entry's canonical bytes and compares, so a column
rewritten behind the database's guards is found as an edited entry, naming the column.

An entry sealed before `parties` and `convenant_id` were part of the record cannot vouch for
those two columns: they derive as UNRECORDED, which no stored value contradicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = ["SEARCH_COLUMNS", "UNRECORDED", "mismatched_column", "parties_column", "search_columns"]

SEARCH_COLUMNS: Final = (
    "trace_id",
    "name",
    "processing_activity_id",
    "data_subject_id",
    "actor_type",
    "actor_id",
    "actor_party",
    "parties",
    "convenant_id",
    "start_time",
    "prev_hash",
)
"""The stored columns besides idx, canonical, leaf_hash and chain_hash, in search_columns order."""


class _Unrecorded:
    """The value of a column that an entry's record does not hold."""

    __slots__ = ()

    def __repr__(self) -> str:
        """Name the marker."""
        return "UNRECORDED"


UNRECORDED: Final = _Unrecorded()


def parties_column(parties: Iterable[str]) -> str:
    """Return party ids as the column holds them: each between commas, so ",a," finds party a."""
    return "," + ",".join(parties) + ","


def search_columns(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return the search column values of an entry's record, in SEARCH_COLUMNS order.

    `start_time` is given in the entry's own notation (RFC 3339 UTC with microseconds) and
    `prev_hash` as bytes. Raise KeyError or TypeError if `record` is not an audit entry.
    """
    actor = record["actor"]
    if "parties" in record:
        parties = record["parties"]
        if type(parties) is not list:  # join refuses a list of anything but strings
            raise TypeError("parties must be a list of party ids")
        parties_value: Any = parties_column(parties)
        convenant_id = record["convenant_id"]
    else:
        parties_value = convenant_id = UNRECORDED
    return (
        record["trace_id"],
        record["name"],
        record["processing_activity_id"],
        record["data_subject_id"],
        actor["type"],
        actor["id"],
        actor["party"],
        parties_value,
        convenant_id,
        record["start_time"],
        bytes.fromhex(record["prev_hash"]),
    )


def mismatched_column(derived: Sequence[Any], stored: Sequence[Any]) -> str | None:
    """Return the first column whose stored value is not the derived one, or None if all agree."""
    for name, expected, value in zip(SEARCH_COLUMNS, derived, stored, strict=True):
        if expected is not UNRECORDED and value != expected:
            return name
    return None
