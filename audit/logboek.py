"""Describe one processing operation in the shape of Logius' Logboek Dataverwerkingen v1.0.

The fields are the standard's (trace and span ids, name, times, status, processing activity,
data subject), plus who acted (`actor`), whose call caused it (`foreign_operation`), which
parties took part (`parties`: the parties that may see the entry) and under which convenant
(`convenant_id`), and free `attributes`. Everything is validated on construction, because a
sealed entry can never be corrected afterwards.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ACTOR_TYPES",
    "STATUSES",
    "Actor",
    "AuditEntry",
    "ForeignOperation",
    "format_time",
    "new_span_id",
    "new_trace_id",
]

# Logboek Dataverwerkingen v1.0, Logboek interface: `status` is Unset, Ok or Error.
STATUSES = ("Unset", "Ok", "Error")
ACTOR_TYPES = ("party", "client", "user", "system")

# W3C Trace Context §3.2.2.3-4: ids are lowercase hex, 16 bytes (trace) or 8 (span), not all zero.
_ID_PATTERNS = {32: re.compile(r"[0-9a-f]{32}"), 16: re.compile(r"[0-9a-f]{16}")}
# RFC 3339 §5.6 date-time, restricted to UTC ("Z") with exactly six fraction digits so that
# times compare as strings and serialise one way only.
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def new_trace_id() -> str:
    """Return a random W3C trace-context trace id (32 lowercase hex digits, not all zero)."""
    while (trace_id := secrets.token_hex(16)) == "0" * 32:
        pass
    return trace_id


def new_span_id() -> str:
    """Return a random W3C trace-context span id (16 lowercase hex digits, not all zero)."""
    while (span_id := secrets.token_hex(8)) == "0" * 16:
        pass
    return span_id


def format_time(moment: dt.datetime) -> str:
    """Return `moment` as RFC 3339 UTC with microseconds, e.g. 2026-03-01T12:00:00.000000Z."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


# The checks below build their messages only when they fail: entries are validated one by one
# on the request path and by the hundred thousand in bulk.


def _check_id(value: object, digits: int, what: str) -> None:
    """Refuse a trace or span id that is not lowercase hex of the right length, or all zero."""
    if (not isinstance(value, str) or _ID_PATTERNS[digits].fullmatch(value) is None
            or not value.strip("0")):
        raise ValueError(f"{what} must be {digits} lowercase hex digits, not all zero")


def _check_time(value: object, what: str) -> None:
    """Refuse a time that is not an existing RFC 3339 UTC instant with microseconds."""
    if not isinstance(value, str) or _TIME.fullmatch(value) is None:
        raise ValueError(f"{what} must look like 2026-03-01T12:00:00.000000Z")
    try:
        dt.datetime.fromisoformat(value[:-1])
    except ValueError as exc:
        raise ValueError(f"{what} is not a valid time: {value}") from exc


def _check_text(value: object, what: str) -> None:
    """Refuse a value that is not a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")


def _check_optional_text(value: object, what: str) -> None:
    """Refuse a value that is neither None nor a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{what} must be a non-empty string or None")


def _check_parties(value: object) -> None:
    """Refuse parties that are not a tuple of distinct, non-empty party ids without a comma."""
    # The search column lists them between commas (",a,b,"), so a comma in an id would let
    # "a,b" pass for party b.
    if (not isinstance(value, tuple) or len(set(value)) != len(value)
            or not all(isinstance(p, str) and p and "," not in p for p in value)):
        raise ValueError("parties must be a tuple of distinct non-empty party ids without a comma")


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who performed the operation: a party, one of its clients, a user or the broker itself."""

    type: str
    id: str
    party: str | None = None

    def __post_init__(self) -> None:
        """Validate the actor."""
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"actor type must be one of {', '.join(ACTOR_TYPES)}")
        _check_text(self.id, "actor id")
        _check_optional_text(self.party, "actor party")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignOperation:
    """The calling party's trace and span that caused this operation (its foreign_operation)."""

    trace_id: str
    span_id: str
    party: str

    def __post_init__(self) -> None:
        """Validate the ids and the party."""
        _check_id(self.trace_id, 32, "foreign trace_id")
        _check_id(self.span_id, 16, "foreign span_id")
        _check_text(self.party, "foreign party")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One processing operation, before it has a place in the log.

    `data_subject_id` is the convenant pseudonym, never a BSN; `attributes` must not hold personal
    data either: the log is kept for years and shown to privacy officers. `parties` are the
    parties that took part; each of them may see the entry.
    """

    trace_id: str
    span_id: str
    name: str
    start_time: str
    end_time: str
    status: str
    processing_activity_id: str
    actor: Actor
    parent_span_id: str | None = None
    data_subject_id: str | None = None
    data_subject_id_type: str | None = None
    foreign_operation: ForeignOperation | None = None
    parties: tuple[str, ...] = ()
    convenant_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        """Validate every field, so that nothing malformed is ever sealed."""
        _check_id(self.trace_id, 32, "trace_id")
        _check_id(self.span_id, 16, "span_id")
        if self.parent_span_id is not None:
            _check_id(self.parent_span_id, 16, "parent_span_id")
        _check_text(self.name, "name")
        _check_time(self.start_time, "start_time")
        _check_time(self.end_time, "end_time")
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        _check_text(self.processing_activity_id, "processing_activity_id")
        if not isinstance(self.actor, Actor):
            raise ValueError("actor must be an Actor")
        _check_optional_text(self.data_subject_id, "data_subject_id")
        _check_optional_text(self.data_subject_id_type, "data_subject_id_type")
        if (self.data_subject_id is None) != (self.data_subject_id_type is None):
            raise ValueError("data_subject_id and data_subject_id_type go together")
        if self.foreign_operation is not None and not isinstance(self.foreign_operation,
                                                                 ForeignOperation):
            raise ValueError("foreign_operation must be a ForeignOperation or None")
        _check_parties(self.parties)
        _check_optional_text(self.convenant_id, "convenant_id")
        if not isinstance(self.attributes, Mapping):
            raise ValueError("attributes must be a mapping")
        # A private copy: a caller mutating its dict afterwards must not change a sealed entry.
        object.__setattr__(self, "attributes", dict(self.attributes))

    def for_subject(self, span_id: str, data_subject_id: str, data_subject_id_type: str) -> AuditEntry:
        """Return this entry about one data subject, in a span of its own under this one's parent.

        A list of N pupils gives N such entries; only the fields that differ are checked again,
        which keeps a 100,000-pupil list cheap to log.
        """
        _check_id(span_id, 16, "span_id")
        _check_text(data_subject_id, "data_subject_id")
        _check_text(data_subject_id_type, "data_subject_id_type")
        clone = object.__new__(AuditEntry)
        for name in _ENTRY_FIELDS:
            object.__setattr__(clone, name, getattr(self, name))
        object.__setattr__(clone, "span_id", span_id)
        object.__setattr__(clone, "data_subject_id", data_subject_id)
        object.__setattr__(clone, "data_subject_id_type", data_subject_id_type)
        return clone

    def to_record(self, index: int, prev_hash: bytes) -> dict[str, Any]:
        """Return the JSON object this entry is at `index`, after the chain hash `prev_hash`."""
        foreign = self.foreign_operation
        return {
            "actor": {"id": self.actor.id, "party": self.actor.party, "type": self.actor.type},
            "attributes": dict(self.attributes),
            "convenant_id": self.convenant_id,
            "data_subject_id": self.data_subject_id,
            "data_subject_id_type": self.data_subject_id_type,
            "end_time": self.end_time,
            "foreign_operation": None if foreign is None else {
                "party": foreign.party, "span_id": foreign.span_id, "trace_id": foreign.trace_id},
            "index": index,
            "name": self.name,
            "parent_span_id": self.parent_span_id,
            "parties": list(self.parties),
            "prev_hash": prev_hash.hex(),
            "processing_activity_id": self.processing_activity_id,
            "span_id": self.span_id,
            "start_time": self.start_time,
            "status": self.status,
            "trace_id": self.trace_id,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AuditEntry:
        """Return the entry in a record (dropping its `index` and `prev_hash`).

        A record sealed before entries held `parties` and `convenant_id` comes back with none.
        """
        fields = {key: value for key, value in record.items() if key not in ("index", "prev_hash")}
        actor, foreign = fields.pop("actor"), fields.pop("foreign_operation", None)
        return cls(
            actor=Actor(**actor),
            foreign_operation=None if foreign is None else ForeignOperation(**foreign),
            parties=tuple(fields.pop("parties", ())),
            **fields,
        )


_ENTRY_FIELDS = tuple(f.name for f in fields(AuditEntry))
