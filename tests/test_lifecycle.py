"""The lifecycle of a case: ending it (notices, purge), correcting its records, and restricted pupils."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.parties import Party
from fixtures.receivers import WebhookReceiver
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import text

from schemas.convenant_file import DEFAULT_DIR, load_convenant

ENDINGS = f"/api/v1/convenants/{CONVENANT}/endings"
CORRECTIONS = f"/api/v1/convenants/{CONVENANT}/corrections"
DELIVERIES = "/api/v1/deliveries"
REASONS = load_convenant(DEFAULT_DIR / f"{CONVENANT}.toml").ending_reasons


# -- helpers ---------------------------------------------------------------------------------------


def pseudonym(app: Any, n: int) -> str:
    with app.app_context():
        from broker.app import runtime

        return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(n))


def query(app: Any, sql: str, **params: Any) -> list[Any]:
    from broker.app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def entries(app: Any, name: str, subject: str | None = None) -> list[dict[str, Any]]:
    """The audit records named `name` (about `subject`, when given), in log order."""
    sql = "SELECT canonical FROM audit_entries WHERE name = :name"
    if subject:
        sql += " AND data_subject_id = :subject"
    return [json.loads(bytes(row[0])) for row in query(app, sql + " ORDER BY idx", name=name, subject=subject)]


def submit(party: Party, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = party.submit(records)
    assert response.status_code == 201, response.json
    return response.json


def delivery_to(body: dict[str, Any], recipient: str) -> str:
    [delivery_id] = [d["delivery_id"] for d in body["deliveries"] if d["recipient"] == recipient]
    return delivery_id


def end(party: Party, n: int, reason: str = "teruggekeerd_naar_onderwijs") -> Any:
    return party.post(ENDINGS, json={"bsn": make_bsn(n), "reason": reason})


def correct(party: Party, records: list[dict[str, Any]]) -> Any:
    return party.post(CORRECTIONS, json={"records": records})


def deliveries_of(party: Party, kind: str) -> list[dict[str, Any]]:
    return [d for d in party.get(DELIVERIES).json["deliveries"] if d["kind"] == kind]


def restrict(app: Any, n: int, clock: Clock, lifted: bool = False, by: str = "rbl-midden-gelre") -> None:
    """Put pupil `n` under a restriction asked by `by` (default the RBL, the sender in these tests: its own
    restriction keeps its records at the broker), lifted at once when `lifted`."""
    from broker.app.extensions import db
    from broker.models import SubjectRestriction

    subject = pseudonym(app, n)
    with app.app_context():
        db.session.add(
            SubjectRestriction(
                id=str(uuid.uuid4()),
                convenant_id=CONVENANT,
                pseudonym=subject,
                requested_by=by,
                reason="De ouders betwisten de juistheid.",
                started_at=clock.now,
                lifted_at=clock.now if lifted else None,
                lifted_by="swv-de-liemers" if lifted else None,
            )
        )
        db.session.commit()


def purge(app: Any, submission_id: str) -> None:
    """Purge every record of a submission, as retention would."""
    from sqlalchemy import select

    from broker.app import runtime
    from broker.app.extensions import db
    from broker.auditing import step as auditing
    from broker.models import Record
    from broker.rights.purge import purge_records

    with app.app_context():
        keyring = runtime.keyring()
        keys = db.session.execute(select(Record.submission_id, Record.seq).where(Record.submission_id == submission_id))
        with auditing.audited_step(db.session, auditing.cli_actor()) as step:
            purge_records(db.session, keyring, list(keys), step.recorder, step.now, reason="retention")
        keyring.sweep_vault()


def lift(app: Any, n: int, clock: Clock) -> None:
    from sqlalchemy import update

    from broker.app.extensions import db
    from broker.models import SubjectRestriction

    subject = pseudonym(app, n)
    with app.app_context():
        db.session.execute(
            update(SubjectRestriction)
            .where(SubjectRestriction.pseudonym == subject)
            .values(lifted_at=clock.now, lifted_by="bo")
        )
        db.session.commit()


# -- ending ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", REASONS, ids=[r.id for r in REASONS])
def test_ending_sends_a_reason_only_notice_and_forgets_the_pupil(
    app: Any, rbl: Party, liemers: Party, reason: Any
) -> None:
    """Each ending reason: the recipient gets a notice with BSN and reason only; no record of the pupil is left."""
    sent = submit(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Zevenaar")])
    earlier = delivery_to(sent, "swv-de-liemers")

    response = end(rbl, 1, reason.id)
    assert response.status_code == 201, response.json
    body = response.json
    assert {k: body[k] for k in ("convenant_id", "reason", "reason_code", "reason_text", "notified", "purged")} == {
        "convenant_id": CONVENANT,
        "reason": reason.id,
        "reason_code": reason.code,
        "reason_text": reason.text,
        "notified": ["swv-de-liemers"],
        "purged": 1,
    }

    [notice] = deliveries_of(liemers, "end_notice")
    fetched = liemers.get(f"{DELIVERIES}/{notice['delivery_id']}").json
    assert fetched["sender"] == "rbl-midden-gelre"
    assert fetched["records"] == [
        {
            "bsn": make_bsn(1),
            "ending_reason": reason.id,
            "ending_reason_code": reason.code,
            "ending_reason_text": reason.text,
        }
    ]
    # The earlier delivery still holds the other pupil, and no longer this one.
    assert [r["bsn"] for r in liemers.get(f"{DELIVERIES}/{earlier}").json["records"]] == [make_bsn(2)]
    kinds = query(
        app,
        "SELECT s.kind FROM records r JOIN submissions s ON s.id = r.submission_id WHERE r.pseudonym = :p",
        p=pseudonym(app, 1),
    )
    assert [k for (k,) in kinds] == ["end_notice"]  # only the notice itself names the pupil
    [ended] = entries(app, "case.ended", pseudonym(app, 1))
    assert ended["attributes"]["reason"] == reason.id
    assert ended["attributes"]["notified"] == ["swv-de-liemers"]
    assert [e["attributes"]["reason"] for e in entries(app, "record.purged", pseudonym(app, 1))] == ["case.ended"]
    [created] = [
        e for e in entries(app, "delivery.created", pseudonym(app, 1)) if e["attributes"]["kind"] == "end_notice"
    ]
    assert created["attributes"]["recipient"] == "swv-de-liemers"


def test_reason_may_be_given_by_its_code_letter(app: Any, rbl: Party, liemers: Party) -> None:
    """The convenant's code letter names a reason as well as its id; the answer gives both."""
    submit(rbl, [make_record(1, gemeente="Duiven")])
    last = REASONS[-1]
    response = end(liemers, 1, last.code)
    assert response.status_code == 201, response.json
    assert (response.json["reason"], response.json["reason_code"]) == (last.id, last.code)
    assert response.json["notified"] == ["rbl-midden-gelre"]
    with app.app_context():
        from broker.app.extensions import db
        from broker.models import CaseEnding

        [row] = db.session.query(CaseEnding).all()
        assert (row.party_id, row.reason, row.notified) == ("swv-de-liemers", last.id, ["rbl-midden-gelre"])


def test_ending_acts_on_the_ending_partys_own_flows_only(
    app: Any, rbl: Party, passend_wijs: Party, liemers: Party, verbinding: Party, open_quarter: str
) -> None:
    """An ending tells the parties the ender exchanged the pupil with, and purges only the ender's flows."""
    submit(liemers, [make_record(1, gemeente="Duiven")])  # Liemers -> RBL
    for party, records in (
        (rbl, [make_record(1, gemeente="Arnhem"), make_record(2, gemeente="Arnhem")]),
        (passend_wijs, [make_record(2, gemeente="Arnhem")]),
        (liemers, [make_record(3, gemeente="Duiven")]),
        (verbinding, [make_record(4, gemeente="Lingewaard")]),
    ):
        assert party.submit(records, kind="quarterly_list", quarter=open_quarter).status_code == 201
    [match] = [d for d in deliveries_of(passend_wijs, "match") if d["sender"] == "rbl-midden-gelre"]
    assert [r["bsn"] for r in passend_wijs.get(f"{DELIVERIES}/{match['delivery_id']}").json["records"]] == [make_bsn(1)]

    response = end(liemers, 1, "startkwalificatie_behaald")
    assert response.status_code == 201, response.json
    assert response.json["notified"] == ["rbl-midden-gelre"]  # Passend Wijs had the pupil from the RBL, not Liemers
    assert response.json["purged"] == 1  # Liemers' case record; the RBL's list entry is the RBL's flow
    assert [r["bsn"] for r in passend_wijs.get(f"{DELIVERIES}/{match['delivery_id']}").json["records"]] == [make_bsn(1)]
    assert deliveries_of(passend_wijs, "end_notice") == [] and deliveries_of(verbinding, "end_notice") == []

    response = end(rbl, 1, "startkwalificatie_behaald")  # the RBL's case with Passend Wijs goes on until now
    assert response.status_code == 201, response.json
    # The RBL's list entry, and the end notice Liemers sent it.
    assert response.json["notified"] == ["swv-passend-wijs"] and response.json["purged"] == 2
    assert passend_wijs.get(f"{DELIVERIES}/{match['delivery_id']}").json["records"] == []
    assert len(deliveries_of(rbl, "end_notice")) == len(deliveries_of(passend_wijs, "end_notice")) == 1
    assert deliveries_of(verbinding, "end_notice") == []


def test_ending_queues_a_webhook_without_the_bsn(
    app: Any, runner: Any, rbl: Party, liemers: Party, webhook_receiver: WebhookReceiver
) -> None:
    """The recipient's webhook hears of the ending and where to fetch the notice, never the BSN."""
    result = runner.invoke(args=["webhooks", "set", "--party", "swv-de-liemers", "--url", webhook_receiver.url])
    assert result.exit_code == 0, result.output
    submit(rbl, [make_record(1, gemeente="Duiven")])
    ended = end(rbl, 1, "niet_langer_in_werkgebied").json
    assert runner.invoke(args=["webhooks", "deliver"]).exit_code == 0

    [hit] = webhook_receiver.received
    assert make_bsn(1).encode() not in hit["body"]
    body = json.loads(hit["body"])
    [notice] = deliveries_of(liemers, "end_notice")
    assert body["topic"] == "case.ended"
    assert (body["convenant_id"], body["delivery_id"], body["ending_reason"]) == (
        CONVENANT,
        notice["delivery_id"],
        "niet_langer_in_werkgebied",
    )
    assert body["ended_at"] == ended["ended_at"]


def test_ending_by_a_party_without_a_case_is_refused(app: Any, rbl: Party, passend_wijs: Party, problem: Any) -> None:
    """A party that neither sent nor received the pupil cannot end its case (404); nothing changes."""
    submit(rbl, [make_record(1, gemeente="Duiven")])
    body = problem(end(passend_wijs, 1), 404)
    assert body["detail"] == "Uw partij heeft geen lopende casus over deze leerling."
    problem(end(rbl, 99), 404)  # nobody has a case about this pupil
    assert query(app, "SELECT COUNT(*) FROM records")[0][0] == 1
    assert query(app, "SELECT COUNT(*) FROM case_endings")[0][0] == 0
    assert len(entries(app, "case.end_rejected")) == 2


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"bsn": make_bsn(1), "reason": "verhuisd"}, "reason", "unknown_ending_reason"),
        ({"bsn": make_bsn(1), "reason": "z"}, "reason", "unknown_ending_reason"),
        ({"bsn": make_bsn(1)}, "reason", "unknown_ending_reason"),
        ({"bsn": make_bsn(1)[:-1] + "0", "reason": "overleden"}, "bsn", "invalid_bsn"),
        ({"bsn": 123456782, "reason": "overleden"}, "bsn", "invalid_bsn"),
    ],
    ids=["unknown-id", "unknown-code", "no-reason", "elfproef", "not-a-string"],
)
def test_bad_ending_request_is_422(
    app: Any, rbl: Party, problem: Any, body: dict[str, Any], field: str, code: str
) -> None:
    """An unknown reason or an invalid BSN is 422 naming the field; the BSN is never echoed."""
    submit(rbl, [make_record(1, gemeente="Duiven")])
    response = rbl.post(ENDINGS, json=body)
    problem_body = problem(response, 422)
    assert [(e["field"], e["code"]) for e in problem_body["errors"]] == [(field, code)]
    if code == "unknown_ending_reason":
        assert all(r.id in problem_body["errors"][0]["message"] for r in REASONS)
    assert str(body["bsn"]) not in response.get_data(as_text=True)
    assert query(app, "SELECT COUNT(*) FROM case_endings")[0][0] == 0


def test_unknown_ending_keys_are_named_by_position_unless_plain(rbl: Party, problem: Any) -> None:
    """An unknown key of an ending request holding a BSN is reported as `veld N`, a plain one by name."""
    body = {"bsn": make_bsn(1), "reason": "overleden", make_bsn(2): "x", "extra": 1}
    # Sent as written (the test client's json= would sort the keys).
    response = rbl.post(ENDINGS, data=json.dumps(body), headers={"Content-Type": "application/json"})
    refusal = problem(response, 400)
    assert [(e["field"], e["code"]) for e in refusal["errors"]] == [("veld 3", "not_allowed"), ("extra", "not_allowed")]
    assert make_bsn(2) not in response.get_data(as_text=True)


def test_a_new_submission_after_an_ending_is_a_new_case(
    app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """After an ending the pupil is routed again when sent anew; the new case's ending tells only its parties."""
    submit(rbl, [make_record(1, gemeente="Duiven")])
    assert end(rbl, 1).status_code == 201
    clock.advance(minutes=1)
    again = submit(rbl, [make_record(1, gemeente="Arnhem")])
    assert [d["recipient"] for d in again["deliveries"]] == ["swv-passend-wijs"]

    assert end(liemers, 1).status_code == 404  # Liemers' part ended with the first case
    response = end(passend_wijs, 1, "overleden")
    assert response.status_code == 201, response.json
    assert response.json["notified"] == ["rbl-midden-gelre"]
    assert len(deliveries_of(liemers, "end_notice")) == 1  # from the first ending only


def test_ending_after_retention_purged_the_records_reads_the_audit_log(
    app: Any, rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """With the pupil's records already purged, the audit log still tells who had the case and who to notify."""
    sent = submit(rbl, [make_record(1, gemeente="Duiven")])
    purge(app, sent["submission_id"])
    assert end(passend_wijs, 1).status_code == 404
    response = end(liemers, 1)
    assert response.status_code == 201, response.json
    assert (response.json["notified"], response.json["purged"]) == (["rbl-midden-gelre"], 0)
    assert len(deliveries_of(rbl, "end_notice")) == 1


# -- correction ------------------------------------------------------------------------------------


def test_correction_reaches_every_earlier_recipient_and_the_audit_chains_versions(
    app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """A correction goes to every recipient of any earlier version; record.corrected links each to the last."""
    first = submit(rbl, [make_record(1, gemeente="Duiven")])
    clock.advance(minutes=1)
    moved = make_record(1, gemeente="Arnhem")  # the pupil moved: now Passend Wijs's werkgebied
    response = correct(rbl, [moved])
    assert response.status_code == 201, response.json
    second = response.json
    assert second["kind"] == "correction" and second["receipt"]
    assert second["corrects"] == [f"{first['submission_id']}/0"]
    assert {d["recipient"] for d in second["deliveries"]} == {"swv-de-liemers", "swv-passend-wijs"}

    clock.advance(minutes=1)
    fixed = make_record(1, gemeente="Arnhem", reden_verzuim="ziek thuis")
    third = correct(rbl, [fixed]).json
    assert third["corrects"] == [f"{second['submission_id']}/0"]
    assert {d["recipient"] for d in third["deliveries"]} == {"swv-de-liemers", "swv-passend-wijs"}
    for party in (liemers, passend_wijs):
        delivery = party.get(f"{DELIVERIES}/{delivery_to(third, party.party_id)}").json
        assert delivery["kind"] == "correction"
        assert delivery["records"][0]["reden_verzuim"] == "ziek thuis"

    chain = [e["attributes"] for e in entries(app, "record.corrected", pseudonym(app, 1))]
    assert [(a["submission_id"], a["corrects"], a["version"], a["category"]) for a in chain] == [
        (second["submission_id"], f"{first['submission_id']}/0", 2, "langdurig_verzuim"),
        (third["submission_id"], f"{second['submission_id']}/0", 3, "langdurig_verzuim"),
    ]
    created = [
        e["attributes"]
        for e in entries(app, "delivery.created", pseudonym(app, 1))
        if e["attributes"]["submission_id"] == third["submission_id"]
    ]
    assert {(a["recipient"], a["category"], a["kind"]) for a in created} == {
        ("swv-de-liemers", "langdurig_verzuim", "correction"),
        ("swv-passend-wijs", "langdurig_verzuim", "correction"),
    }
    stored = query(app, "SELECT corrects FROM records WHERE submission_id = :s", s=third["submission_id"])
    assert stored == [(f"{second['submission_id']}/0",)]


def test_correction_without_an_earlier_version_is_422(
    app: Any, rbl: Party, liemers: Party, problem: Any, count_rows: Any
) -> None:
    """Only a party's own earlier record can be corrected; otherwise 422 on that record, nothing stored."""
    submit(rbl, [make_record(1, gemeente="Duiven")])
    before = count_rows()
    body = problem(correct(liemers, [make_record(1, gemeente="Duiven")]), 422)  # Liemers only received it
    assert body["errors"] == [
        {"record": 0, "field": "bsn", "code": "no_earlier_version", "message": body["errors"][0]["message"]}
    ]
    body = problem(correct(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")]), 422)
    assert [(e["record"], e["code"]) for e in body["errors"]] == [(1, "no_earlier_version")]
    assert count_rows() == before


def test_an_invalid_correction_rejects_every_record(rbl: Party, problem: Any, count_rows: Any) -> None:
    """A correction is validated like a submission: one bad record rejects all, naming record, field and rule."""
    submit(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")])
    before = count_rows()
    bad = make_record(2, gemeente="Duiven")
    bad["adres"]["postcode"] = "12345"
    body = problem(correct(rbl, [make_record(1, gemeente="Duiven"), bad]), 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(1, "adres.postcode", "invalid_postcode")]
    assert count_rows() == before


def test_a_purged_version_still_counts_in_the_chain(
    app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """Once an earlier version is purged, the audit log still names its recipients and its place in the chain."""
    first = submit(rbl, [make_record(1, gemeente="Duiven")])  # to Liemers
    restrict(app, 1, clock)
    clock.advance(minutes=1)
    second = correct(rbl, [make_record(1, gemeente="Arnhem")]).json  # held back: the RBL restricted it
    assert second["deliveries"] == [] and second["restricted"] == 1
    clock.advance(minutes=1)
    third = correct(rbl, [make_record(1, gemeente="Arnhem", voornaam="Sem")]).json
    purge(app, first["submission_id"])
    purge(app, second["submission_id"])
    lift(app, 1, clock)
    clock.advance(minutes=1)
    fourth = correct(rbl, [make_record(1, gemeente="Arnhem", voornaam="Sem", reden_verzuim="ziek thuis")]).json
    assert fourth["corrects"] == [f"{third['submission_id']}/0"]
    assert {d["recipient"] for d in fourth["deliveries"]} == {"swv-de-liemers", "swv-passend-wijs"}
    assert [e["attributes"]["version"] for e in entries(app, "record.corrected", pseudonym(app, 1))] == [2, 3, 4]


# -- restriction -----------------------------------------------------------------------------------


def test_restricted_subject_is_stored_but_not_routed(app: Any, clock: Clock, rbl: Party, liemers: Party) -> None:
    """A pupil the sender restricted is stored but goes to no one; the unrestricted one beside it is routed."""
    restrict(app, 1, clock)
    restrict(app, 2, clock, lifted=True)  # a lifted restriction no longer holds anything back
    body = submit(rbl, [make_record(n, gemeente="Duiven") for n in (1, 2, 3)])
    assert body["restricted"] == 1 and body["accepted"] == 3
    assert make_bsn(1) not in json.dumps(body)
    delivered = liemers.get(f"{DELIVERIES}/{delivery_to(body, 'swv-de-liemers')}").json["records"]
    assert [r["bsn"] for r in delivered] == [make_bsn(2), make_bsn(3)]
    assert query(app, "SELECT COUNT(*) FROM records WHERE pseudonym = :p", p=pseudonym(app, 1)) == [(1,)]
    [withheld] = entries(app, "record.withheld", pseudonym(app, 1))
    assert withheld["attributes"]["reason"] == "restricted"
    assert entries(app, "delivery.created", pseudonym(app, 1)) == []


@pytest.mark.parametrize("by", ["swv-de-liemers", "broker"])
def test_a_recipients_restriction_holds_the_record_back_without_telling_the_sender(
    app: Any, clock: Clock, rbl: Party, liemers: Party, by: str
) -> None:
    """Restricted by the recipient or the broker, the record travels as any other (the sender's answer is the
    same as for an unrestricted pupil) and is held back, audited, when the recipient fetches; once lifted it
    is handed over."""
    restrict(app, 1, clock, by=by)
    body = submit(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")])
    plain = submit(rbl, [make_record(3, gemeente="Duiven"), make_record(4, gemeente="Duiven")])
    strip = ("submission_id", "received_at", "deliveries", "receipt")
    assert {k: v for k, v in body.items() if k not in strip} == {k: v for k, v in plain.items() if k not in strip}
    assert [(d["recipient"], d["records"]) for d in body["deliveries"]] == [("swv-de-liemers", 2)]
    delivery_id = delivery_to(body, "swv-de-liemers")
    assert [r["bsn"] for r in liemers.get(f"{DELIVERIES}/{delivery_id}").json["records"]] == [make_bsn(2)]
    [held] = entries(app, "delivery.held_back", pseudonym(app, 1))
    assert held["attributes"]["delivery_id"] == delivery_id
    assert entries(app, "delivery.fetched", pseudonym(app, 1)) == []
    lift(app, 1, clock)
    again = liemers.get(f"{DELIVERIES}/{delivery_id}").json["records"]
    assert [r["bsn"] for r in again] == [make_bsn(1), make_bsn(2)]


def test_correction_of_a_restricted_subject_is_not_routed(app: Any, clock: Clock, rbl: Party, liemers: Party) -> None:
    """A correction about a pupil its sender restricted goes to no one, not even earlier recipients."""
    submit(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")])
    restrict(app, 1, clock)
    clock.advance(minutes=1)
    response = correct(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Zevenaar")])
    assert response.status_code == 201, response.json
    assert response.json["restricted"] == 1
    [delivery] = response.json["deliveries"]
    assert (delivery["recipient"], delivery["records"]) == ("swv-de-liemers", 1)
    records = liemers.get(f"{DELIVERIES}/{delivery['delivery_id']}").json["records"]
    assert [(r["bsn"], r["adres"]["gemeente"]) for r in records] == [(make_bsn(2), "Zevenaar")]


def test_end_notice_fetch_is_audited_under_the_case_activity(app: Any, rbl: Party, liemers: Party) -> None:
    """Fetching an end notice is recorded per pupil with the notice's category, under the case activity."""
    submit(rbl, [make_record(1, gemeente="Duiven")])
    end(rbl, 1)
    [notice] = deliveries_of(liemers, "end_notice")
    assert liemers.get(f"{DELIVERIES}/{notice['delivery_id']}").status_code == 200
    fetched = [
        e
        for e in entries(app, "delivery.fetched", pseudonym(app, 1))
        if e["attributes"]["delivery_id"] == notice["delivery_id"]
    ]
    [entry] = fetched
    assert entry["attributes"]["category"] == "einde"
    [received] = entries(app, "record.received", pseudonym(app, 1))
    assert entry["processing_activity_id"] == received["processing_activity_id"]
    assert dt.datetime.fromisoformat(notice["created_at"]).utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("requested_by", "left_out"),
    [("broker", True), ("swv-de-liemers", True), ("rbl-midden-gelre", True), ("swv-passend-wijs", False)],
)
def test_a_restricted_pupil_is_left_out_of_the_quarterly_match(
    app: Any,
    rbl: Party,
    liemers: Party,
    passend_wijs: Party,
    verbinding: Party,
    open_quarter: str,
    requested_by: str,
    left_out: bool,
) -> None:
    """The match discloses nothing about a pupil restricted by the broker or either party of the pair, to
    either side; another party's restriction does not touch the pair."""
    from broker.app import runtime
    from broker.app.extensions import db
    from broker.models import SubjectRestriction

    with app.app_context():
        pseudonym = runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(2))
        db.session.add(SubjectRestriction(
            id=str(uuid.uuid4()), convenant_id=CONVENANT, pseudonym=pseudonym, requested_by=requested_by,
            reason="bezwaar", started_at=runtime.now(),
        ))
        db.session.commit()
    lists = [
        (rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")]),
        (liemers, [make_record(3, gemeente="Duiven")]),
        (passend_wijs, [make_record(4, gemeente="Arnhem")]),
        (verbinding, [make_record(5, gemeente="Lingewaard")]),
    ]
    for party, records in lists:
        response = party.submit(records, kind="quarterly_list", quarter=open_quarter)
        assert response.status_code == 201, response.json
    view = liemers.get(f"/api/v1/convenants/{CONVENANT}/quarters/{open_quarter}/match").json
    (from_rbl,) = [v for v in view["views"] if v["other"] == "rbl-midden-gelre"]
    expected = [make_bsn(1)] if left_out else [make_bsn(1), make_bsn(2)]
    assert [r["bsn"] for r in from_rbl["records"]] == expected
