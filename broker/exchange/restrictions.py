"""Restrictions of processing (AVG art. 18) as routing applies them, per flow.

Art. 18 binds each controller: a party's restriction holds back what would go to or from that
party about the pupil; the broker's own (asked by its officer) holds back every flow. Where a
restriction takes effect decides who can tell it exists:

- the sender's own restriction keeps its records at the broker (the sender is told: it asked);
- a recipient's or the broker's restriction lets the record travel to the broker as any other and
  holds it back when the recipient fetches, so the sender's answer is the same as for any pupil and
  never tells it about another party's restriction (need-to-know);
- the quarterly match leaves the pupil out of a pair when either party of the pair or the broker
  restricted it; the counts each side gets are computed without it, so they reveal nothing either.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.models import SubjectRestriction

BROKER = "broker"  # the requester of a restriction the broker's own officer asked for


@dataclass(frozen=True)
class Restrictions:
    """The active restrictions of one convenant: per pupil, who asked for one."""

    requesters: dict[str, frozenset[str]] = field(default_factory=dict)

    def asked_by(self, pseudonym: str, party: str) -> bool:
        """Whether `party` itself restricted the pupil."""
        return party in self.requesters.get(pseudonym, ())

    def holds_back(self, pseudonym: str, recipient: str) -> bool:
        """Whether a record about the pupil may not be handed to `recipient` (its own or the broker's)."""
        return bool(self.requesters.get(pseudonym, frozenset()) & {BROKER, recipient})

    def blocks(self, pseudonym: str, a: str, b: str) -> bool:
        """Whether the pupil stays out of anything between `a` and `b` (either one's or the broker's)."""
        return bool(self.requesters.get(pseudonym, frozenset()) & {BROKER, a, b})

    def __bool__(self) -> bool:
        return bool(self.requesters)


def active_restrictions(session: Session, convenant_id: str) -> Restrictions:
    """The active restrictions of a convenant: one query, however long the list."""
    requesters: dict[str, set[str]] = defaultdict(set)
    rows = session.execute(
        select(SubjectRestriction.pseudonym, SubjectRestriction.requested_by).where(
            SubjectRestriction.convenant_id == convenant_id, SubjectRestriction.lifted_at.is_(None)
        )
    )
    for pseudonym, requested_by in rows:
        requesters[pseudonym].add(requested_by)
    return Restrictions({p: frozenset(r) for p, r in requesters.items()})
