"""Idempotent submissions: an Idempotency-Key replays the first answer, and an unchanged record is not
delivered to the same recipient twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.parties import Party, refresh_token
from fixtures.records import CONVENANT, make_record, to_csv
from sqlalchemy import func, select

from broker.app.extensions import db
from broker.models import AuditEntryRow, Delivery, IdempotencyKey, Submission

SUBMISSIONS = f"/api/v1/convenants/{CONVENANT}/submissions"
CORRECTIONS = f"/api/v1/convenants/{CONVENANT}/corrections"
CASES = [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven"), make_record(3, gemeente="Arnhem")]


def count(app: Any, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def send(party: Party, records: list[dict[str, Any]], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return party.post(SUBMISSIONS, json={"kind": "case", "records": records}, headers=headers)


# -- the same case file sent again -----------------------------------------------------------------


def test_the_same_case_file_three_times_is_delivered_once(
    app: Any, rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """Sent three times, each child reaches its SWV once; the later answers name every record a duplicate."""
    first = send(rbl, CASES)
    assert first.status_code == 201, first.json
    assert first.json["duplicates"] == []
    for _ in range(2):
        again = send(rbl, CASES)
        assert again.status_code == 201 and again.json["accepted"] == 3
        assert again.json["deliveries"] == []
        assert again.json["duplicates"] == [
            {"record": 0, "recipient": "swv-de-liemers"},
            {"record": 1, "recipient": "swv-de-liemers"},
            {"record": 2, "recipient": "swv-passend-wijs"},
        ]
    assert [d["records"] for d in liemers.get("/api/v1/deliveries").json["deliveries"]] == [2]
    assert [d["records"] for d in passend_wijs.get("/api/v1/deliveries").json["deliveries"]] == [1]
    with app.app_context():
        withheld = db.session.scalars(select(AuditEntryRow.canonical).where(AuditEntryRow.name == "record.withheld"))
        reasons = [json.loads(bytes(c))["attributes"]["reason"] for c in withheld]
    assert reasons == ["duplicate"] * 6


def test_a_changed_record_is_delivered_again(app: Any, clock: Clock, rbl: Party, liemers: Party) -> None:
    """Only what changed since the last delivery goes out; field order does not count as a change."""
    assert send(rbl, CASES[:2]).status_code == 201
    clock.advance(seconds=1)
    reordered = dict(reversed(list(CASES[0].items())))
    changed = {**CASES[1], "reden_verzuim": "angst voor de klas"}
    response = send(rbl, [reordered, changed])
    assert response.status_code == 201
    assert response.json["duplicates"] == [{"record": 0, "recipient": "swv-de-liemers"}]
    assert [(d["recipient"], d["records"]) for d in response.json["deliveries"]] == [("swv-de-liemers", 1)]
    # And back to the first version: it differs from what was delivered last, so it goes again.
    clock.advance(seconds=1)
    back = send(rbl, [CASES[1]])
    assert back.json["duplicates"] == [] and back.json["deliveries"][0]["records"] == 1


def test_a_record_the_recipient_never_got_from_this_sender_is_not_a_duplicate(
    rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """The same pupil moving to another SWV's werkgebied goes to that SWV; another sender's copy does not count."""
    assert send(rbl, [CASES[0]]).status_code == 201
    moved = send(rbl, [make_record(1, gemeente="Arnhem")])
    assert moved.json["duplicates"] == [] and moved.json["deliveries"][0]["recipient"] == "swv-passend-wijs"
    own = liemers.submit([make_record(1, gemeente="Duiven")])
    assert own.json["duplicates"] == [] and own.json["deliveries"][0]["recipient"] == "rbl-midden-gelre"


# -- Idempotency-Key -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["batch-2026-12-07-001", '"batch 7"'])
def test_a_repeat_with_the_same_key_gets_the_first_answer(app: Any, rbl: Party, key: str) -> None:
    """The second request with the same key and body is answered as the first, and stores nothing."""
    first = send(rbl, CASES, key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    submissions, deliveries = count(app, Submission), count(app, Delivery)
    again = send(rbl, CASES, key)
    assert again.status_code == 201 and again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (count(app, Submission), count(app, Delivery)) == (submissions, deliveries)
    with app.app_context():
        names = list(db.session.scalars(select(AuditEntryRow.name).where(AuditEntryRow.name.like("submission.%"))))
        stored = db.session.scalars(select(IdempotencyKey)).one()
    assert names == ["submission.accepted", "submission.replayed"]
    assert key.strip('"') not in json.dumps([stored.key_hash, stored.request_hash])


def test_the_same_key_with_another_body_is_422(app: Any, rbl: Party, problem: Any) -> None:
    """A key reused for other records is refused, naming the header, and nothing is stored."""
    assert send(rbl, CASES, "k1").status_code == 201
    body = problem(send(rbl, CASES[:1], "k1"), 422)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("Idempotency-Key", "idempotency_key_reused")]
    assert count(app, Submission) == 1


def test_keys_are_per_party_and_expire(app: Any, clock: Clock, rbl: Party, liemers: Party) -> None:
    """Another party's identical key is its own; after the key's time a repeat is a new submission."""
    assert send(rbl, CASES, "same").status_code == 201
    theirs = liemers.post(
        SUBMISSIONS, json={"kind": "case", "records": [CASES[0]]}, headers={"Idempotency-Key": "same"}
    )
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    clock.advance(seconds=app.config["IDEMPOTENCY_TTL"] + 1)
    refresh_token(rbl, clock)
    later = send(rbl, CASES, "same")
    assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
    assert count(app, Submission) == 3


@pytest.mark.parametrize("key", ["", "x" * 256, "sleutel\u00e9", "a\tb"])
def test_an_invalid_key_is_400(app: Any, rbl: Party, problem: Any, key: str) -> None:
    """A key that is empty, too long or not printable ASCII is refused, naming the header, never echoed."""
    response = rbl.post(SUBMISSIONS, json={"kind": "case", "records": CASES}, headers={"Idempotency-Key": key})
    body = problem(response, 400)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("Idempotency-Key", "invalid_idempotency_key")]
    assert count(app, Submission) == 0


def test_a_csv_repeat_and_a_correction_repeat_are_replayed(app: Any, rbl: Party) -> None:
    """The key works for a CSV submission and for a correction alike."""
    csv_body = to_csv(CASES)
    headers = {"Idempotency-Key": "csv-1", "Content-Type": "text/csv"}
    first = rbl.post(SUBMISSIONS, query_string={"kind": "case"}, data=csv_body, headers=headers)
    again = rbl.post(SUBMISSIONS, query_string={"kind": "case"}, data=csv_body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.json == first.json
    correction = {"records": [{**CASES[0], "voornaam": "Sem"}]}
    first = rbl.post(CORRECTIONS, json=correction, headers={"Idempotency-Key": "fix-1"})
    again = rbl.post(CORRECTIONS, json=correction, headers={"Idempotency-Key": "fix-1"})
    assert first.status_code == again.status_code == 201, first.json
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert count(app, Submission) == 2


def test_an_interrupted_keyed_submission_is_not_stored_twice(app: Any, rbl: Party, problem: Any) -> None:
    """If the answer was never kept (the process stopped after the commit), a repeat is told which
    submission the key stored (409), and nothing is stored again."""
    first = send(rbl, CASES, "k-interrupted")
    assert first.status_code == 201
    with app.app_context():
        row = db.session.scalars(select(IdempotencyKey)).one()
        row.response, row.status = None, None
        db.session.commit()
    body = problem(send(rbl, CASES, "k-interrupted"), 409)
    assert body["submission_id"] == first.json["submission_id"]
    assert count(app, Submission) == 1


def test_expired_keys_are_forgotten_by_the_retention_run(app: Any, clock: Clock, runner: Any, rbl: Party) -> None:
    """`broker retention run` deletes the answers of keys past their time, and only those."""
    assert send(rbl, CASES[:1], "old").status_code == 201
    clock.advance(seconds=app.config["IDEMPOTENCY_TTL"] - 10)
    refresh_token(rbl, clock)
    assert send(rbl, CASES[1:2], "new").status_code == 201
    clock.advance(seconds=20)
    result = runner.invoke(args=["retention", "run"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalars(select(IdempotencyKey.submission_id)).all() == [
            db.session.scalars(select(Submission.id).order_by(Submission.received_at.desc())).first()
        ]
