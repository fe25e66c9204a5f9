"""Deliveries: listing the caller's own, fetching decrypted records (JSON, CSV), acknowledging."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
from typing import Any

import pytest
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_record

from broker.app.csvio import columns
from schemas.convenant_file import DEFAULT_DIR, load_convenant

DELIVERIES = "/api/v1/deliveries"


def normalised(record: dict[str, Any]) -> dict[str, Any]:
    """What the broker delivers for a submitted record: postcode `1234 AB`, gemeente as spelled."""
    record = copy.deepcopy(record)
    postcode = record["adres"]["postcode"].replace(" ", "").upper()
    record["adres"]["postcode"] = f"{postcode[:4]} {postcode[4:]}"
    record["adres"]["gemeente"] = record["adres"]["gemeente"].strip().title()
    return record


def utc(text: str) -> dt.datetime:
    """Parse an API timestamp; one without offset is read as UTC (see the offset test below)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def deliver(rbl: Party, records: list[dict[str, Any]]) -> dict[str, str]:
    response = rbl.submit(records)
    assert response.status_code == 201, response.json
    return {d["recipient"]: d["delivery_id"] for d in response.json["deliveries"]}


@pytest.fixture
def sloppy_records() -> list[dict[str, Any]]:
    """Records in Duiven and Zevenaar written the way people type them."""
    records = [
        make_record(1, gemeente="Duiven"),
        make_record(2, "absoluut_verzuim", gemeente="Zevenaar", laatst_bekende_school="Liemers College"),
        make_record(3, "vrijstelling_5a", gemeente="Duiven"),
    ]
    records[0]["adres"].update(postcode="6921aa", gemeente="duiven")
    records[1]["adres"].update(postcode="6901 aa", gemeente="ZEVENAAR")
    records[2]["adres"].update(postcode=" 6921AA ")
    return records


def test_list_shows_only_the_callers_deliveries(
    rbl: Party, liemers: Party, passend_wijs: Party, make_party: Any
) -> None:
    """GET /deliveries lists the deliveries addressed to the caller's party and nothing else."""
    ids = deliver(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Arnhem")])
    deliver(make_party("swv-de-verbinding"), [make_record(3, gemeente="Lingewaard")])

    def listed(party: Party) -> list[str]:
        return [d["delivery_id"] for d in party.get(DELIVERIES).json["deliveries"]]

    assert listed(liemers) == [ids["swv-de-liemers"]]
    assert listed(passend_wijs) == [ids["swv-passend-wijs"]]
    assert len(listed(rbl)) == 1  # the one from De Verbinding
    assert listed(make_party("swv-de-verbinding")) == []


def test_summary_fields(rbl: Party, liemers: Party) -> None:
    """A delivery summary names convenant, kind, sender, recipient and count, not the records."""
    deliver(rbl, [make_record(1, gemeente="Duiven"), make_record(2, gemeente="Westervoort")])
    [summary] = liemers.get(DELIVERIES).json["deliveries"]
    assert summary["convenant_id"] == CONVENANT
    assert summary["kind"] == "case"
    assert summary["sender"] == "rbl-midden-gelre"
    assert summary["recipient"] == "swv-de-liemers"
    assert summary["records"] == 2
    assert summary["fetched_at"] is None and summary["acked_at"] is None


def test_fetched_records_equal_what_was_submitted(
    rbl: Party, liemers: Party, sloppy_records: list[dict[str, Any]]
) -> None:
    """GET /deliveries/{id} returns the decrypted records as submitted, normalised, in order."""
    ids = deliver(rbl, sloppy_records)
    response = liemers.get(f"{DELIVERIES}/{ids['swv-de-liemers']}")
    assert response.status_code == 200
    body = response.json
    assert body["records"] == [normalised(r) for r in sloppy_records]
    assert body["records"][0]["adres"]["postcode"] == "6921 AA"
    assert body["records"][1]["adres"]["gemeente"] == "Zevenaar"


def test_fetch_as_csv(rbl: Party, liemers: Party, sloppy_records: list[dict[str, Any]]) -> None:
    """With Accept: text/csv the delivery is CSV with the convenant's columns and same values."""
    ids = deliver(rbl, sloppy_records)
    response = liemers.get(f"{DELIVERIES}/{ids['swv-de-liemers']}", headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    reader = csv.DictReader(io.StringIO(response.get_data(as_text=True), newline=""))
    convenant = load_convenant(DEFAULT_DIR / f"{CONVENANT}.toml")
    assert reader.fieldnames == columns(convenant)
    rows = list(reader)
    expected = []
    for record in map(normalised, sloppy_records):
        row = dict.fromkeys(columns(convenant), "")
        row.update({k: v for k, v in record.items() if k != "adres"})
        row.update({f"adres_{k}": v for k, v in record["adres"].items()})
        expected.append(row)
    assert rows == expected


def test_csv_delivery_can_be_submitted_again(rbl: Party, liemers: Party) -> None:
    """A delivered CSV is itself a valid submission (the columns round-trip)."""
    ids = deliver(rbl, [make_record(1, gemeente="Duiven")])
    text = liemers.get(f"{DELIVERIES}/{ids['swv-de-liemers']}", headers={"Accept": "text/csv"}).get_data()
    response = liemers.post(
        f"/api/v1/convenants/{CONVENANT}/submissions?kind=case",
        data=text,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.json
    assert [d["recipient"] for d in response.json["deliveries"]] == ["rbl-midden-gelre"]


def test_fetch_marks_fetched(rbl: Party, liemers: Party, clock: Any) -> None:
    """Fetching a delivery records fetched_at (the clock's time) but does not acknowledge it."""
    ids = deliver(rbl, [make_record(1, gemeente="Duiven")])
    liemers.headers  # noqa: B018 - get the token before the clock moves
    clock.advance(minutes=5)
    body = liemers.get(f"{DELIVERIES}/{ids['swv-de-liemers']}").json
    assert utc(body["fetched_at"]) == clock.now
    assert body["acked_at"] is None


def test_ack_sets_acked_at_and_is_idempotent(rbl: Party, liemers: Party, clock: Any) -> None:
    """POST /ack sets acked_at; a second ack keeps the first time and still answers 200."""
    ids = deliver(rbl, [make_record(1, gemeente="Duiven")])
    url = f"{DELIVERIES}/{ids['swv-de-liemers']}/ack"
    first = liemers.post(url)
    assert first.status_code == 200
    acked_at = utc(first.json["acked_at"])
    assert acked_at == clock.now
    clock.advance(minutes=10)
    second = liemers.post(url)
    assert second.status_code == 200
    assert utc(second.json["acked_at"]) == acked_at
    [summary] = liemers.get(DELIVERIES).json["deliveries"]
    assert utc(summary["acked_at"]) == acked_at


def test_status_open_hides_acked_deliveries(rbl: Party, liemers: Party) -> None:
    """?status=open lists only deliveries not yet acknowledged; without it all are listed."""
    first = deliver(rbl, [make_record(1, gemeente="Duiven")])["swv-de-liemers"]
    second = deliver(rbl, [make_record(2, gemeente="Zevenaar")])["swv-de-liemers"]
    assert liemers.post(f"{DELIVERIES}/{first}/ack").status_code == 200
    open_ids = [d["delivery_id"] for d in liemers.get(f"{DELIVERIES}?status=open").json["deliveries"]]
    all_ids = {d["delivery_id"] for d in liemers.get(DELIVERIES).json["deliveries"]}
    assert open_ids == [second]
    assert all_ids == {first, second}


def test_acked_delivery_can_still_be_fetched(rbl: Party, liemers: Party) -> None:
    """Acknowledging does not destroy the delivery: it can be fetched again."""
    delivery = deliver(rbl, [make_record(1, gemeente="Duiven")])["swv-de-liemers"]
    liemers.post(f"{DELIVERIES}/{delivery}/ack")
    assert liemers.get(f"{DELIVERIES}/{delivery}").json["records"][0]["bsn"] == make_record(1)["bsn"]


def test_unknown_delivery_is_404(liemers: Party, problem: Any) -> None:
    """Fetching or acknowledging a delivery that does not exist is 404 problem+json."""
    problem(liemers.get(f"{DELIVERIES}/00000000-0000-0000-0000-000000000000"), 404)
    problem(liemers.post(f"{DELIVERIES}/00000000-0000-0000-0000-000000000000/ack"), 404)


def test_convenant_filter(rbl: Party, liemers: Party) -> None:
    """?convenant= narrows the list to one convenant."""
    deliver(rbl, [make_record(1, gemeente="Duiven")])
    assert len(liemers.get(f"{DELIVERIES}?convenant={CONVENANT}").json["deliveries"]) == 1
    assert liemers.get(f"{DELIVERIES}?convenant=iets-anders").json["deliveries"] == []


def test_deliveries_need_a_token(client: Any, problem: Any) -> None:
    """Listing, fetching and acknowledging deliveries without a token is 401."""
    problem(client.get(DELIVERIES), 401)
    problem(client.get(f"{DELIVERIES}/x"), 401)
    problem(client.post(f"{DELIVERIES}/x/ack"), 401)


def test_every_timestamp_carries_a_utc_offset(rbl: Party, liemers: Party) -> None:
    """Timestamps the API returns are unambiguous: each has a UTC offset, whatever the database."""
    delivery = deliver(rbl, [make_record(1, gemeente="Duiven")])["swv-de-liemers"]
    liemers.post(f"{DELIVERIES}/{delivery}/ack")
    [summary] = liemers.get(DELIVERIES).json["deliveries"]
    for name in ("created_at", "fetched_at", "acked_at"):
        assert dt.datetime.fromisoformat(summary[name]).utcoffset() == dt.timedelta(0), (
            name,
            summary[name],
        )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{DELIVERIES}/%00", 404),
        (f"{DELIVERIES}/%00/ack", 404),
        (f"{DELIVERIES}?convenant=%00", 200),
    ],
)
def test_nul_byte_in_identifiers(liemers: Party, path: str, status: int) -> None:
    """A NUL byte in a delivery id or convenant filter is simply not found, never a server error."""
    method = liemers.post if path.endswith("/ack") else liemers.get
    response = method(path)
    assert response.status_code == status
