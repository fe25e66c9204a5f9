"""How breaches are shown: the API's representation, the history, the notices and the register."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.app.timefmt import local_text
from broker.breaches.containment import suspensions_of
from broker.breaches.impact import Scope
from broker.breaches.notices import party_name
from broker.breaches.state import (
    AFFECTED,
    BEVESTIGD,
    BROKER_REPORTER,
    GESLOTEN,
    TE_LAAT,
    derive_state,
    is_late,
    parties_of,
)
from broker.models import Breach, BreachEvent, BreachParty, OutboxAttempt, OutboxEntry
from schemas.convenant import Convenant

# -- presentation -----------------------------------------------------------------------------------


def events_of(session: Session, breach: Breach) -> list[BreachEvent]:
    return list(
        session.scalars(select(BreachEvent).where(BreachEvent.breach_id == breach.id).order_by(BreachEvent.seq))
    )


@dataclass(frozen=True)
class Notice:
    """One queued notice of a breach and every attempt to deliver it."""

    entry: OutboxEntry
    attempts: list[OutboxAttempt]


def notices_of(session: Session, breach: Breach) -> list[Notice]:
    """The breach's notices (webhooks and e-mails, to parties and officers), oldest first."""
    entries = session.scalars(
        select(OutboxEntry)
        .where(OutboxEntry.dedupe_key.startswith(f"breach:{breach.id}:", autoescape=True))
        .order_by(OutboxEntry.created_at, OutboxEntry.id)
    ).all()
    attempts: dict[str, list[OutboxAttempt]] = defaultdict(list)
    if entries:
        for attempt in session.scalars(
            select(OutboxAttempt)
            .where(OutboxAttempt.entry_id.in_([e.id for e in entries]))
            .order_by(OutboxAttempt.attempted_at)
        ):
            attempts[attempt.entry_id].append(attempt)
    return [Notice(entry, attempts[entry.id]) for entry in entries]


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def view(
    session: Session, breach: Breach, convenant: Convenant, now: dt.datetime, *, with_events: bool = False
) -> dict[str, Any]:
    """A breach as the API shows it; the state is derived as of `now`, so a deadline never waits for a job."""
    parties = parties_of(session, breach)
    state = derive_state(breach, parties, now)
    seconds_left = int((breach.notify_deadline - now).total_seconds())
    shown: dict[str, Any] = {
        "id": breach.id,
        "number": breach.number,
        "convenant_id": breach.convenant_id,
        "reporting_party": breach.reporting_party_id,
        "reported_by": breach.reported_by,
        "reported_at": breach.reported_at.isoformat(),
        "detected_at": breach.detected_at.isoformat(),
        "detected_at_local": local_text(breach.detected_at),
        "deadline": breach.notify_deadline.isoformat(),
        "deadline_local": local_text(breach.notify_deadline),
        "ap_deadline": breach.ap_deadline.isoformat(),
        "ap_deadline_local": local_text(breach.ap_deadline),
        "state": state,
        "late": is_late(breach, parties, now),
        "late_since": _iso(breach.late_since or (breach.notify_deadline if state == TE_LAAT else None)),
        "seconds_left": seconds_left if state not in (BEVESTIGD, GESLOTEN) else None,
        "description": breach.description,
        "suspected_cause": breach.suspected_cause,
        "scope": Scope.from_json(breach.scope).public(),
        "impact": breach.impact,
        "impact_computed": breach.impact_computed,
        "parties": [_party_view(breach, p, convenant, now) for p in parties],
        "containment": [
            {
                "party_id": s.party_id,
                "started_at": s.started_at.isoformat(),
                "started_by": s.started_by,
                "lifted_at": _iso(s.lifted_at),
            }
            for s in suspensions_of(session, breach)
        ],
        "measures": breach.measures,
        "closed_at": _iso(breach.closed_at),
        "closed_by": breach.closed_by,
        "trace_id": breach.trace_id,
    }
    if with_events:
        shown["events"] = [
            {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "detail": e.detail}
            for e in events_of(session, breach)
        ]
    return shown


def _party_view(breach: Breach, party: BreachParty, convenant: Convenant, now: dt.datetime) -> dict[str, Any]:
    decision = None
    if party.ap_reported is not None:
        decision = {
            "reported_to_ap": party.ap_reported,
            "ap_reference": party.ap_reference,
            "reported_at": _iso(party.ap_reported_at),
            "reasoning": party.ap_reasoning,
            "decided_at": _iso(party.ap_decided_at),
            "decided_by": party.ap_decided_by,
        }
    return {
        "party_id": party.party_id,
        "name": party_name(convenant, party.party_id),
        "role": party.role,
        "notified_at": _iso(party.notified_at),
        "notified_via": party.notified_via,
        "acknowledged_at": _iso(party.acknowledged_at),
        "ap_decision": decision,
        "ap_deadline": breach.ap_deadline.isoformat(),
        "ap_overdue": party.ap_reported is None and now >= breach.ap_deadline,
    }


REGISTER_COLUMNS = (
    "nummer",
    "convenant",
    "melder",
    "vastgesteld_op",
    "gemeld_op",
    "uiterste_informeren",
    "status",
    "te_laat",
    "vermeende_oorzaak",
    "omschrijving",
    "categorieen_persoonsgegevens",
    "categorieen_betrokkenen",
    "aantal_betrokkenen",
    "betrokken_partijen",
    "bevestigd_door",
    "besluiten_ap",
    "maatregelen",
    "gesloten_op",
)


def register_rows(
    session: Session, breaches: Iterable[Breach], convenants: dict[str, Convenant], now: dt.datetime
) -> Iterable[dict[str, Any]]:
    """The breach register (AVG art. 33 lid 5): one row per breach, reported to the AP or not."""
    for breach in breaches:
        convenant = convenants.get(breach.convenant_id)
        if convenant is None:
            continue
        parties = parties_of(session, breach)
        impact = breach.impact
        decisions = []
        for p in parties:
            if p.ap_reported is None:
                decisions.append(f"{p.party_id}: geen besluit")
            elif p.ap_reported:
                decisions.append(f"{p.party_id}: gemeld ({p.ap_reference}, {_iso(p.ap_reported_at)})")
            else:
                decisions.append(f"{p.party_id}: niet gemeld: {p.ap_reasoning}")
        yield {
            "nummer": breach.number,
            "convenant": breach.convenant_id,
            "melder": breach.reporting_party_id or BROKER_REPORTER,
            "vastgesteld_op": breach.detected_at.isoformat(),
            "gemeld_op": breach.reported_at.isoformat(),
            "uiterste_informeren": breach.notify_deadline.isoformat(),
            "status": derive_state(breach, parties, now),
            "te_laat": "ja" if is_late(breach, parties, now) else "nee",
            "vermeende_oorzaak": breach.suspected_cause,
            "omschrijving": breach.description,
            "categorieen_persoonsgegevens": ", ".join(c["field"] for c in impact.get("personal_data_categories", [])),
            "categorieen_betrokkenen": ", ".join(
                f"{c['category']}: {c['count']}" for c in impact.get("data_subject_categories", [])
            ),
            "aantal_betrokkenen": impact.get("data_subjects", 0),
            "betrokken_partijen": ", ".join(p.party_id for p in parties if p.role == AFFECTED),
            "bevestigd_door": ", ".join(p.party_id for p in parties if p.acknowledged_at is not None),
            "besluiten_ap": "; ".join(decisions),
            "maatregelen": breach.measures or "",
            "gesloten_op": _iso(breach.closed_at) or "",
        }
