"""The parties' steps on a breach: acknowledge, decide about the AP, correct the impact, close."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from broker.app.errors import Conflict, Forbidden, ValidationFailed
from broker.auditing.step import Recorder
from broker.breaches.containment import active_suspensions, end_suspension
from broker.breaches.escalation import refresh
from broker.breaches.impact import category_label, field_error
from broker.breaches.notices import notify, party_name
from broker.breaches.state import (
    AFFECTED,
    CLOCK_SKEW,
    add_event,
    breach_activity,
    is_late,
    new_party,
    parties_of,
    party_row,
    require_open,
)
from broker.models import Breach, BreachParty
from schemas.convenant import Convenant


def acknowledge(
    session: Session, breach: Breach, convenant: Convenant, party_id: str, recorder: Recorder, now: dt.datetime
) -> tuple[BreachParty, bool]:
    """An affected party confirms it has the notice. Returns its row and whether this was the first time."""
    party = party_row(session, breach, party_id)
    if party is None or party.role != AFFECTED:
        raise Forbidden("Uw partij is niet als betrokken partij over dit datalek geïnformeerd.")
    if party.acknowledged_at is not None:
        return party, False
    require_open(breach)
    party.acknowledged_at, party.acknowledged_by = now, recorder.actor.id
    if party.notified_at is None:
        party.notified_at, party.notified_via = now, "bevestiging"
    add_event(session, breach, recorder, now, "acknowledged", {"party_id": party_id})
    recorder.add(
        "breach.acknowledged",
        breach_activity(),
        root=True,
        parties=[p.party_id for p in parties_of(session, breach)],
        convenant_id=convenant.id,
        attributes={
            "breach_id": breach.id,
            "party": party_id,
            "late": now > breach.notify_deadline,
        },
    )
    refresh(session, breach, convenant, recorder, now)
    return party, True


@dataclass(frozen=True)
class ApDecision:
    reported_to_ap: bool
    ap_reference: str | None = None
    reported_at: dt.datetime | None = None
    reasoning: str | None = None


def decide_ap(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    party_id: str,
    decision: ApDecision,
    recorder: Recorder,
    now: dt.datetime,
) -> BreachParty:
    """Record one controller's decision about reporting to the AP (a later decision replaces it)."""
    require_open(breach)
    party = party_row(session, breach, party_id)
    if party is None:
        raise Forbidden("Uw partij is geen verwerkingsverantwoordelijke in dit datalek.")
    errors = []
    if decision.reported_to_ap:
        if not decision.ap_reference:
            errors.append(field_error("ap_reference", "required", "Geef het kenmerk van de melding bij de AP."))
        if decision.reported_at is None:
            errors.append(field_error("reported_at", "required", "Geef het moment van de melding bij de AP."))
        elif decision.reported_at > now + CLOCK_SKEW:
            errors.append(
                field_error("reported_at", "future_time", "Het moment van melden mag niet in de toekomst liggen.")
            )
    elif not decision.reasoning:
        errors.append(
            field_error("reasoning", "required", "Onderbouw waarom niet aan de AP is gemeld; dat is verplicht.")
        )
    if errors:
        raise ValidationFailed("Het besluit over melding aan de AP is niet compleet.", errors)
    party.ap_reported = decision.reported_to_ap
    party.ap_reference = decision.ap_reference if decision.reported_to_ap else None
    party.ap_reported_at = decision.reported_at if decision.reported_to_ap else None
    party.ap_reasoning = decision.reasoning
    party.ap_decided_at, party.ap_decided_by = now, recorder.actor.id
    detail = {
        "party_id": party_id,
        "reported_to_ap": decision.reported_to_ap,
        "ap_reference": party.ap_reference,
        "late": now > breach.ap_deadline,
    }
    add_event(session, breach, recorder, now, "ap_decision", detail)
    recorder.add(
        "breach.ap_decision",
        breach_activity(),
        root=True,
        parties=[party_id],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, **detail},
    )
    return party


@dataclass(frozen=True)
class Correction:
    """A reporter's correction of the computed impact; only the fields given change."""

    reason: str
    data_subjects: int | None = None
    data_subject_categories: tuple[tuple[str, int], ...] | None = None
    personal_data_categories: tuple[str, ...] | None = None
    add_parties: tuple[str, ...] = ()

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> Correction:
        """From the loaded correction input (API body or review form); absent fields stay None."""
        categories = data.get("data_subject_categories")
        personal = data.get("personal_data_categories")
        pairs = tuple((c["category"], c["count"]) for c in categories) if categories is not None else None
        return cls(
            reason=data["reason"],
            data_subjects=data.get("data_subjects"),
            data_subject_categories=pairs,
            personal_data_categories=tuple(personal) if personal is not None else None,
            add_parties=tuple(data.get("add_parties", ())),
        )


def correct_impact(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    correction: Correction,
    recorder: Recorder,
    now: dt.datetime,
) -> Breach:
    """Overwrite parts of the impact; new parties are added and notified, the others get an update."""
    require_open(breach)
    errors = []
    for i, (category, _n) in enumerate(correction.data_subject_categories or ()):
        if category not in convenant.categories:
            errors.append(
                field_error(f"data_subject_categories.{i}.category", "unknown_category", "Onbekende categorie.")
            )
    for i, name in enumerate(correction.personal_data_categories or ()):
        if name not in convenant.fields:
            errors.append(
                field_error(f"personal_data_categories.{i}", "unknown_field", "Dit veld kent het convenant niet.")
            )
    for i, party_id in enumerate(correction.add_parties):
        if convenant.party(party_id) is None:
            errors.append(
                field_error(f"add_parties.{i}", "unknown_party", "Deze partij neemt niet deel aan het convenant.")
            )
    if errors:
        raise ValidationFailed("De correctie klopt niet.", errors)
    impact = dict(breach.impact)
    changed: list[str] = []
    if correction.data_subjects is not None:
        impact["data_subjects"] = correction.data_subjects
        changed.append("data_subjects")
    if correction.data_subject_categories is not None:
        impact["data_subject_categories"] = [
            {"category": c, "label": category_label(convenant, c), "count": n}
            for c, n in correction.data_subject_categories
        ]
        changed.append("data_subject_categories")
    if correction.personal_data_categories is not None:
        impact["personal_data_categories"] = [
            {"field": n, "label": convenant.fields[n].label} for n in correction.personal_data_categories
        ]
        changed.append("personal_data_categories")
    known = {p.party_id for p in parties_of(session, breach)}
    added = [p for p in dict.fromkeys(correction.add_parties) if p not in known]
    for party_id in added:
        session.add(new_party(breach, party_id, AFFECTED, now))
    if added:
        changed.append("parties")
    impact["corrections"] = [
        *impact.get("corrections", []),
        {"at": now.isoformat(), "by": recorder.actor.id, "reason": correction.reason, "changed": changed},
    ]
    breach.impact = impact
    session.flush()
    detail = {"changed": changed, "added_parties": added, "reason": correction.reason}
    add_event(session, breach, recorder, now, "impact_corrected", detail)
    parties = parties_of(session, breach)
    recorder.add(
        "breach.impact_corrected",
        breach_activity(),
        root=True,
        parties=[p.party_id for p in parties],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, "changed": changed, "added_parties": added},
    )
    round_id = str(len(impact["corrections"]))
    for party in parties:
        if party.party_id in added:
            notify(session, breach, convenant, party.party_id, "breach.notified", now)
        elif party.role == AFFECTED:
            notify(
                session,
                breach,
                convenant,
                party.party_id,
                "breach.updated",
                now,
                {"correction_reason": correction.reason},
                round_id=round_id,
            )
    refresh(session, breach, convenant, recorder, now)
    return breach


def close(
    session: Session, breach: Breach, convenant: Convenant, measures: str, recorder: Recorder, now: dt.datetime
) -> Breach:
    """Close a breach: the measures taken and every controller's AP decision are required."""
    require_open(breach)
    parties = parties_of(session, breach)
    errors = [
        field_error(
            f"parties.{p.party_id}.ap_decision",
            "ap_decision_missing",
            f"{party_name(convenant, p.party_id)} heeft nog niet vastgelegd of het datalek aan de AP is gemeld.",
        )
        for p in parties
        if p.ap_reported is None
    ]
    if not measures.strip():
        errors.insert(0, field_error("measures", "required", "Beschrijf de genomen maatregelen."))
    if errors:
        raise Conflict("Het datalek kan nog niet worden gesloten.", errors)
    breach.measures, breach.closed_at, breach.closed_by = measures.strip(), now, recorder.actor.id
    for suspension in active_suspensions(session, breach_id=breach.id):
        end_suspension(session, breach, suspension, recorder, now)
    add_event(session, breach, recorder, now, "closed", {"measures": breach.measures})
    recorder.add(
        "breach.closed",
        breach_activity(),
        root=True,
        parties=[p.party_id for p in parties],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, "number": breach.number, "late": is_late(breach, parties, now)},
    )
    refresh(session, breach, convenant, recorder, now)
    extra = {
        "measures": breach.measures,
        "ap_decisions": [
            {
                "party_id": p.party_id,
                "name": party_name(convenant, p.party_id),
                "reported_to_ap": bool(p.ap_reported),
                "ap_reference": p.ap_reference,
                "reasoning": p.ap_reasoning,
            }
            for p in parties
        ],
    }
    for party in parties:
        notify(session, breach, convenant, party.party_id, "breach.closed", now, extra)
    return breach
