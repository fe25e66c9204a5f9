"""Need-to-know: the one rule for which children a party may name, learn about or change.

A party may name a child only if it sent or received data about that child under that convenant,
as the audit log records it in the entries of `FLOWS` (or if it is submitting the child now, which
needs no rule). For any other child every operation answers as for a BSN nobody holds: the same
status, the same body, nothing that differs. The broker's own officers (party `None`) may name
every child some party holds.

Every operation that takes a BSN, a pseudonym, a subject or a scope asks here, API and review UI
alike; none keeps a check of its own. The rule reads the log's search columns `data_subject_id`,
`convenant_id`, `name` and `parties`, which `broker audit verify` re-derives from the canonical
entries, so nobody can widen a party's view by editing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from broker.app.errors import NotFound
from broker.models import AuditEntryRow

# The entries in which data about a child went from one party to another (or to the broker), each
# naming exactly the parties of that flow in its `parties` column: the sender, and the recipient.
FLOWS = (
    "record.received",
    "record.corrected",
    "delivery.created",
    "delivery.fetched",
    "match.record_disclosed",
    "match.known_to_both",
    "match.different_category",
)
ENDED = "case.ended"
# A fetch follows the delivery that made the flow; an end notice's fetch must not reopen the case.
CASE_FLOWS = tuple(name for name in FLOWS if name != "delivery.fetched")
CHUNK = 500

# The one answer for a child the caller may not name: the same as for a BSN nobody holds.
UNKNOWN_SUBJECT = "Uw partij heeft via de broker geen gegevens over deze leerling uitgewisseld."


def unknown_subject() -> NotFound:
    """The refusal for a child the caller may not name (and for one nobody holds)."""
    return NotFound(UNKNOWN_SUBJECT)


def _with_party(party: str) -> ColumnElement[bool]:
    return AuditEntryRow.parties.contains(f",{party},", autoescape=True)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def held(session: Session, convenant_id: str, party: str | None, pseudonyms: Iterable[str]) -> set[str]:
    """The pseudonyms among `pseudonyms` that `party` may name (party None: that any party holds)."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(pseudonyms))):
        query = select(AuditEntryRow.data_subject_id).where(
            AuditEntryRow.convenant_id == convenant_id,
            AuditEntryRow.data_subject_id.in_(chunk),
            AuditEntryRow.name.in_(FLOWS),
        )
        if party is not None:
            query = query.where(_with_party(party))
        found.update(str(s) for s in session.scalars(query.distinct()))
    return found


def nameable(
    session: Session, party: str | None, subjects: Mapping[str, str] | Mapping[None, str]
) -> dict[str, str]:
    """Of `subjects` ({convenant id or None: pseudonym}), those `party` may name, by their convenant.

    A pseudonym given without its convenant is looked up in every convenant (each has its own
    pseudonym key, so it can belong to one only). Anything else is left out, so a value the caller
    typed reaches the audit log only when it names a child the caller may name.
    """
    found: dict[str, str] = {}
    for convenant_id, pseudonym in subjects.items():
        query = select(AuditEntryRow.convenant_id).where(
            AuditEntryRow.data_subject_id == pseudonym, AuditEntryRow.name.in_(FLOWS)
        )
        if convenant_id is not None:
            query = query.where(AuditEntryRow.convenant_id == convenant_id)
        if party is not None:
            query = query.where(_with_party(party))
        match = session.scalars(query.limit(1)).first()
        if match is not None:
            found[match] = pseudonym
    return found


def holds(session: Session, convenant_id: str, party: str | None, pseudonym: str) -> bool:
    """Whether `party` may name the child `pseudonym` (party None: whether any party holds it)."""
    return bool(held(session, convenant_id, party, [pseudonym]))


def require_held(session: Session, convenant_id: str, party: str | None, pseudonym: str) -> None:
    """Refuse, as for a BSN nobody holds, a child `party` may not name."""
    if not holds(session, convenant_id, party, pseudonym):
        raise unknown_subject()


@dataclass(frozen=True)
class Flow:
    """One data flow about a child, as the audit log records it."""

    index: int
    name: str
    parties: frozenset[str]


def flows(
    session: Session, convenant_id: str, pseudonym: str, party: str | None = None, names: tuple[str, ...] = FLOWS
) -> list[Flow]:
    """The flows about one child (those `party` took part in, when given), and its case endings, in order."""
    query = select(AuditEntryRow.idx, AuditEntryRow.name, AuditEntryRow.parties).where(
        AuditEntryRow.convenant_id == convenant_id,
        AuditEntryRow.data_subject_id == pseudonym,
        AuditEntryRow.name.in_((*names, ENDED)),
    )
    if party is not None:
        query = query.where(_with_party(party))
    return [
        Flow(idx, name, frozenset(p for p in parties.split(",") if p))
        for idx, name, parties in session.execute(query.order_by(AuditEntryRow.idx))
    ]


def holders(session: Session, convenant_id: str, pseudonym: str) -> set[str]:
    """Every party that sent or received data about the child: for the broker's own use, never to be shown."""
    return set().union(*(f.parties for f in flows(session, convenant_id, pseudonym) if f.name != ENDED))


@dataclass(frozen=True)
class Case:
    """A party's current case about a child: whether it has one, and with which parties it exchanged."""

    open: bool
    counterparts: frozenset[str]


def current_case(session: Session, convenant_id: str, party: str, pseudonym: str) -> Case:
    """The party's flows about the child since their last ending, and the parties at their other end.

    An ending ends the case between the party that ended it and the parties it notified; the
    party's flows with anyone else go on.
    """
    ended_with: dict[str, int] = {}  # counterpart -> index of the last ending between the two
    ended_alone = -1  # the party's last ending of its own
    latest: dict[str, int] = {}  # counterpart -> index of the last flow between the two
    own = -1  # the last flow in which the party sent alone (to the broker)
    for flow in flows(session, convenant_id, pseudonym, party, CASE_FLOWS):
        others = flow.parties - {party}
        if flow.name == ENDED:
            for other in others:
                ended_with[other] = flow.index
            ended_alone = flow.index
            continue
        if not others:
            own = flow.index
        for other in others:
            latest[other] = flow.index
    counterparts = frozenset(p for p, index in latest.items() if index > ended_with.get(p, -1))
    return Case(open=bool(counterparts) or own > ended_alone, counterparts=counterparts)
