"""Data subjects' rights: the access report (page, CSV, PDF), forwarding, restriction and erasure."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.browser import browser_test
from fixtures.convenants import SECOND_CONVENANT, make_vsv_record
from fixtures.officers import OFFICER_PASSWORD, csrf_from
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import select

from broker.app import runtime
from broker.app.extensions import db
from broker.models import AuditEntryRow, Delivery, OutboxEntry, Record, SubjectRestriction

RBL, LIEMERS, PASSEND_WIJS = "rbl-midden-gelre", "swv-de-liemers", "swv-passend-wijs"
SUBJECT, OTHER = 1, 0  # the pupil asking, and a pupil in the same submission
UUIDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}")
FILENAME = re.compile(r'attachment; filename="inzage-\d{8}-\d{6}\.(csv|pdf)"')


@pytest.fixture
def app_config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Review cookies over plain http, as in the review UI tests."""
    return {**app_config, "SESSION_COOKIE_SECURE": False, "REVIEW_VERIFY_FILE": str(tmp_path / "verify.json")}


def pseudonym(app: Any, n: int) -> str:
    with app.app_context():
        return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(n))


@pytest.fixture
def exchanged(rbl: Party, liemers: Party, passend_wijs: Party) -> None:
    """The RBL submits the other pupil (Arnhem, for Passend Wijs) and the subject (Duiven, for De Liemers)
    together; both recipients fetch, De Liemers acknowledges and sends its own record of the subject
    to the RBL, which fetches it."""
    response = rbl.submit([make_record(OTHER, gemeente="Arnhem"), make_record(SUBJECT, gemeente="Duiven")])
    assert response.status_code == 201, response.json
    for party in (liemers, passend_wijs):
        (delivery,) = party.get("/api/v1/deliveries").json["deliveries"]
        assert party.get(f"/api/v1/deliveries/{delivery['delivery_id']}").status_code == 200
    (delivery,) = liemers.get("/api/v1/deliveries").json["deliveries"]
    assert liemers.post(f"/api/v1/deliveries/{delivery['delivery_id']}/ack").status_code == 200
    own = make_record(SUBJECT, gemeente="Duiven", reden_verzuim="vervoer ontbreekt")
    assert liemers.submit([own]).status_code == 201
    (delivery,) = rbl.get("/api/v1/deliveries").json["deliveries"]
    assert rbl.get(f"/api/v1/deliveries/{delivery['delivery_id']}").status_code == 200


def audit_says(app: Any, subject: str, party: str | None = None) -> set[int]:
    """Independently of the report: the indexes of the entries about `subject` (as the log filters by
    party), plus the acknowledgements of the deliveries that carried it."""
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.idx)).all()
        records = {row.idx: (row, json.loads(row.canonical)) for row in rows}
    visible = {i: r for i, r in records.items() if party is None or f",{party}," in r[0].parties}
    about = {i for i, (row, _) in visible.items() if row.data_subject_id == subject}
    deliveries = {visible[i][1]["attributes"].get("delivery_id") for i in about} - {None}
    acked = {
        i
        for i, (row, entry) in visible.items()
        if row.name == "delivery.acked" and entry["attributes"]["delivery_id"] in deliveries
    }
    return about | acked


def report(http: Any, bsn: str, output: str = "html") -> Any:
    token = csrf_from(http.get("/review/inzage").get_data(as_text=True))
    return http.post("/review/inzage", data={"bsn": bsn, "formaat": output, "csrf_token": token})


def html_indexes(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-index="(\d+)"', html)}


def csv_table(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True)), delimiter=";"))


def assert_nothing_of_the_other_pupil(app: Any, text: str) -> None:
    """Neither name, BSN nor pseudonym of the other pupil, nor the party that only knew them; no pseudonym
    or BSN of the subject either (the report holds pseudonym-free facts)."""
    assert pseudonym(app, OTHER) not in text and pseudonym(app, SUBJECT) not in text
    assert "Jansen-0" not in text and "Passend Wijs" not in text
    bare = UUIDS.sub("#", text)  # ids may hold any run of digits
    assert make_bsn(OTHER) not in bare and make_bsn(SUBJECT) not in bare


# -- the access report ------------------------------------------------------------------------------


def test_report_rows_are_what_the_audit_says(app: Any, exchanged: None, make_officer: Any, officer_client: Any) -> None:
    """The broker officer's report lists exactly the log's entries about the pupil, in page and CSV alike."""
    http = officer_client(make_officer("bo"))
    expected = audit_says(app, pseudonym(app, SUBJECT))
    response = report(http, make_bsn(SUBJECT))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html_indexes(html) == expected
    names = set(re.findall(r'data-name="([^"]+)"', html))
    assert {"record.received", "delivery.created", "delivery.fetched", "delivery.acked"} <= names
    assert "Gegevens opgehaald door de ontvanger" in html and "Samenwerkingsverband De Liemers" in html
    assert "NAW-gegevens: Voornaam, Achternaam, Geboortedatum, Adres" in html
    assert "Uitwisselen van gegevens over thuiszitters op casusniveau" in html
    # What the broker still holds: both records of the pupil, opened, without the BSN.
    assert html.count('class="card held-record"') == 2 and "Jansen-1" in html and "vervoer ontbreekt" in html
    assert_nothing_of_the_other_pupil(app, html.split('<section class="report"', 1)[1].split("</section>")[0])

    expected = audit_says(app, pseudonym(app, SUBJECT))  # now with the first report's own entry
    rows = csv_table(report(http, make_bsn(SUBJECT), "csv"))
    assert {int(r["Logboeknummer"]) for r in rows if r["Onderdeel"] == "Verwerking"} == expected
    held = [r for r in rows if r["Onderdeel"] == "Bewaard bij de broker"]
    assert len(held) == 2 and all("Achternaam: Jansen-1" in r["Gegevens"] for r in held)


def test_report_has_nothing_about_the_other_pupil_in_any_format(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """Page, CSV and PDF of the subject carry no name, BSN or pseudonym of the pupil submitted alongside."""
    http = officer_client(make_officer("bo"))
    page = report(http, make_bsn(SUBJECT)).get_data(as_text=True)
    body = page.split("<main", 1)[1]
    assert pseudonym(app, OTHER) not in body  # the subject's own is in the action forms' hidden fields only
    assert_nothing_of_the_other_pupil(app, re.sub(r'<input type="hidden" name="pseudoniem"[^>]*>', "", body))

    text = report(http, make_bsn(SUBJECT), "csv").get_data(as_text=True)
    assert "Jansen-1" in text
    assert_nothing_of_the_other_pupil(app, text)

    response = report(http, make_bsn(SUBJECT), "pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pdf = response.get_data()
    assert pdf.startswith(b"%PDF-") and b"Jansen-1" in pdf and b"De Liemers" in pdf
    assert_nothing_of_the_other_pupil(app, pdf.decode("latin-1"))


def test_party_officer_sees_only_the_part_of_the_own_party(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """De Liemers' officer gets the entries De Liemers took part in; Passend Wijs' officer gets nothing."""
    subject = pseudonym(app, SUBJECT)
    liemers = officer_client(make_officer("liemers-po", party=LIEMERS))
    expected, everything = audit_says(app, subject, LIEMERS), audit_says(app, subject)
    html = report(liemers, make_bsn(SUBJECT)).get_data(as_text=True)
    assert html_indexes(html) == expected and expected < everything
    with app.app_context():
        rbl_only = db.session.scalars(
            select(AuditEntryRow.idx).where(
                AuditEntryRow.data_subject_id == subject, AuditEntryRow.parties == f",{RBL},"
            )
        ).all()
    assert rbl_only and not set(rbl_only) & html_indexes(html)  # the RBL's own receipt is not theirs to see
    assert html.count('class="card held-record"') == 2  # the one it received and the one it sent

    passend_wijs = officer_client(make_officer("pw-po", party=PASSEND_WIJS))
    html = report(passend_wijs, make_bsn(SUBJECT)).get_data(as_text=True)
    assert html_indexes(html) == set() and 'class="card held-record"' not in html
    assert "Jansen-1" not in html and "geen verwerkingen waaraan uw partij deelnam" in html


def test_downloads_are_post_only_and_their_names_hold_no_bsn(
    app: Any, app_config: dict[str, Any], exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """A GET never produces a report; CSV and PDF come as attachments named by time; the BSN is in no log."""
    http = officer_client(make_officer("bo"))
    bsn = make_bsn(SUBJECT)
    got = http.get("/review/inzage", query_string={"bsn": bsn, "formaat": "csv"})
    assert got.status_code == 200 and got.mimetype == "text/html" and "Content-Disposition" not in got.headers
    assert bsn not in got.get_data(as_text=True)
    for output in ("csv", "pdf"):
        response = report(http, bsn, output)
        disposition = response.headers["Content-Disposition"]
        assert FILENAME.fullmatch(disposition) and bsn not in disposition
        assert response.headers["Cache-Control"] == "no-store"
    log_text = Path(app_config["LOG_FILE"]).read_text(encoding="utf-8")
    assert "/review/inzage" in log_text and bsn not in log_text


def test_every_report_is_audited_per_convenant(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """Each report made writes `subject.access_report` about the pupil, with the officer as actor."""
    http = officer_client(make_officer("liemers-po", party=LIEMERS))
    for output in ("html", "csv", "pdf"):
        assert report(http, make_bsn(SUBJECT), output).status_code == 200
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.name == "subject.access_report").order_by(AuditEntryRow.idx)
        ).all()
        entries = [json.loads(r.canonical) for r in rows]
    assert [e["attributes"]["format"] for e in entries] == ["html", "csv", "pdf"]
    assert {r.data_subject_id for r in rows} == {pseudonym(app, SUBJECT)}
    assert {r.convenant_id for r in rows} == {CONVENANT}
    assert all(e["actor"] == {"type": "user", "id": "liemers-po", "party": LIEMERS} for e in entries)


def test_report_covers_every_convenant_by_its_own_pseudonym(multi_app: Any, make_multi_party: Any) -> None:
    """One BSN, two convenants: the report holds both exchanges and is audited once per convenant."""
    rbl, nijmegen = make_multi_party(RBL), make_multi_party("gemeente-nijmegen")
    assert rbl.submit([make_record(SUBJECT, gemeente="Duiven")]).status_code == 201
    assert (
        nijmegen.submit([make_vsv_record(SUBJECT), make_vsv_record(OTHER)], convenant=SECOND_CONVENANT).status_code
        == 201
    )
    runner = multi_app.test_cli_runner()
    added = runner.invoke(args=["users", "add", "bo", "--role", "broker-officer", "--password", OFFICER_PASSWORD])
    assert added.exit_code == 0, added.output
    http = multi_app.test_client()
    token = csrf_from(http.get("/review/login").get_data(as_text=True))
    http.post("/review/login", data={"username": "bo", "password": OFFICER_PASSWORD, "csrf_token": token})
    rows = csv_table(report(http, make_bsn(SUBJECT), "csv"))
    assert {r["Convenant"] for r in rows} == {CONVENANT, SECOND_CONVENANT}
    held = {r["Convenant"]: r["Gegevens"] for r in rows if r["Onderdeel"] == "Bewaard bij de broker"}
    assert "Naam: Noa de Vries-1" in held[SECOND_CONVENANT] and "Achternaam: Jansen-1" in held[CONVENANT]
    text = "\n".join(";".join(r.values()) for r in rows)
    assert "Noa de Vries-0" not in text and make_bsn(SUBJECT) not in UUIDS.sub("#", text)
    with multi_app.app_context():
        audited = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == "subject.access_report")).all()
        keyring = runtime.keyring()
        expected = {cid: keyring.pseudonymiser(cid).pseudonymise_bsn(make_bsn(SUBJECT)) for cid in runtime.convenants()}
    assert {(r.convenant_id, r.data_subject_id) for r in audited} == set(expected.items())


def test_report_names_the_breaches_that_concern_the_pupil(
    app: Any, clock: Any, exchanged: None, liemers: Party, make_officer: Any, officer_client: Any
) -> None:
    """A breach scoped to the pupil shows in the report, with its number, as the audit records it."""
    body = {
        "convenant_id": CONVENANT,
        "detected_at": clock.now.isoformat(),
        "description": "Een export met leerlinggegevens is naar een verkeerd e-mailadres gestuurd.",
        "suspected_cause": "Menselijke fout: verkeerde geadresseerde gekozen bij het versturen.",
        "scope": {"subjects": [make_bsn(SUBJECT)]},
    }
    response = liemers.post("/api/v1/breaches", json=body)
    assert response.status_code == 201, response.json
    html = report(officer_client(make_officer("bo")), make_bsn(SUBJECT)).get_data(as_text=True)
    assert 'data-name="breach.subject_concerned"' in html
    assert f"Datalek nr. {response.json['number']}" in html and "gemeld door Samenwerkingsverband De Liemers" in html


def test_invalid_bsn_is_refused_without_echo(make_officer: Any, officer_client: Any) -> None:
    """A BSN failing the elfproef gives the Dutch error and no report; it is not repeated."""
    http = officer_client(make_officer("bo"))
    wrong = make_bsn(SUBJECT)[:-1] + str((int(make_bsn(SUBJECT)[-1]) + 1) % 10)
    response = report(http, wrong, "pdf")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "geen geldig BSN" in html and "Inzagerapport</h2>" not in html and wrong not in html


def test_report_form_needs_the_csrf_token(exchanged: None, make_officer: Any, officer_client: Any) -> None:
    """Without the session's CSRF token the report and the actions are refused."""
    http = officer_client(make_officer("bo"))
    for path in ("/review/inzage", "/review/inzage/beperken", "/review/inzage/opheffen", "/review/inzage/wissen"):
        assert http.post(path, data={"bsn": make_bsn(SUBJECT), "csrf_token": "forged"}).status_code == 400


# -- forwarding a request -------------------------------------------------------------------------


def subject_request(party: Party, n: int, kind: str = "inzage", note: str | None = "per brief") -> Any:
    body = {"bsn": make_bsn(n), "kind": kind, "received_at": "2026-03-02T10:00:00+01:00"}
    if note:
        body["note"] = note
    return party.post(f"/api/v1/convenants/{CONVENANT}/subject-requests", json=body)


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("request_id", "registered_at")}


def test_request_is_forwarded_to_the_controllers_that_hold_data(app: Any, exchanged: None, liemers: Party) -> None:
    """A request received by De Liemers reaches the RBL, the other holder, with a delivery; the answer names no one."""
    bsn = make_bsn(SUBJECT)
    response = subject_request(liemers, SUBJECT)
    assert response.status_code == 201, response.json
    assert set(response.json) == {"request_id", "kind", "received_at", "registered_at", "detail"}
    assert bsn not in response.get_data(as_text=True) and RBL not in response.get_data(as_text=True)
    with app.app_context():
        notices = db.session.scalars(select(OutboxEntry).where(OutboxEntry.topic == "subject_request.forwarded")).all()
        assert [n.party_id for n in notices] == [RBL]
        assert all(bsn not in json.dumps(n.payload) and n.payload["kind"] == "inzage" for n in notices)
        forwarded = db.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.name == "subject_request.forwarded")
        ).all()
        assert [(r.data_subject_id, r.parties) for r in forwarded] == [(pseudonym(app, SUBJECT), f",{RBL},")]
        registered = db.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.name == "subject_request.registered")
        ).one()
        assert "forwarded_to" not in json.loads(registered.canonical)["attributes"]

    with app.app_context():
        (delivery,) = db.session.scalars(select(Delivery).where(Delivery.kind == "subject_request")).all()
    assert (delivery.sender_party_id, delivery.recipient_party_id, delivery.record_count) == (LIEMERS, RBL, 1)


def test_forwarded_request_is_fetched_and_acknowledged(exchanged: None, app: Any, rbl: Party, liemers: Party) -> None:
    """The controller fetches the forwarded request like any delivery (the BSN and the note) and acknowledges it."""
    assert subject_request(liemers, SUBJECT, kind="bezwaar").status_code == 201
    (delivery,) = [d for d in rbl.get("/api/v1/deliveries").json["deliveries"] if d["kind"] == "subject_request"]
    fetched = rbl.get(f"/api/v1/deliveries/{delivery['delivery_id']}")
    assert fetched.status_code == 200, fetched.json
    (record,) = fetched.json["records"]
    assert record["bsn"] == make_bsn(SUBJECT) and record["kind"] == "bezwaar" and record["received_by"] == LIEMERS
    assert record["note"] == "per brief" and record["received_at"].startswith("2026-03-02T09:00:00")
    acked = rbl.post(f"/api/v1/deliveries/{delivery['delivery_id']}/ack")
    assert acked.status_code == 200 and acked.json["acked_at"]


def test_request_about_a_pupil_the_requester_never_held_is_answered_as_for_nobody(
    app: Any, exchanged: None, passend_wijs: Party
) -> None:
    """Passend Wijs never held the subject: registered, forwarded to no one, and answered as for an unused BSN."""
    held_by_others = subject_request(passend_wijs, SUBJECT)
    held_by_nobody = subject_request(passend_wijs, 7)
    assert held_by_others.status_code == held_by_nobody.status_code == 201
    assert without_ids(held_by_others.json) == without_ids(held_by_nobody.json)
    with app.app_context():
        assert db.session.scalars(select(Delivery).where(Delivery.kind == "subject_request")).all() == []
        names = db.session.scalars(select(AuditEntryRow.name).where(AuditEntryRow.data_subject_id == pseudonym(app, 7)))
        assert list(names) == ["subject_request.registered"]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"bsn": "123456788", "kind": "inzage", "received_at": "2026-03-02T10:00:00"}, "bsn", "invalid_bsn"),
        ({"bsn": make_bsn(1), "kind": "klacht", "received_at": "2026-03-02T10:00:00"}, "kind", "invalid_choice"),
        ({"bsn": make_bsn(1), "kind": "inzage", "received_at": "gisteren"}, "received_at", "invalid_datetime"),
        ({"bsn": make_bsn(1), "kind": "inzage"}, "received_at", "required"),
        ({"bsn": make_bsn(1), "kind": "inzage", "received_at": "2026-03-02", "x": 1}, "x", "not_allowed"),
    ],
)
def test_request_validation_errors_are_coded_and_never_echo_the_bsn(
    passend_wijs: Party, problem: Any, body: dict[str, Any], field: str, code: str
) -> None:
    """Each wrong field gives a 422 problem naming the field and rule; the BSN is never repeated."""
    response = passend_wijs.post(f"/api/v1/convenants/{CONVENANT}/subject-requests", json=body)
    found = problem(response, 422)
    assert {"record": None, "field": field, "code": code} in [
        {k: e[k] for k in ("record", "field", "code")} for e in found["errors"]
    ]
    assert str(body["bsn"]) not in response.get_data(as_text=True)


def test_only_parties_of_the_convenant_may_send_requests(make_multi_party: Any, problem: Any) -> None:
    """A party of another convenant is refused."""
    stranger = make_multi_party("gemeente-nijmegen")
    body = {"bsn": make_bsn(1), "kind": "inzage", "received_at": "2026-03-02T10:00:00"}
    problem(stranger.post(f"/api/v1/convenants/{CONVENANT}/subject-requests", json=body), 403)


# -- restriction ----------------------------------------------------------------------------------


def test_restriction_and_lift_are_audited(app: Any, exchanged: None, rbl: Party, liemers: Party, problem: Any) -> None:
    """The RBL restricts and lifts; a second request is idempotent; to another party the restriction does not exist."""
    path = f"/api/v1/convenants/{CONVENANT}/restrictions"
    body = {"bsn": make_bsn(SUBJECT), "reason": "bezwaar van de ouders"}
    first = rbl.post(path, json=body)
    assert first.status_code == 201 and set(first.json) >= {"restriction_id", "started_at"}
    again = rbl.post(path, json=body)
    assert again.status_code == 200 and again.json["restriction_id"] == first.json["restriction_id"]
    lift = f"{path}/{first.json['restriction_id']}"
    unknown = problem(rbl.http.delete(f"{path}/00000000-0000-4000-8000-000000000000", headers=rbl.headers), 404)
    assert problem(liemers.http.delete(lift, headers=liemers.headers), 404) == unknown
    lifted = rbl.http.delete(lift, headers=rbl.headers)
    assert lifted.status_code == 200 and lifted.json["lifted_at"]
    problem(rbl.http.delete(lift, headers=rbl.headers), 409)
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.name.in_(["subject.restricted", "subject.restriction_lifted"]))
            .order_by(AuditEntryRow.idx)
        ).all()
        assert [r.name for r in rows] == ["subject.restricted", "subject.restriction_lifted"]
        assert {r.data_subject_id for r in rows} == {pseudonym(app, SUBJECT)} and {r.actor_party for r in rows} == {RBL}
        assert all(
            json.loads(r.canonical)["attributes"]["restriction_id"] == first.json["restriction_id"] for r in rows
        )
        restriction = db.session.get(SubjectRestriction, first.json["restriction_id"])
        assert restriction is not None and restriction.lifted_by == RBL and restriction.reason == body["reason"]


def fetched_bsns(party: Party) -> list[str]:
    """Every BSN the party's deliveries hand it now."""
    return sorted(
        record["bsn"]
        for delivery in party.get("/api/v1/deliveries").json["deliveries"]
        for record in party.get(f"/api/v1/deliveries/{delivery['delivery_id']}").json["records"]
    )


def test_restriction_holds_back_the_requesters_own_flows_only(
    app: Any, rbl: Party, liemers: Party, passend_wijs: Party
) -> None:
    """After De Liemers restricts a pupil, the RBL's records about it are held back from De Liemers, but one for
    Passend Wijs (the pupil moved) still reaches it: AVG art. 18 binds each controller for its own flows."""
    assert rbl.submit([make_record(3, gemeente="Duiven")]).status_code == 201
    body = {"bsn": make_bsn(3), "reason": "art. 18"}
    assert liemers.post(f"/api/v1/convenants/{CONVENANT}/restrictions", json=body).status_code == 201
    assert rbl.submit([make_record(3, gemeente="Duiven"), make_record(4, gemeente="Duiven")]).status_code == 201
    assert fetched_bsns(liemers) == [make_bsn(4)]
    assert rbl.submit([make_record(3, gemeente="Arnhem")]).status_code == 201
    assert fetched_bsns(passend_wijs) == [make_bsn(3)]


def test_broker_restriction_holds_back_every_flow(
    app: Any, rbl: Party, liemers: Party, passend_wijs: Party, make_officer: Any, officer_client: Any
) -> None:
    """The broker officer's restriction holds back the pupil whoever sends it to whomever."""
    assert rbl.submit([make_record(3, gemeente="Duiven")]).status_code == 201
    http = officer_client(make_officer("bo"))
    html = report(http, make_bsn(3)).get_data(as_text=True)
    hidden = dict(re.findall(r'<input type="hidden" name="(convenant|pseudoniem)" value="([^"]+)"', html))
    form = {**hidden, "reden": "verzoek ouders", "csrf_token": csrf_from(html)}
    assert http.post("/review/inzage/beperken", data=form).status_code == 302
    for gemeente in ("Duiven", "Arnhem"):
        assert rbl.submit([make_record(3, gemeente=gemeente)]).status_code == 201
    assert fetched_bsns(liemers) == fetched_bsns(passend_wijs) == []


def test_officer_restricts_and_lifts_in_the_review_ui(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """The broker officer restricts the pupil from the report page and lifts it again; both audited."""
    http = officer_client(make_officer("bo"))
    html = report(http, make_bsn(SUBJECT)).get_data(as_text=True)
    hidden = dict(re.findall(r'<input type="hidden" name="(convenant|pseudoniem)" value="([^"]+)"', html))
    assert hidden == {"convenant": CONVENANT, "pseudoniem": pseudonym(app, SUBJECT)}
    token = csrf_from(html)
    done = http.post("/review/inzage/beperken", data={**hidden, "reden": "verzoek ouders", "csrf_token": token})
    assert done.status_code == 302
    html = report(http, make_bsn(SUBJECT)).get_data(as_text=True)
    assert "Beperking opheffen" in html and "verzoek ouders" in html
    (restriction_id,) = re.findall(r'name="beperking" value="([^"]+)"', html)
    assert (
        http.post("/review/inzage/opheffen", data={"beperking": restriction_id, "csrf_token": token}).status_code == 302
    )
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.name.like("subject.restri%")).order_by(AuditEntryRow.idx)
        ).all()
        restriction = db.session.get(SubjectRestriction, restriction_id)
    assert [(r.name, r.actor_id) for r in rows] == [("subject.restricted", "bo"), ("subject.restriction_lifted", "bo")]
    assert restriction is not None and restriction.requested_by == "broker" and restriction.lifted_by == "bo"


def test_reason_with_a_bsn_is_refused(app: Any, exchanged: None, make_officer: Any, officer_client: Any) -> None:
    """A restriction's reason is screened: a BSN in it is refused, and not shown back."""
    http = officer_client(make_officer("bo"))
    html = report(http, make_bsn(SUBJECT)).get_data(as_text=True)
    hidden = dict(re.findall(r'<input type="hidden" name="(convenant|pseudoniem)" value="([^"]+)"', html))
    reason = f"ouders van {make_bsn(SUBJECT)}"
    page = http.post(
        "/review/inzage/beperken",
        data={**hidden, "reden": reason, "csrf_token": csrf_from(html)},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "De reden is niet in orde" in page and make_bsn(SUBJECT) not in page
    with app.app_context():
        assert db.session.scalars(select(SubjectRestriction)).all() == []


# -- erasure --------------------------------------------------------------------------------------


def test_erasure_purges_everything_about_the_pupil(
    app: Any, exchanged: None, liemers: Party, passend_wijs: Party, make_officer: Any, officer_client: Any, problem: Any
) -> None:
    """De Liemers erases its flows: its own record and the RBL's to it go, the other pupil's stays; all audited."""
    path = f"/api/v1/convenants/{CONVENANT}/erasures"
    body = {"bsn": make_bsn(SUBJECT), "reason": "verzoek van de ouders"}
    # Passend Wijs never held the pupil: answered as for a BSN nobody holds.
    assert problem(passend_wijs.post(path, json=body), 404) == problem(
        passend_wijs.post(path, json={**body, "bsn": make_bsn(7)}), 404
    )
    response = liemers.post(path, json=body)
    assert response.status_code == 201 and response.json == {"purged": 2}
    subject = pseudonym(app, SUBJECT)
    with app.app_context():
        assert db.session.scalars(select(Record).where(Record.pseudonym == subject)).all() == []
        entries = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.data_subject_id == subject)).all()
        purged = [json.loads(e.canonical)["attributes"] for e in entries if e.name == "record.purged"]
        erased = [e for e in entries if e.name == "subject.erased"]
    assert len(purged) == 2 and {p["reason"] for p in purged} == {"subject.erasure"}
    assert len(erased) == 1 and erased[0].actor_party == LIEMERS
    assert json.loads(erased[0].canonical)["attributes"]["records"] == 2

    http = officer_client(make_officer("bo"))
    html = report(http, make_bsn(SUBJECT)).get_data(as_text=True)
    assert 'class="card held-record"' not in html and "Gegevens gewist bij de broker" in html
    other = report(http, make_bsn(OTHER)).get_data(as_text=True)  # re-sealed under a new key, still readable
    assert other.count('class="card held-record"') == 1 and "Jansen-0" in other


def test_party_officer_acts_only_on_a_pupil_the_own_party_held(
    app: Any, exchanged: None, make_officer: Any, officer_client: Any
) -> None:
    """Passend Wijs' officer sees no forms (no pseudonym) for the subject and is refused as for nobody;
    De Liemers' officer erases its party's flows."""
    form = {"convenant": CONVENANT, "pseudoniem": pseudonym(app, SUBJECT), "reden": "verzoek", "bevestig": "ja"}
    passend_wijs = officer_client(make_officer("pw-po", party=PASSEND_WIJS))
    html = report(passend_wijs, make_bsn(SUBJECT)).get_data(as_text=True)
    assert "Gegevens wissen" not in html and "Verwerking beperken" not in html
    assert pseudonym(app, SUBJECT) not in html
    token = csrf_from(html)
    for action in ("wissen", "beperken"):
        refused = passend_wijs.post(f"/review/inzage/{action}", data={**form, "csrf_token": token})
        nobody = passend_wijs.post(
            f"/review/inzage/{action}", data={**form, "pseudoniem": pseudonym(app, 7), "csrf_token": token}
        )
        assert refused.status_code == nobody.status_code == 404
        assert refused.get_data() == nobody.get_data()

    liemers = officer_client(make_officer("liemers-po", party=LIEMERS))
    html = report(liemers, make_bsn(SUBJECT)).get_data(as_text=True)
    assert "Gegevens wissen" in html
    done = liemers.post("/review/inzage/wissen", data={**form, "csrf_token": csrf_from(html)}, follow_redirects=True)
    assert "Gewist: 2 records" in done.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Record).where(Record.pseudonym == pseudonym(app, SUBJECT))).all() == []
        erased = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == "subject.erased")).one()
    assert erased.actor_id == "liemers-po" and erased.data_subject_id == pseudonym(app, SUBJECT)


# -- in the browser -------------------------------------------------------------------------------


@browser_test
def test_access_report_in_the_browser(
    app: Any, browser: Any, live_server: str, exchanged: None, make_officer: Any
) -> None:
    """An officer opens "Rechten betrokkenen", makes the report as a page, then downloads it as CSV."""
    from playwright.sync_api import expect

    make_officer("bo")
    context = browser.new_context(base_url=live_server, accept_downloads=True, locale="nl-NL")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/review/login")
        page.get_by_label("Gebruikersnaam").fill("bo")
        page.get_by_label("Wachtwoord").fill(OFFICER_PASSWORD)
        page.get_by_role("button", name="Inloggen").click()
        page.get_by_role("link", name="Rechten betrokkenen").click()
        expect(page.get_by_role("heading", name="Rechten van betrokkenen")).to_be_visible()
        bsn = make_bsn(SUBJECT)
        page.get_by_label("BSN").fill(bsn)
        page.get_by_label("Formaat").select_option("html")
        page.get_by_role("button", name="Rapport maken").click()
        expect(page.get_by_role("heading", name="Inzagerapport", exact=True)).to_be_visible()
        rows = page.locator("table.report-rows tbody tr")
        expected = audit_says(app, pseudonym(app, SUBJECT)) - set(
            _access_reports(app)
        )  # the report just made is not in itself
        expect(rows).to_have_count(len(expected))
        expect(page.get_by_label("BSN")).to_have_value("")
        assert bsn not in page.url and bsn not in page.content()

        page.get_by_label("BSN").fill(bsn)
        page.get_by_label("Formaat").select_option("csv")
        with page.expect_download() as info:
            page.get_by_role("button", name="Rapport maken").click()
        download = info.value
        assert re.fullmatch(r"inzage-\d{8}-\d{6}\.csv", download.suggested_filename)
        text = Path(download.path()).read_text(encoding="utf-8")
        assert text.startswith(";".join(["Onderdeel", "Convenant", "Tijd", "Handeling"])) and "Jansen-1" in text
        assert "Jansen-0" not in text
    finally:
        context.close()


def _access_reports(app: Any) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntryRow.idx).where(AuditEntryRow.name == "subject.access_report")))
