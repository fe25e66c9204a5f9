"""The breach pages of the review interface ("Datalekken"): report, follow and close data breaches.

All logic lives in the `broker.breaches` package; these views check who may do what, read the forms
(`broker.review.breach_forms`) and show the service's errors at the fields they concern. Every
step is audited by the service in one `audited_step`. The state of a breach is
derived as of now, so a passed deadline shows at once, without waiting for the scheduler.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from broker.app import runtime
from broker.app.csvio import csv_download
from broker.app.errors import BrokerError, Forbidden, NotFound
from broker.app.extensions import db
from broker.auditing.entries import record_review
from broker.auditing.step import Recorder, audited_step
from broker.breaches import containment, notices, reporting, steps, views
from broker.breaches import state as breach_state
from broker.models import Breach, BreachEvent, BreachParty, User
from broker.officers.accounts import BROKER_OFFICER
from broker.officers.sessions import current_officer, officer_viewer
from broker.review import breach_display as display
from broker.review import breach_forms as forms
from broker.review.auth import login_required
from broker.review.forms import party_names
from broker.review.views import bp
from schemas.convenant import Convenant

Action = Callable[[Recorder, dt.datetime], None]  # one service call, given the recorder and the time
FLOWS = (("sent", "verstuurd"), ("received", "ontvangen"), ("fetched", "opgehaald"))


@bp.context_processor
def _breach_context() -> dict[str, Any]:
    """The red bar and amber line of late and near breaches, on every page."""
    return {"breach_alerts": display.breach_alerts}


# -- helpers ----------------------------------------------------------------------------------------


def _user() -> User:
    user = current_officer()
    assert user is not None  # login_required ran first
    return user


def _is_broker(user: User) -> bool:
    return user.role == BROKER_OFFICER


def _visible(breach_id: str) -> tuple[Breach, Convenant]:
    """The breach, if the officer may see it: a party's officer only those of their party."""
    user, session = _user(), db.session
    breach = breach_state.get_breach(session, breach_id)
    if not _is_broker(user) and breach_state.party_row(session, breach, user.party_id or "") is None:
        raise NotFound("Dit datalek bestaat niet.")
    convenant = runtime.convenants().get(breach.convenant_id)
    if convenant is None:
        raise NotFound("Dit datalek bestaat niet.")
    return breach, convenant


@dataclass(frozen=True)
class Permissions:
    """Which steps the logged-in officer may take on one breach."""

    acknowledge: bool
    decide_for: tuple[str, ...]
    correct: bool
    contain: bool
    close: bool


def _permissions(user: User, breach: Breach, parties: list[BreachParty]) -> Permissions:
    if breach.closed_at is not None:
        return Permissions(False, (), False, False, False)
    broker = _is_broker(user)
    own = next((p for p in parties if p.party_id == user.party_id), None)
    reporter = broker or (user.party_id is not None and user.party_id == breach.reporting_party_id)
    return Permissions(
        acknowledge=own is not None and own.role == breach_state.AFFECTED and own.acknowledged_at is None,
        decide_for=tuple(p.party_id for p in parties) if broker else ((own.party_id,) if own else ()),
        correct=reporter,
        contain=broker,
        close=reporter,
    )


def _done(breach: Breach, message: str) -> Any:
    flash(message, "info")
    return redirect(url_for("review.breach_detail", breach_id=breach.id))


# -- the list and the register ----------------------------------------------------------------------


def _listed(user: User, wanted: str) -> tuple[list[dict[str, Any]], list[Breach]]:
    session, now, convenants = db.session, runtime.now(), runtime.convenants()
    found = breach_state.all_breaches(session, None if _is_broker(user) else user.party_id)
    rows, kept = [], []
    for breach in found:
        convenant = convenants.get(breach.convenant_id)
        if convenant is None:
            continue
        parties = breach_state.parties_of(session, breach)
        state = breach_state.derive_state(breach, parties, now)
        if wanted and state != wanted:
            continue
        kept.append(breach)
        rows.append(
            {
                "breach": breach,
                "convenant": convenant,
                "state": state,
                "ticking": state not in (breach_state.BEVESTIGD, breach_state.GESLOTEN),
                "reporter": notices.party_name(convenant, breach.reporting_party_id),
            }
        )
    return rows, kept


def _state_arg() -> tuple[str, str | None]:
    wanted = request.args.get("status", "").strip()
    if wanted and wanted not in breach_state.STATES:
        return "", "Kies een van de statussen uit de lijst."
    return wanted, None


@bp.get("/datalekken")
@login_required
def breaches() -> Any:
    """List the breaches the officer may see, newest first, with the countdown to each deadline."""
    user = _user()
    wanted, error = _state_arg()
    rows, _kept = _listed(user, wanted)
    return render_template(
        "review/breaches.html",
        rows=rows,
        wanted=wanted,
        state_error=error,
        states=breach_state.STATES,
        can_report=bool(forms.reportable(runtime.convenants(), user)),
        **display.helpers(runtime.now()),
    )


@bp.get("/datalekken/register.csv")
@login_required
def breach_register() -> Any:
    """Download the breach register (AVG art. 33 lid 5) as CSV: every visible breach, one row each."""
    user = _user()
    wanted, _error = _state_arg()
    _rows, kept = _listed(user, wanted)
    attributes = {"breaches": len(kept), **({"state": wanted} if wanted else {})}
    record_review(db.session, officer_viewer(user), "review.breach_register_exported", attributes)
    rows = views.register_rows(db.session, kept, runtime.convenants(), runtime.now())
    return csv_download(rows, views.REGISTER_COLUMNS, "datalekkenregister.csv")


# -- reporting --------------------------------------------------------------------------------------


def _render_report(state: forms.FormState, status: int = 200) -> Any:
    user = _user()
    choices = forms.reportable(runtime.convenants(), user)
    return render_template(
        "review/breaches_new.html",
        report_form=state,
        convenants=choices,
        broker=_is_broker(user),
        own_party=party_names().get(user.party_id or "", user.party_id),
        broker_itself=forms.BROKER_ITSELF,
        **display.helpers(runtime.now()),
    ), status


@bp.route("/datalekken/nieuw", methods=["GET", "POST"])
@login_required
def new_breach() -> Any:
    """Report a (suspected) breach; the broker computes its impact and notifies the parties."""
    user = _user()
    if not forms.reportable(runtime.convenants(), user):
        raise Forbidden("U kunt in geen enkel convenant een datalek melden.")
    if request.method == "GET":
        choices = forms.reportable(runtime.convenants(), user)
        values = {name: "" for name in forms.REPORT_FIELDS}
        values.update(
            convenant=choices[0].id if len(choices) == 1 else "", detected_at=forms.local_input(runtime.now())
        )
        return _render_report(forms.FormState(values))
    report, state = forms.read_report(request.form, user, runtime.convenants())
    if report is None:
        return _render_report(state, 422)
    try:
        with audited_step(db.session, officer_viewer(user).actor) as step:
            breach = reporting.report(step.session, report, step.recorder, step.now)
    except BrokerError as e:
        return _render_report(
            forms.apply_error(state, e, forms.REPORT_PATHS, forms.report_lines(request.form)), e.status
        )
    return _done(breach, f"Datalek {breach.number} is gemeld. De betrokken partijen worden geïnformeerd.")


# -- one breach -------------------------------------------------------------------------------------


def _render_detail(
    breach: Breach, convenant: Convenant, states: dict[str, forms.FormState] | None = None, status: int = 200
) -> Any:
    session, user, now = db.session, _user(), runtime.now()
    parties = breach_state.parties_of(session, breach)
    may = _permissions(user, breach, parties)
    shown = views.view(session, breach, convenant, now)
    defaults = {
        "ack": forms.FormState(),
        "ap": forms.FormState({"party": may.decide_for[0] if len(may.decide_for) == 1 else ""}),
        "impact": forms.FormState(forms.correction_values(breach)),
        "contain": forms.FormState(),
        "close": forms.FormState({"measures": ""}),
    }
    notices = views.notices_of(session, breach)
    if not _is_broker(user):
        notices = [n for n in notices if n.entry.party_id == user.party_id]  # other parties' addresses stay theirs
    known = {p.party_id for p in parties}
    return render_template(
        "review/breaches_detail.html",
        breach=breach,
        convenant=convenant,
        shown=shown,
        state=shown["state"],
        may=may,
        forms={**defaults, **(states or {})},
        events=[_event_line(e, convenant) for e in views.events_of(session, breach)],
        notices=notices,
        impact_rows=_impact_rows(breach.impact_computed),
        corrected=_corrected(breach),
        suspended={s["party_id"] for s in shown["containment"] if s["lifted_at"] is None},
        addable=[p for p in convenant.parties if p.id not in known],
        flows=FLOWS,
        **display.helpers(now),
    ), status


def _impact_rows(impact: dict[str, Any]) -> list[dict[str, Any]]:
    """Per party and category: how many pupils it sent, received and fetched."""
    labels = {c["category"]: c["label"] for c in impact.get("data_subject_categories", [])}
    rows = []
    for party in impact.get("parties", []):
        categories = sorted({c for how, _label in FLOWS for c in party.get(how, {})})
        for i, category in enumerate(categories):
            rows.append(
                {
                    "party": party,
                    "first": i == 0,
                    "span": len(categories),
                    "category": labels.get(category, category),
                    **{how: party.get(how, {}).get(category, 0) for how, _label in FLOWS},
                }
            )
    return rows


def _corrected(breach: Breach) -> bool:
    keys = ("data_subjects", "data_subject_categories", "personal_data_categories")
    return any(breach.impact.get(k) != breach.impact_computed.get(k) for k in keys)


def _event_line(event: BreachEvent, convenant: Convenant) -> dict[str, Any]:
    detail = event.detail or {}
    parts = []
    if "party_id" in detail:
        parts.append(notices.party_name(convenant, detail["party_id"]))
    if event.kind == "state_changed":
        before, after = str(detail.get("from")), str(detail.get("to"))
        parts.append(f"{display.STATE_LABELS.get(before, before)} → {display.STATE_LABELS.get(after, after)}")
    if event.kind == "reported":
        affected = ", ".join(notices.party_name(convenant, p) for p in detail.get("affected", [])) or "niemand"
        parts.append(f"{detail.get('data_subjects', 0)} betrokkenen; te informeren: {affected}")
    if "via" in detail:
        parts.append(f"via {detail['via']}")
    if event.kind == "ap_decision":
        parts.append("gemeld aan de AP" if detail.get("reported_to_ap") else "niet gemeld aan de AP")
    if "reason" in detail:
        parts.append(f"reden: {detail['reason']}")
    if detail.get("added_parties"):
        parts.append(f"toegevoegd: {', '.join(detail['added_parties'])}")
    if "measures" in detail:
        parts.append(f"maatregelen: {detail['measures']}")
    return {
        "at": event.at,
        "actor": event.actor,
        "label": display.EVENT_LABELS.get(event.kind, event.kind),
        "detail": "; ".join(parts),
    }


@bp.get("/datalekken/<breach_id>")
@login_required
def breach_detail(breach_id: str) -> Any:
    """Show one breach: the facts, the impact, the parties, the deadlines and the history."""
    breach, convenant = _visible(breach_id)
    return _render_detail(breach, convenant)


def _step(breach: Breach, convenant: Convenant, name: str, state: forms.FormState, run: Action, message: str) -> Any:
    """Run one service step audited; on a service error, show it in the form `name` of the page."""
    try:
        with audited_step(db.session, officer_viewer(_user()).actor) as step:
            run(step.recorder, step.now)
    except BrokerError as e:
        return _render_detail(breach, convenant, {name: forms.apply_error(state, e)}, e.status)
    return _done(breach, message)


@bp.post("/datalekken/<breach_id>/bevestigen")
@login_required
def acknowledge_breach(breach_id: str) -> Any:
    """Acknowledge, for the officer's own party, that it has the notice of the breach."""
    breach, convenant = _visible(breach_id)
    user = _user()
    if _is_broker(user) or user.party_id is None:
        raise Forbidden("Alleen de privacy officer van een betrokken partij kan de ontvangst bevestigen.")
    party_id = user.party_id

    def run(recorder: Recorder, now: dt.datetime) -> None:
        steps.acknowledge(db.session, breach, convenant, party_id, recorder, now)

    return _step(breach, convenant, "ack", forms.FormState(), run, "De ontvangst van de melding is bevestigd.")


@bp.post("/datalekken/<breach_id>/besluit-ap")
@login_required
def decide_breach_ap(breach_id: str) -> Any:
    """Record a party's decision about reporting to the AP (the broker's officer: on its behalf)."""
    breach, convenant = _visible(breach_id)
    user = _user()
    party_id, decision, state = forms.read_ap_decision(request.form, None if _is_broker(user) else user.party_id)
    if party_id and party_id not in _permissions(user, breach, breach_state.parties_of(db.session, breach)).decide_for:
        state.add("party", "Voor deze partij kunt u geen besluit vastleggen.")
    if decision is None or not state.ok:
        return _render_detail(breach, convenant, {"ap": state}, 422)
    name = notices.party_name(convenant, party_id)

    def run(recorder: Recorder, now: dt.datetime) -> None:
        steps.decide_ap(db.session, breach, convenant, party_id, decision, recorder, now)

    return _step(breach, convenant, "ap", state, run, f"Het besluit over melding aan de AP van {name} is vastgelegd.")


@bp.post("/datalekken/<breach_id>/impact")
@login_required
def correct_breach_impact(breach_id: str) -> Any:
    """Correct the computed impact (the reporter's officer or the broker's); the reason is required."""
    breach, convenant = _visible(breach_id)
    if not _permissions(_user(), breach, breach_state.parties_of(db.session, breach)).correct:
        raise Forbidden("Alleen de melder of de privacy officer van de broker kan de impact corrigeren.")
    correction, state = forms.read_correction(request.form, breach, convenant)
    if correction is None:
        return _render_detail(breach, convenant, {"impact": state}, 422)

    def run(recorder: Recorder, now: dt.datetime) -> None:
        steps.correct_impact(db.session, breach, convenant, correction, recorder, now)

    return _step(breach, convenant, "impact", state, run, "De impact is gecorrigeerd; de partijen krijgen bericht.")


@bp.post("/datalekken/<breach_id>/opschorten")
@login_required
def contain_breach(breach_id: str) -> Any:
    """Suspend a party's clients while the breach is handled (the broker's officer only)."""
    breach, convenant = _visible(breach_id)
    if not _is_broker(_user()):
        raise Forbidden("Alleen de privacy officer van de broker kan een partij opschorten.")
    party_id = request.form.get("party", "")
    lifting = request.form.get("action") == "opheffen"
    name = notices.party_name(convenant, party_id)

    def run(recorder: Recorder, now: dt.datetime) -> None:
        if lifting:
            containment.lift(db.session, breach, party_id, recorder, now)
        else:
            containment.contain(db.session, breach, convenant, party_id, recorder, now)

    message = f"De opschorting van {name} is opgeheven." if lifting else f"{name} is opgeschort."
    return _step(breach, convenant, "contain", forms.FormState({"party": party_id}), run, message)


@bp.post("/datalekken/<breach_id>/sluiten")
@login_required
def close_breach(breach_id: str) -> Any:
    """Close the breach: the measures taken and every party's AP decision are required."""
    breach, convenant = _visible(breach_id)
    if not _permissions(_user(), breach, breach_state.parties_of(db.session, breach)).close:
        raise Forbidden("Alleen de melder of de privacy officer van de broker kan het datalek sluiten.")
    measures, state = forms.read_measures(request.form)
    if measures is None:
        return _render_detail(breach, convenant, {"close": state}, 422)

    def run(recorder: Recorder, now: dt.datetime) -> None:
        steps.close(db.session, breach, convenant, measures, recorder, now)

    return _step(breach, convenant, "close", state, run, f"Datalek {breach.number} is gesloten.")
