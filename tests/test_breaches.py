"""The 24-hour breach workflow through the API, with a controlled clock (nobody sleeps).

Real traffic goes first (the RBL submits, De Liemers fetches), so the impact the broker computes can
be checked against what the audit log says was delivered.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fixtures.app import Clock
from fixtures.parties import Party, refresh_token
from fixtures.receivers import SmtpServer, WebhookReceiver
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import select, text

from broker.app.extensions import db
from broker.models import AuditEntryRow

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
LIEMERS, RBL, PASSEND_WIJS = "swv-de-liemers", "rbl-midden-gelre", "swv-passend-wijs"
REQUIRED_FACTS = ("Vermeende oorzaak", "Categorieën persoonsgegevens", "Categorieën betrokkenen", "Aantal betrokkenen")


@pytest.fixture
def delivered(rbl: Party, liemers: Party) -> dict[str, Any]:
    """The RBL sends three pupils: two in Duiven (De Liemers; two categories) and one in Arnhem
    (Passend Wijs). De Liemers fetches its delivery. Returns the ids involved."""
    records = [
        make_record(1, category="langdurig_verzuim", gemeente="Duiven"),
        make_record(2, category="absoluut_verzuim", gemeente="Duiven"),
        make_record(3, category="langdurig_verzuim", gemeente="Arnhem"),
    ]
    response = rbl.submit(records)
    assert response.status_code == 201, response.json
    deliveries = {d["recipient"]: d["delivery_id"] for d in response.json["deliveries"]}
    assert liemers.get(f"/api/v1/deliveries/{deliveries[LIEMERS]}").status_code == 200
    return {"submission": response.json["submission_id"], "deliveries": deliveries}


def report(party: Party, clock: Clock, scope: dict[str, Any], **overrides: Any) -> Any:
    body = {
        "convenant_id": CONVENANT,
        "detected_at": clock.now.isoformat(),
        "description": "Een export met leerlinggegevens is naar een verkeerd e-mailadres gestuurd.",
        "suspected_cause": "Menselijke fout: verkeerde geadresseerde gekozen bij het versturen.",
        "scope": scope,
        **overrides,
    }
    return party.post("/api/v1/breaches", json=body)


def tick(runner: Any) -> str:
    result = runner.invoke(args=["match", "run-due"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def entries_of(app: Any, breach_id: str) -> list[dict[str, Any]]:
    """Every audit entry that names the breach, decoded."""
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.idx)).all()
        decoded = [json.loads(r.canonical) for r in rows]
    return [e for e in decoded if (e.get("attributes") or {}).get("breach_id") == breach_id]


def set_hook(runner: Any, party: str, url: str) -> None:
    result = runner.invoke(args=["webhooks", "set", "--party", party, "--url", url])
    assert result.exit_code == 0, result.output


# -- impact -----------------------------------------------------------------------------------------


def test_impact_of_a_delivery_matches_what_the_audit_says_was_delivered(
    app: Any, clock: Clock, rbl: Party, liemers: Party, delivered: dict[str, Any]
) -> None:
    """De Liemers reports its delivery: the impact names the RBL as sender and De Liemers as recipient
    of exactly the two Duiven pupils in their two categories, and not the Arnhem pupil."""
    delivery_id = delivered["deliveries"][LIEMERS]
    response = report(liemers, clock, {"deliveries": [delivery_id]})
    assert response.status_code == 201, response.json
    impact = response.json["impact"]
    assert impact["data_subjects"] == 2
    assert {c["category"]: c["count"] for c in impact["data_subject_categories"]} == {
        "absoluut_verzuim": 1,
        "langdurig_verzuim": 1,
    }
    by_party = {p["party_id"]: p for p in impact["parties"]}
    assert set(by_party) == {RBL, LIEMERS}
    assert by_party[LIEMERS]["received"] == {"absoluut_verzuim": 1, "langdurig_verzuim": 1}
    assert by_party[LIEMERS]["fetched"] == {"absoluut_verzuim": 1, "langdurig_verzuim": 1}
    assert by_party[RBL]["sent"] == {"absoluut_verzuim": 1, "langdurig_verzuim": 1}
    fields = [f["field"] for f in impact["personal_data_categories"]]
    assert {"bsn", "voornaam", "adres", "startdatum_verzuim", "reden_verzuim"} <= set(fields)
    assert "datum_toekenning_vrijstelling" not in fields  # no vrijstelling pupil was delivered

    # The audit log, read independently: the pupils the delivery's `delivery.created` entries name.
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == "delivery.created")).all()
        created = [json.loads(r.canonical) for r in rows]
    subjects = {e["data_subject_id"] for e in created if e["attributes"]["delivery_id"] == delivery_id}
    assert len(subjects) == impact["data_subjects"]
    concerned = {
        e["data_subject_id"] for e in entries_of(app, response.json["id"]) if e["name"] == "breach.subject_concerned"
    }
    assert concerned == subjects
    # The RBL is the party to inform; De Liemers reported it.
    roles = {p["party_id"]: p["role"] for p in response.json["parties"]}
    assert roles == {LIEMERS: "melder", RBL: "betrokken"}


def test_scope_by_bsn_counts_only_that_pupil_and_keeps_no_bsn(
    app: Any, clock: Clock, rbl: Party, delivered: dict[str, Any]
) -> None:
    """The RBL scopes by BSN: the broker pseudonymises it, and no BSN is in the database or the answer."""
    bsn = make_bsn(3)
    response = report(rbl, clock, {"subjects": [bsn]})
    assert response.status_code == 201, response.json
    assert bsn not in response.get_data(as_text=True)
    impact = response.json["impact"]
    assert impact["data_subjects"] == 1
    assert [p["party_id"] for p in impact["parties"]] == [RBL, PASSEND_WIJS]
    assert response.json["scope"]["subjects"] == 1
    with app.app_context(), db.engine.connect() as conn:
        for table in ("breaches", "breach_events", "breach_parties", "outbox"):
            dump = json.dumps([list(map(str, row)) for row in conn.execute(text(f"SELECT * FROM {table}"))])  # noqa: S608
            assert bsn not in dump, table


def test_a_breach_scope_covers_only_what_the_reporter_sent_or_received(
    app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party, delivered: dict[str, Any]
) -> None:
    """Passend Wijs never held the Duiven pupils: scoped by their BSNs its impact is that of an unused BSN,
    and a window over all time counts only its own Arnhem pupil."""
    by_bsn = report(passend_wijs, clock, {"subjects": [make_bsn(1), make_bsn(2)]})
    unused = report(passend_wijs, clock, {"subjects": [make_bsn(90)]})
    assert by_bsn.status_code == unused.status_code == 201
    strip = ("computed_at", "audit_tree_size")
    assert {k: v for k, v in by_bsn.json["impact"].items() if k not in strip} == {
        k: v for k, v in unused.json["impact"].items() if k not in strip
    }
    assert by_bsn.json["impact"]["data_subjects"] == 0 and by_bsn.json["impact"]["parties"] == []
    assert [p["role"] for p in by_bsn.json["parties"]] == ["melder"]

    window = {"from": (clock.now - dt.timedelta(days=3650)).isoformat(), "to": clock.now.isoformat()}
    everything = report(passend_wijs, clock, {"window": window})
    assert everything.status_code == 201, everything.json
    assert everything.json["impact"]["data_subjects"] == 1
    assert {p["party_id"] for p in everything.json["impact"]["parties"]} == {RBL, PASSEND_WIJS}
    with app.app_context():
        from broker.app import runtime

        arnhem = runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(3))
    concerned = {
        e["data_subject_id"] for e in entries_of(app, everything.json["id"]) if e["name"] == "breach.subject_concerned"
    }
    assert concerned == {arnhem}
    # What Passend Wijs can read back of the breach's trace names no other pupil either.
    trace_id = entries_of(app, everything.json["id"])[0]["trace_id"]
    trace = passend_wijs.get("/api/v1/audit/entries", query_string={"trace_id": trace_id})
    assert trace.status_code == 200
    assert {e.get("data_subject_id") for e in trace.json["entries"]} - {None} == {arnhem}


def test_subject_concerned_entries_reach_only_the_parties_of_that_pupils_flows(
    app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party, delivered: dict[str, Any]
) -> None:
    """The RBL's window breach concerns pupils of De Liemers and of Passend Wijs: each affected party sees
    only its own pupils in the breach's audit entries."""
    window = {"from": (clock.now - dt.timedelta(hours=1)).isoformat(), "to": clock.now.isoformat()}
    response = report(rbl, clock, {"window": window})
    assert response.status_code == 201, response.json
    with app.app_context():
        from broker.app import runtime

        pseudonymiser = runtime.keyring().pseudonymiser(CONVENANT)
        duiven = {pseudonymiser.pseudonymise_bsn(make_bsn(n)) for n in (1, 2)}
        arnhem = {pseudonymiser.pseudonymise_bsn(make_bsn(3))}
    trace_id = entries_of(app, response.json["id"])[0]["trace_id"]
    for party, own in ((liemers, duiven), (passend_wijs, arnhem), (rbl, duiven | arnhem)):
        seen = party.get("/api/v1/audit/entries", query_string={"trace_id": trace_id})
        assert seen.status_code == 200
        assert {e["data_subject_id"] for e in seen.json["entries"] if e["name"] == "breach.subject_concerned"} == own


def test_a_submission_scope_shows_who_fetched_it(
    clock: Clock, rbl: Party, liemers: Party, delivered: dict[str, Any]
) -> None:
    """Scoped by the RBL's submission, the impact says De Liemers fetched its two pupils and Passend Wijs
    (which has not fetched yet) fetched nothing."""
    response = report(rbl, clock, {"submissions": [delivered["submission"]]})
    assert response.status_code == 201, response.json
    by_party = {p["party_id"]: p for p in response.json["impact"]["parties"]}
    assert by_party[LIEMERS]["received"] == by_party[LIEMERS]["fetched"] == {
        "absoluut_verzuim": 1,
        "langdurig_verzuim": 1,
    }
    assert by_party[PASSEND_WIJS]["received"] == {"langdurig_verzuim": 1} and by_party[PASSEND_WIJS]["fetched"] == {}


def test_a_window_scope_and_a_party_that_may_not_name_anothers_delivery(
    clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party, delivered: dict[str, Any]
) -> None:
    """A window covers the reporter's flows in it; another party's delivery is answered as one that does not exist."""
    window = {"from": (clock.now - dt.timedelta(hours=1)).isoformat(), "to": clock.now.isoformat()}
    response = report(rbl, clock, {"window": window})
    assert response.status_code == 201, response.json
    assert response.json["impact"]["data_subjects"] == 3
    assert {p["party_id"] for p in response.json["parties"] if p["role"] == "betrokken"} == {LIEMERS, PASSEND_WIJS}
    # Passend Wijs did not send or receive De Liemers' delivery: to it, that delivery does not exist.
    refused = report(passend_wijs, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    unknown = report(passend_wijs, clock, {"deliveries": ["00000000-0000-4000-8000-000000000000"]})
    assert refused.status_code == unknown.status_code == 422
    assert refused.json["errors"][0]["field"] == "scope.deliveries.0"
    assert refused.json["errors"][0]["code"] == "unknown_delivery"
    assert refused.json == unknown.json


# -- validation -------------------------------------------------------------------------------------


def test_a_report_names_every_missing_or_wrong_field(clock: Clock, rbl: Party, delivered: dict[str, Any]) -> None:
    response = rbl.post(
        "/api/v1/breaches",
        json={"detected_at": "gisteren", "scope": {}, "ernst": "hoog"},
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = {(e["field"], e["code"]) for e in response.json["errors"]}
    assert ("detected_at", "invalid_datetime") in errors
    assert ("description", "required") in errors
    assert ("suspected_cause", "required") in errors
    assert ("scope", "empty_scope") in errors
    assert ("ernst", "not_allowed") in errors


def test_unknown_breach_keys_that_are_no_plain_identifier_are_named_by_position(
    clock: Clock, rbl: Party, delivered: dict[str, Any]
) -> None:
    """An unknown key of a breach report is echoed only as a plain identifier, at any depth; a key
    holding a BSN and a name is `veld N` (its place in its object)."""
    body = {
        "convenant_id": CONVENANT,
        "detected_at": clock.now.isoformat(),
        "description": "Een export met leerlinggegevens is naar een verkeerd e-mailadres gestuurd.",
        "suspected_cause": "Menselijke fout.",
        "scope": {"deliveries": [delivered["deliveries"][LIEMERS]], "Noah 111222333": []},
        "111222333 Noah": "x",
    }
    # Sent as written (the test client's json= would sort the keys).
    response = rbl.post("/api/v1/breaches", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    errors = {(e["field"], e["code"]) for e in response.json["errors"]}
    assert errors == {("veld 6", "not_allowed"), ("scope.veld 2", "not_allowed")}
    assert "111222333" not in response.get_data(as_text=True) and "Noah" not in response.get_data(as_text=True)


def test_a_bsn_in_the_description_is_refused_and_not_echoed(
    clock: Clock, rbl: Party, delivered: dict[str, Any]
) -> None:
    bsn = make_bsn(7)
    response = report(rbl, clock, {"submissions": [delivered["submission"]]}, description=f"Lijst met {bsn} gelekt")
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "description"
    assert response.json["errors"][0]["code"].startswith("forbidden_content")
    assert bsn not in response.get_data(as_text=True)


def test_detected_in_the_future_is_refused(clock: Clock, rbl: Party, delivered: dict[str, Any]) -> None:
    later = (clock.now + dt.timedelta(hours=2)).isoformat()
    response = report(rbl, clock, {"submissions": [delivered["submission"]]}, detected_at=later)
    assert response.status_code == 422
    assert response.json["errors"][0]["code"] == "future_time"


# -- the clock across DST ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detected_local", "deadline_local", "deadline_text"),
    [
        # Clocks go back on 25 October 2026: 24 elapsed hours end at 11:00 wall-clock time.
        ("2026-10-24T12:00", "2026-10-25T11:00:00+01:00", "zondag 25 oktober 2026 11:00 (CET)"),
        # Clocks go forward on 28 March 2027: 24 elapsed hours end at 13:00 wall-clock time.
        ("2027-03-27T12:00", "2027-03-28T13:00:00+02:00", "zondag 28 maart 2027 13:00 (CEST)"),
    ],
)
def test_the_deadline_is_24_elapsed_hours_across_the_dst_change(
    clock: Clock, rbl: Party, delivered: dict[str, Any], detected_local: str, deadline_local: str, deadline_text: str
) -> None:
    detected = dt.datetime.fromisoformat(detected_local).replace(tzinfo=AMSTERDAM)
    clock.now = detected.astimezone(dt.UTC) + dt.timedelta(hours=1)
    refresh_token(rbl, clock)
    # Without an offset the time is read as Amsterdam time.
    response = report(rbl, clock, {"submissions": [delivered["submission"]]}, detected_at=detected_local)
    assert response.status_code == 201, response.json
    deadline = dt.datetime.fromisoformat(response.json["deadline"])
    assert deadline == dt.datetime.fromisoformat(deadline_local)
    assert deadline - dt.datetime.fromisoformat(response.json["detected_at"]) == dt.timedelta(hours=24)
    assert response.json["deadline_local"] == deadline_text
    assert response.json["seconds_left"] == 23 * 3600


def test_an_ambiguous_local_time_is_refused(clock: Clock, rbl: Party, delivered: dict[str, Any]) -> None:
    """02:30 on 25 October 2026 happens twice in Amsterdam: without an offset it names no single moment."""
    clock.now = dt.datetime(2026, 10, 25, 6, 0, tzinfo=dt.UTC)
    refresh_token(rbl, clock)
    response = report(rbl, clock, {"submissions": [delivered["submission"]]}, detected_at="2026-10-25T02:30")
    assert response.status_code == 422
    assert response.json["errors"][0] == {
        "record": None,
        "field": "detected_at",
        "code": "ambiguous_time",
        "message": response.json["errors"][0]["message"],
    }
    with_offset = report(rbl, clock, {"submissions": [delivered["submission"]]}, detected_at="2026-10-25T02:30+01:00")
    assert with_offset.status_code == 201, with_offset.json


# -- the whole lifecycle ----------------------------------------------------------------------------


def test_lifecycle_from_report_to_close_with_every_step_audited(
    app: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    liemers: Party,
    delivered: dict[str, Any],
    webhook_receiver: WebhookReceiver,
) -> None:
    set_hook(runner, RBL, webhook_receiver.url)
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    assert response.status_code == 201
    breach = response.json
    assert breach["state"] == "gemeld"
    url = f"/api/v1/breaches/{breach['id']}"

    # The scheduler delivers the signed notice to the RBL: every affected party has it.
    clock.advance(minutes=1)
    assert "outbox delivered: 1" in tick(runner)
    notice = json.loads(webhook_receiver.received[0]["body"])
    assert notice["topic"] == "breach.notified" and notice["breach_id"] == breach["id"]
    assert notice["suspected_cause"] == breach["suspected_cause"]
    assert notice["data_subjects"] == 2 and notice["deadline"] == breach["deadline"]
    assert liemers.get(url).json["state"] == "genotificeerd"

    # Only affected parties acknowledge; the reporter cannot.
    assert liemers.post(f"{url}/acknowledgements", json={}).status_code == 403
    clock.advance(hours=2)
    refresh_token(rbl, clock)
    first = rbl.post(f"{url}/acknowledgements", json={})
    assert first.status_code == 201 and first.json["state"] == "bevestigd" and first.json["late"] is False
    assert rbl.post(f"{url}/acknowledgements", json={}).status_code == 200  # again: nothing changes

    # Closing needs the measures and both controllers' AP decisions.
    refresh_token(liemers, clock)
    refused = liemers.post(f"{url}/close", json={"measures": "Ontvanger heeft de mail aantoonbaar verwijderd."})
    assert refused.status_code == 409
    assert {e["field"] for e in refused.json["errors"]} == {
        f"parties.{LIEMERS}.ap_decision",
        f"parties.{RBL}.ap_decision",
    }
    reported = liemers.post(
        f"{url}/ap-decisions",
        json={"reported_to_ap": True, "ap_reference": "M-2026-01234", "reported_at": clock.now.isoformat()},
    )
    assert reported.status_code == 201, reported.json
    not_reported = rbl.post(f"{url}/ap-decisions", json={"reported_to_ap": False})
    assert not_reported.status_code == 422 and not_reported.json["errors"][0]["field"] == "reasoning"
    reasoned = rbl.post(
        f"{url}/ap-decisions",
        json={
            "reported_to_ap": False,
            "reasoning": "Geen risico: de ontvanger is een collega-instelling die verwijderde.",
        },
    )
    assert reasoned.status_code == 201
    assert rbl.post(f"{url}/close", json={"measures": "x"}).status_code == 403  # only the reporter closes
    assert liemers.post(f"{url}/close", json={"measures": ""}).status_code == 422
    closed = liemers.post(f"{url}/close", json={"measures": "Ontvanger heeft de mail aantoonbaar verwijderd."})
    assert closed.status_code == 200, closed.json
    assert closed.json["state"] == "gesloten"
    assert rbl.post(f"{url}/ap-decisions", json={"reported_to_ap": False, "reasoning": "later"}).status_code == 409

    names = [e["name"] for e in entries_of(app, breach["id"])]
    for step in (
        "breach.reported",
        "breach.party_notified",
        "breach.acknowledged",
        "breach.ap_decision",
        "breach.closed",
        "breach.state_changed",
    ):
        assert step in names, step
    states = [
        (e["attributes"]["from"], e["attributes"]["to"])
        for e in entries_of(app, breach["id"])
        if e["name"] == "breach.state_changed"
    ]
    assert states == [("gemeld", "genotificeerd"), ("genotificeerd", "bevestigd"), ("bevestigd", "gesloten")]
    # It stays in the register, with both decisions.
    register = liemers.get("/api/v1/breaches", headers={"Accept": "text/csv"}).get_data(as_text=True)
    assert "M-2026-01234" in register and "Geen risico" in register and "gesloten" in register


def test_overdue_breach_escalates_once_to_parties_and_officers(
    app: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    liemers: Party,
    delivered: dict[str, Any],
    webhook_receiver: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    app.config.update(SMTP_HOST=smtp_server.host, SMTP_PORT=smtp_server.port)
    officer = runner.invoke(
        args=[
            "users",
            "add",
            "fg-broker",
            "--role",
            "broker-officer",
            "--password",
            "correct horse battery staple",
            "--email",
            "fg@broker.example",
        ]
    )
    assert officer.exit_code == 0, officer.output
    set_hook(runner, LIEMERS, webhook_receiver.url)
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    url = f"/api/v1/breaches/{response.json['id']}"
    tick(runner)
    clock.advance(hours=23, minutes=59)
    tick(runner)
    refresh_token(liemers, clock)
    assert liemers.get(url).json["state"] == "gemeld"  # the RBL has no webhook or address: not notified

    clock.advance(minutes=1)  # exactly 24 hours after detection
    refresh_token(liemers, clock)
    shown = liemers.get(url).json
    assert shown["state"] == "te laat" and shown["late"] is True and shown["seconds_left"] == 0
    tick(runner)
    overdue = [json.loads(h["body"]) for h in webhook_receiver.received if b"breach.overdue" in h["body"]]
    assert len(overdue) == 1
    assert overdue[0]["missing_acknowledgements"] == [{"party_id": RBL, "name": "MGR RBL Midden-Gelre"}]
    officer_mail = [m for m in smtp_server.messages if "fg@broker.example" in m["To"]]
    assert len(officer_mail) == 1 and officer_mail[0]["X-Broker-Event"] == "breach.overdue"
    clock.advance(hours=1)
    tick(runner)
    assert len([h for h in webhook_receiver.received if b"breach.overdue" in h["body"]]) == 1  # once

    # A late acknowledgement still counts, and the breach stays marked as late.
    refresh_token(rbl, clock)
    ack = rbl.post(f"{url}/acknowledgements", json={})
    assert ack.status_code == 201 and ack.json["late"] is True and ack.json["state"] == "bevestigd"
    refresh_token(liemers, clock)
    assert liemers.get(url).json["late"] is True
    names = [e["name"] for e in entries_of(app, response.json["id"])]
    assert names.count("breach.state_changed") >= 2


def test_ap_decisions_have_their_own_72_hour_clock(
    app: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    liemers: Party,
    delivered: dict[str, Any],
    webhook_receiver: WebhookReceiver,
) -> None:
    set_hook(runner, RBL, webhook_receiver.url)
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    url = f"/api/v1/breaches/{response.json['id']}"
    refresh_token(liemers, clock)
    liemers.post(f"{url}/ap-decisions", json={"reported_to_ap": False, "reasoning": "Geen risico voor betrokkenen."})
    clock.advance(hours=72)
    tick(runner)
    refresh_token(liemers, clock)
    parties = {p["party_id"]: p for p in liemers.get(url).json["parties"]}
    assert parties[RBL]["ap_overdue"] is True and parties[LIEMERS]["ap_overdue"] is False
    ap_overdue = [json.loads(h["body"]) for h in webhook_receiver.received if b"breach.ap_overdue" in h["body"]]
    assert [n["missing_ap_decisions"][0]["party_id"] for n in ap_overdue] == [RBL]
    assert "breach.ap_decision_overdue" in [e["name"] for e in entries_of(app, response.json["id"])]


def test_notices_are_retried_while_the_receiver_fails(
    app: Any, runner: Any, clock: Clock, liemers: Party, delivered: dict[str, Any], webhook_receiver: WebhookReceiver
) -> None:
    """A failing receiver gets the same signed notice again with back-off; every attempt is kept, and
    the party counts as notified from the attempt that succeeded."""
    set_hook(runner, RBL, webhook_receiver.url)
    webhook_receiver.statuses = [500, 502, 503]
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    url = f"/api/v1/breaches/{response.json['id']}"
    for minutes in (0, 1, 2, 4):  # back-off: 1, 2, 4 minutes
        clock.advance(minutes=minutes)
        tick(runner)
    assert len(webhook_receiver.received) == 4
    assert len({h["headers"]["X-Broker-Delivery"] for h in webhook_receiver.received}) == 1
    with app.app_context(), db.engine.connect() as conn:
        statuses = [r[0] for r in conn.execute(text("SELECT status_code FROM outbox_attempts ORDER BY attempted_at"))]
    assert statuses == [500, 502, 503, 200]
    refresh_token(liemers, clock)
    rbl_row = next(p for p in liemers.get(url).json["parties"] if p["party_id"] == RBL)
    assert rbl_row["notified_via"] == "webhook"
    assert dt.datetime.fromisoformat(rbl_row["notified_at"]) == clock.now


def test_notice_by_email_states_the_four_required_facts(
    app: Any, runner: Any, clock: Clock, liemers: Party, delivered: dict[str, Any], smtp_server: SmtpServer
) -> None:
    app.config.update(SMTP_HOST=smtp_server.host, SMTP_PORT=smtp_server.port)
    result = runner.invoke(args=["contacts", "set", "--party", RBL, "privacy@rbl.example"])
    assert result.exit_code == 0, result.output
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    tick(runner)
    (message,) = smtp_server.messages
    assert message["To"] == "privacy@rbl.example"
    body = message.get_content()
    for heading in REQUIRED_FACTS:
        assert heading in body, heading
    assert response.json["suspected_cause"] in body
    assert "Langdurig verzuim" in body and "Absoluut verzuim" in body
    assert "Burgerservicenummer" in body
    assert response.json["deadline_local"] in body
    assert make_bsn(1) not in body
    refresh_token(liemers, clock)
    rbl_row = next(
        p for p in liemers.get(f"/api/v1/breaches/{response.json['id']}").json["parties"] if p["party_id"] == RBL
    )
    assert rbl_row["notified_via"] == "email"


# -- correction, visibility, containment ------------------------------------------------------------


def test_the_reporter_corrects_the_impact_and_a_new_party_is_notified(
    app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party, delivered: dict[str, Any]
) -> None:
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    url = f"/api/v1/breaches/{response.json['id']}"
    assert rbl.http.patch(url + "/impact", headers=rbl.headers, json={"reason": "x"}).status_code == 403
    corrected = liemers.http.patch(
        url + "/impact",
        headers=liemers.headers,
        json={"reason": "De mail bevatte ook een oudere lijst.", "data_subjects": 5, "add_parties": [PASSEND_WIJS]},
    )
    assert corrected.status_code == 200, corrected.json
    assert corrected.json["impact"]["data_subjects"] == 5
    assert corrected.json["impact_computed"]["data_subjects"] == 2
    assert corrected.json["impact"]["corrections"][0]["reason"] == "De mail bevatte ook een oudere lijst."
    assert passend_wijs.get(url).status_code == 200  # now a party of the breach
    entry = next(e for e in entries_of(app, response.json["id"]) if e["name"] == "breach.impact_corrected")
    assert entry["attributes"]["added_parties"] == [PASSEND_WIJS]
    with app.app_context(), db.engine.connect() as conn:
        topics = {r[0] for r in conn.execute(text("SELECT topic || ':' || party_id FROM outbox"))}
    assert {f"breach.notified:{PASSEND_WIJS}", f"breach.updated:{RBL}"} <= topics


def test_a_party_outside_the_breach_does_not_see_it(
    clock: Clock, liemers: Party, passend_wijs: Party, delivered: dict[str, Any]
) -> None:
    response = report(liemers, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    assert passend_wijs.get(f"/api/v1/breaches/{response.json['id']}").status_code == 404
    assert passend_wijs.get("/api/v1/breaches").json["breaches"] == []
    assert passend_wijs.post(f"/api/v1/breaches/{response.json['id']}/acknowledgements", json={}).status_code == 404


def test_containment_suspends_a_partys_clients_until_lifted(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party, delivered: dict[str, Any]
) -> None:
    response = report(rbl, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    breach_id = response.json["id"]
    clock.advance(seconds=2)
    result = runner.invoke(args=["breaches", "suspend", breach_id, "--party", LIEMERS])
    assert result.exit_code == 0, result.output
    # The token from before the suspension is revoked for good.
    old = liemers.get("/api/v1/deliveries")
    assert old.status_code == 401 and old.mimetype == "application/problem+json"
    # A new token reaches only the breach endpoints while the suspension lasts.
    clock.advance(seconds=2)
    refresh_token(liemers, clock)
    suspended = liemers.get("/api/v1/deliveries")
    assert suspended.status_code == 403 and suspended.json["type"] == "/problems/party-suspended"
    assert liemers.post(f"/api/v1/breaches/{breach_id}/acknowledgements", json={}).status_code == 201
    assert liemers.get(f"/api/v1/breaches/{breach_id}").json["containment"][0]["lifted_at"] is None

    result = runner.invoke(args=["breaches", "reinstate", breach_id, "--party", LIEMERS])
    assert result.exit_code == 0, result.output
    assert liemers.get("/api/v1/deliveries").status_code == 200
    names = [e["name"] for e in entries_of(app, breach_id)]
    assert "breach.party_suspended" in names and "breach.party_reinstated" in names


def test_closing_lifts_the_containment_and_a_closed_breach_stays_in_the_register(
    runner: Any, clock: Clock, rbl: Party, liemers: Party, delivered: dict[str, Any]
) -> None:
    response = report(rbl, clock, {"deliveries": [delivered["deliveries"][LIEMERS]]})
    url = f"/api/v1/breaches/{response.json['id']}"
    assert runner.invoke(args=["breaches", "suspend", response.json["id"], "--party", LIEMERS]).exit_code == 0
    clock.advance(seconds=2)
    refresh_token(liemers, clock)
    for party in (rbl, liemers):
        decided = party.post(f"{url}/ap-decisions", json={"reported_to_ap": False, "reasoning": "Laag risico."})
        assert decided.status_code == 201, decided.json
    assert (
        rbl.post(f"{url}/close", json={"measures": "Verbinding afgesloten, wachtwoorden vervangen."}).status_code == 200
    )
    assert liemers.get("/api/v1/deliveries").status_code == 200
    register = runner.invoke(args=["breaches", "register"])
    assert register.exit_code == 0 and "Laag risico." in register.output and "gesloten" in register.output


def test_a_convenant_without_breach_rules_refuses_a_report(make_multi_party: Any, clock: Clock) -> None:
    party = make_multi_party("gemeente-nijmegen")
    response = party.post(
        "/api/v1/breaches",
        json={
            "convenant_id": "vsv-rijk-van-nijmegen",
            "detected_at": clock.now.isoformat(),
            "description": "Test",
            "suspected_cause": "Test",
            "scope": {"window": {"from": clock.now.isoformat(), "to": clock.now.isoformat()}},
        },
    )
    assert response.status_code == 409
    assert "[breach]" in response.json["detail"]


def test_an_id_whose_digits_look_like_a_bsn_is_an_id_not_a_bsn(clock: Clock, rbl: Party) -> None:
    """A UUID's digit groups can pass the elfproef; ids are checked as ids, never screened as text."""
    bsn = make_bsn(4)
    lookalike = f"{bsn[:8]}-{bsn[8]}000-4000-8000-000000000000"
    response = report(rbl, clock, {"deliveries": [lookalike]})
    assert response.status_code == 422
    assert response.json["errors"][0]["code"] == "unknown_delivery"
    invalid = report(rbl, clock, {"submissions": ["not-an-id"]})
    assert invalid.json["errors"][0] == {
        "record": None, "field": "scope.submissions.0", "code": "invalid_id",
        "message": invalid.json["errors"][0]["message"],
    }
