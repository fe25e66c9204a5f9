"""How the breach pages show a breach: labels, times, countdowns, and the alerts on every page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from broker.app import runtime
from broker.app.extensions import db
from broker.app.timefmt import duration_text, local_short, local_text
from broker.breaches import state as breach_state
from broker.models import Breach, BreachParty, User
from broker.officers.accounts import BROKER_OFFICER
from broker.officers.sessions import current_officer
from broker.review.forms import party_names

SOON = dt.timedelta(hours=6)  # an open breach this close to its deadline gets the amber line
STATE_LABELS = {
    breach_state.GEMELD: "gemeld",
    breach_state.GENOTIFICEERD: "genotificeerd",
    breach_state.BEVESTIGD: "bevestigd",
    breach_state.TE_LAAT: "te laat",
    breach_state.GESLOTEN: "gesloten",
}
ROLE_LABELS = {breach_state.REPORTER: "melder", breach_state.AFFECTED: "betrokken partij"}
EVENT_LABELS = {
    "reported": "Gemeld",
    "notified": "Partij geïnformeerd",
    "acknowledged": "Ontvangst bevestigd",
    "ap_decision": "Besluit melding AP vastgelegd",
    "ap_overdue": "Besluit melding AP te laat",
    "impact_corrected": "Impact gecorrigeerd",
    "contained": "Partij opgeschort",
    "containment_lifted": "Opschorting opgeheven",
    "state_changed": "Status gewijzigd",
    "closed": "Gesloten",
}


def countdown_text(deadline: dt.datetime, now: dt.datetime) -> str:
    """For example "nog 3 u 05 min" or "2 u 10 min te laat" (countdown.js writes the same)."""
    seconds = (deadline - now).total_seconds()
    return f"nog {duration_text(seconds)}" if seconds > 0 else f"{duration_text(seconds)} te laat"


def iso_utc(moment: dt.datetime) -> str:
    """A moment for `data-deadline` and `data-now`: ISO 8601 in UTC, whole seconds."""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


def _open_breaches(user: User) -> list[tuple[Breach, list[BreachParty]]]:
    """The open breaches the officer may see, with their parties: one query."""
    query = (
        select(Breach, BreachParty)
        .outerjoin(BreachParty, BreachParty.breach_id == Breach.id)
        .where(Breach.closed_at.is_(None))
        .order_by(Breach.number)
    )
    if user.role != BROKER_OFFICER:
        query = query.where(Breach.id.in_(select(BreachParty.breach_id).where(BreachParty.party_id == user.party_id)))
    grouped: dict[str, tuple[Breach, list[BreachParty]]] = {}
    for breach, party in db.session.execute(query):
        _breach, parties = grouped.setdefault(breach.id, (breach, []))
        if party is not None:
            parties.append(party)
    return list(grouped.values())


def breach_alerts() -> dict[str, list[dict[str, Any]]]:
    """The late breaches (red bar) and those whose deadline is near (amber line) for this officer."""
    user = current_officer()
    alerts: dict[str, list[dict[str, Any]]] = {"late": [], "soon": []}
    if user is None:
        return alerts
    now, convenants = runtime.now(), runtime.convenants()
    for breach, parties in _open_breaches(user):
        state = breach_state.derive_state(breach, parties, now)
        near = state in (breach_state.GEMELD, breach_state.GENOTIFICEERD) and breach.notify_deadline - now <= SOON
        if state != breach_state.TE_LAAT and not near:
            continue
        convenant = convenants.get(breach.convenant_id)
        alerts["late" if state == breach_state.TE_LAAT else "soon"].append(
            {
                "id": breach.id,
                "number": breach.number,
                "convenant": convenant.title if convenant else breach.convenant_id,
                "countdown": countdown_text(breach.notify_deadline, now),
                "deadline": local_text(breach.notify_deadline),
            }
        )
    return alerts


def when(moment: dt.datetime | str | None, long: bool = False) -> str:
    """A stored moment (or its ISO text) as Amsterdam time, for tables or (long) sentences."""
    if moment is None:
        return "–"
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return local_text(moment) if long else local_short(moment)


def helpers(now: dt.datetime) -> dict[str, Any]:
    """What every breach page's template uses."""
    return {
        "now_iso": iso_utc(now),
        "when": when,
        "iso_utc": iso_utc,
        "countdown": lambda deadline: countdown_text(deadline, now),
        "state_labels": STATE_LABELS,
        "role_labels": ROLE_LABELS,
        "party_names": party_names(),
        "section": "datalekken",
    }
