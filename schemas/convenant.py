"""A convenant as typed, immutable objects: its fields, categories, parties, routing and rules.

The files are read by `schemas.convenant_file`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

FIELD_TYPES = {"bsn", "string", "text", "date", "postcode", "gemeente", "enum", "object"}
# The types whose values are free text a party types (the others have a shape of their own).
TEXT_TYPES = {"string", "text"}


class ConvenantError(ValueError):
    """A convenant file is malformed or inconsistent."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    label: str
    max_length: int | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    not_future: bool = False
    after: str | None = None
    screen: str | None = None
    # Lexicon categories the field is not screened for (a school's name may carry its denomination).
    screen_exempt: tuple[str, ...] = ()
    fields: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True)
class Item:
    """One row of the convenant's table of exchanged data: what, which fields, and why."""

    item: str
    fields: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Category:
    id: str
    label: str
    definition: str
    items: tuple[Item, ...]
    optional: frozenset[str]
    age_reference: str | None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for item in self.items for name in item.fields)


@dataclass(frozen=True)
class Party:
    id: str
    name: str
    role: str
    werkgebied: tuple[str, ...]
    provides: frozenset[str]


@dataclass(frozen=True)
class RoutingRule:
    from_role: str
    to_role: str


@dataclass(frozen=True)
class EndingReason:
    id: str
    code: str
    text: str


@dataclass(frozen=True)
class QuarterDates:
    """One quarter of the calendar: the lists describe the peildatum and are due by the deadline."""

    quarter: str
    peildatum: dt.date
    deadline: dt.date


@dataclass(frozen=True)
class Quarterly:
    """Which roles send a quarterly list, when reminders go out, and the calendar of quarters."""

    required_roles: tuple[str, ...]
    reminder_days_before: int
    calendar: tuple[QuarterDates, ...]

    def dates(self, quarter: str) -> QuarterDates | None:
        return next((q for q in self.calendar if q.quarter == quarter), None)


@dataclass(frozen=True)
class BreachRules:
    """What parties owe each other after a (suspected) breach: the deadlines and the required facts."""

    notify_within: dt.timedelta
    notify_source: str
    ap_within: dt.timedelta
    ap_source: str
    required_facts: tuple[str, ...]


@dataclass(frozen=True)
class RetentionRules:
    """How long the broker, a transit store, holds what it routes (the parties keep their own files)."""

    delivery_after_ack: dt.timedelta
    delivery_max: dt.timedelta
    lists_until_next_match: bool
    ended_immediately: bool
    source: str = ""


def _thaw(value: Any) -> Any:
    if isinstance(value, MappingProxyType | dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Convenant:
    id: str
    version: str
    title: str
    parties: tuple[Party, ...]
    categories: MappingProxyType[str, Category]
    fields: MappingProxyType[str, FieldSpec]
    routing: tuple[RoutingRule, ...]
    ending_reasons: tuple[EndingReason, ...]
    subject_id_field: str
    gemeente_field: str
    birth_date_field: str | None
    min_age: int
    max_age: int
    digest: str
    raw: MappingProxyType[str, Any] = field(repr=False)
    quarterly: Quarterly | None = None
    breach: BreachRules | None = None
    retention: RetentionRules | None = None

    def party(self, party_id: str) -> Party | None:
        return next((p for p in self.parties if p.id == party_id), None)

    @cached_property
    def werkgebied(self) -> frozenset[str]:
        """Every gemeente in which some party of the convenant works."""
        return frozenset(g for p in self.parties for g in p.werkgebied)

    def canonical_gemeente(self, name: str) -> str | None:
        """Return the gemeente as the convenant spells it, or None outside the werkgebied."""
        return self._gemeenten.get(name.strip().casefold())

    @cached_property
    def _gemeenten(self) -> dict[str, str]:
        return {g.casefold(): g for g in self.werkgebied}

    def recipients(self, sender: Party, gemeente: str) -> tuple[Party, ...]:
        """Return the parties a record about a pupil in `gemeente` is routed to."""
        to_roles = {r.to_role for r in self.routing if r.from_role == sender.role}
        return tuple(p for p in self.parties if p.role in to_roles and p.id != sender.id and gemeente in p.werkgebied)

    def to_dict(self) -> dict[str, Any]:
        """Return the definition as published to parties (the file's own structure)."""
        return {"digest": self.digest, **_thaw(self.raw)}
