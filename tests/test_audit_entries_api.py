"""`GET /api/v1/audit/entries`: filter required, scoped to the caller, paginated, itself audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import select

from broker.app import runtime
from broker.app.extensions import db
from broker.auditing import step as auditing
from broker.models import AuditEntryRow

URL = "/api/v1/audit/entries"


def pseudonym(app: Any, n: int) -> str:
    with app.app_context():
        return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(n))


def case_activity(app: Any) -> str:
    with app.app_context():
        return auditing.activity(CONVENANT, "case")


def entries_named(app: Any, name: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == name).order_by(AuditEntryRow.idx))
        return [json.loads(r.canonical) for r in rows]


@pytest.fixture
def submitted(app: Any, rbl: Party) -> dict[str, Any]:
    """The RBL submits pupil 0 (Arnhem, routed to Passend Wijs) and pupil 1 (Duiven, De Liemers)."""
    response = rbl.submit([make_record(0, gemeente="Arnhem"), make_record(1, gemeente="Duiven")])
    assert response.status_code == 201, response.json
    with app.app_context():
        trace = db.session.scalar(
            select(AuditEntryRow.trace_id).where(AuditEntryRow.name == "submission.accepted")
        )
    return {"trace_id": trace, "arnhem": pseudonym(app, 0), "duiven": pseudonym(app, 1)}


def test_a_filter_is_required(rbl: Party, problem: Any) -> None:
    """Without trace_id, processing_activity_id or data_subject_id the answer is 400, naming them."""
    body = problem(rbl.get(URL, query_string={"page": 1}), 400)
    for name in ("trace_id", "processing_activity_id", "data_subject_id"):
        assert name in body["detail"]
    assert {e["field"] for e in body["errors"]} == {"trace_id", "processing_activity_id", "data_subject_id"}


def test_unauthenticated_callers_get_401(client: Any, submitted: dict[str, Any], problem: Any) -> None:
    """No token and no session: 401 problem+json, nothing is shown."""
    body = problem(client.get(URL, query_string={"trace_id": submitted["trace_id"]}), 401)
    assert "entries" not in body


def test_invalid_token_is_refused_even_with_a_session(
    client: Any, submitted: dict[str, Any], make_officer: Any, officer_client: Any, problem: Any
) -> None:
    """A bearer token that is sent must be valid; a session does not rescue a bad token."""
    http = officer_client(make_officer("bo"))
    response = http.get(URL, query_string={"trace_id": submitted["trace_id"]},
                        headers={"Authorization": "Bearer not-a-token"})
    problem(response, 401)


def test_party_token_sees_only_entries_its_party_took_part_in(
    submitted: dict[str, Any], rbl: Party, passend_wijs: Party, liemers: Party
) -> None:
    """By subject: the sender sees receipt and delivery, the recipient the delivery, others nothing."""
    subject = submitted["arnhem"]

    def names(party: Party) -> list[str]:
        response = party.get(URL, query_string={"data_subject_id": subject})
        assert response.status_code == 200, response.json
        assert all(e["data_subject_id"] == subject for e in response.json["entries"])
        return sorted(e["name"] for e in response.json["entries"])

    assert names(rbl) == ["delivery.created", "record.received"]
    assert names(passend_wijs) == ["delivery.created"]
    assert names(liemers) == []


def test_trace_query_returns_decoded_entries_with_their_index(app: Any, submitted: dict[str, Any], rbl: Party) -> None:
    """Entries come back as sealed (the canonical JSON decoded) with their index, newest first."""
    response = rbl.get(URL, query_string={"trace_id": submitted["trace_id"]})
    body = response.json
    assert response.status_code == 200
    assert body["total"] == len(body["entries"]) == 5  # summary, 2 received, 2 deliveries
    indexes = [e["index"] for e in body["entries"]]
    assert indexes == sorted(indexes, reverse=True)
    with app.app_context():
        stored = db.session.get(AuditEntryRow, indexes[0])
        assert stored is not None
        assert json.loads(stored.canonical) == body["entries"][0]
    assert {e["trace_id"] for e in body["entries"]} == {submitted["trace_id"]}


def test_pagination_walks_every_entry_once(app: Any, rbl: Party) -> None:
    """page/per_page split the matches; `next` leads to the next page until the last, where it is null."""
    assert rbl.submit([make_record(n) for n in range(7)]).status_code == 201
    activity = case_activity(app)
    seen: list[int] = []
    page: int | None = 1
    while page is not None:
        body = rbl.get(URL, query_string={"processing_activity_id": activity, "page": page, "per_page": 3}).json
        assert body["page"] == page and body["per_page"] == 3 and len(body["entries"]) <= 3
        assert body["total"] == 1 + 7 + 7  # summary, received per pupil, delivery per pupil
        seen += [e["index"] for e in body["entries"]]
        page = body["next"]
    assert len(seen) == len(set(seen)) == 15
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"per_page": 501}, "per_page"),
        ({"per_page": 0}, "per_page"),
        ({"page": 0}, "page"),
        ({"page": "twee"}, "page"),
        ({"trace_id": "xyz"}, "trace_id"),
        ({"processing_activity_id": "urn:not-in-the-register"}, "verwerkingsregister"),
    ],
)
def test_bad_parameters_are_a_problem(
    submitted: dict[str, Any], rbl: Party, problem: Any, args: dict[str, Any], fragment: str
) -> None:
    """per_page above 500, pages below 1, malformed ids and unknown activities are refused with 400."""
    query = {"trace_id": submitted["trace_id"], **args}
    assert fragment in problem(rbl.get(URL, query_string=query), 400)["detail"]


def test_a_bsn_as_subject_is_refused_and_not_logged(
    app: Any, submitted: dict[str, Any], rbl: Party, problem: Any
) -> None:
    """data_subject_id takes a pseudonym; a BSN is refused, not echoed, and reaches no audit entry."""
    bsn = make_bsn(0)
    body = problem(rbl.get(URL, query_string={"data_subject_id": bsn}), 400)
    assert bsn not in json.dumps(body)
    with app.app_context():
        assert all(bsn.encode() not in row for row in db.session.scalars(select(AuditEntryRow.canonical)))


def test_broker_officer_session_sees_every_party(
    submitted: dict[str, Any], make_officer: Any, officer_client: Any
) -> None:
    """A broker officer's review session may use the API and sees the whole trace."""
    http = officer_client(make_officer("bo"))
    body = http.get(URL, query_string={"trace_id": submitted["trace_id"]}).json
    assert body["total"] == 5


def test_party_officer_session_is_scoped_to_the_party(
    submitted: dict[str, Any], make_officer: Any, officer_client: Any
) -> None:
    """A party's officer sees, of the same trace, only the entries in which the party took part."""
    http = officer_client(make_officer("liemers-po", party="swv-de-liemers"))
    body = http.get(URL, query_string={"trace_id": submitted["trace_id"]}).json
    assert [(e["name"], e["data_subject_id"]) for e in body["entries"]] == [
        ("delivery.created", submitted["duiven"])
    ]


def test_disabled_officer_session_stops_working(
    submitted: dict[str, Any], runner: Any, make_officer: Any, officer_client: Any, problem: Any
) -> None:
    """Disabling a user ends their running sessions at once."""
    http = officer_client(make_officer("bo"))
    assert runner.invoke(args=["users", "disable", "bo"]).exit_code == 0
    problem(http.get(URL, query_string={"trace_id": submitted["trace_id"]}), 401)


def test_queries_are_audited_with_actor_filters_and_subject(
    app: Any, submitted: dict[str, Any], passend_wijs: Party, make_officer: Any, officer_client: Any
) -> None:
    """Every query writes a review entry (who, which filters) and one entry for the subject asked about."""
    subject = submitted["arnhem"]
    assert passend_wijs.get(URL, query_string={"data_subject_id": subject}).status_code == 200
    http = officer_client(make_officer("bo"))
    assert http.get(URL, query_string={"trace_id": submitted["trace_id"]}).status_code == 200
    with app.app_context():
        review = auditing.broker_activity("review")
    by_party, by_officer = entries_named(app, "review.entries_queried")
    assert by_party["actor"] == {"type": "client", "id": passend_wijs.client_id, "party": "swv-passend-wijs"}
    assert by_party["attributes"] == {"subject_filter": True, "page": 1, "per_page": 100, "total": 1}
    assert by_officer["actor"] == {"type": "user", "id": "bo", "party": None}
    assert by_officer["attributes"]["trace_id"] == submitted["trace_id"]
    assert {by_party["processing_activity_id"], by_officer["processing_activity_id"]} == {review}
    (looked_up,) = entries_named(app, "review.subject_looked_up")
    assert looked_up["data_subject_id"] == subject
    assert looked_up["trace_id"] == by_party["trace_id"] and looked_up["actor"] == by_party["actor"]


def test_a_query_sees_earlier_queries_but_not_itself(app: Any, rbl: Party) -> None:
    """Asking for the review activity shows the earlier queries' entries, never the query's own."""
    with app.app_context():
        review = auditing.broker_activity("review")
    first = rbl.get(URL, query_string={"processing_activity_id": review}).json
    second = rbl.get(URL, query_string={"processing_activity_id": review}).json
    assert first["total"] == 0
    assert second["total"] == 1
    assert second["entries"][0]["name"] == "review.entries_queried"
    assert second["entries"][0]["attributes"]["total"] == 0
