"""Submitting cases and quarterly lists (JSON and CSV), routing, rights, and the API's envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.convenants import SECOND_CONVENANT, make_vsv_record
from fixtures.parties import Party
from fixtures.records import COLUMNS, CONVENANT, make_bsn, make_record, to_csv

SUBMIT = f"/api/v1/convenants/{CONVENANT}/submissions"
SWV_OF = {
    "Arnhem": "swv-passend-wijs",
    "Renkum": "swv-passend-wijs",
    "Rheden": "swv-passend-wijs",
    "Rozendaal": "swv-passend-wijs",
    "Lingewaard": "swv-de-verbinding",
    "Overbetuwe": "swv-de-verbinding",
    "Duiven": "swv-de-liemers",
    "Westervoort": "swv-de-liemers",
    "Zevenaar": "swv-de-liemers",
}


def post_csv(party: Party, text: str | bytes, query: str = "kind=case", convenant: str = CONVENANT) -> Any:
    return party.post(
        f"/api/v1/convenants/{convenant}/submissions?{query}",
        data=text,
        headers={"Content-Type": "text/csv"},
    )


def recipients(response: Any) -> dict[str, int]:
    return {d["recipient"]: d["records"] for d in response.json["deliveries"]}


# -- JSON ------------------------------------------------------------------------------------------


def test_json_case_submission(rbl: Party, count_rows: Any) -> None:
    """A JSON case submission is 201 with submission_id and the number accepted, and is stored."""
    response = rbl.submit([make_record(n, gemeente="Duiven") for n in range(3)])
    assert response.status_code == 201, response.json
    body = response.json
    assert body["submission_id"]
    assert body["accepted"] == 3
    assert body["kind"] == "case" and body["quarter"] is None
    assert body["convenant_id"] == CONVENANT
    counts = count_rows()
    assert (
        counts["submissions"],
        counts["records"],
        counts["deliveries"],
        counts["delivery_records"],
    ) == (1, 3, 1, 3)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "case", "records": []}, 400),
        ({"kind": "case"}, 400),
        ({"kind": "case", "records": {"0": {}}}, 400),
        ({"kind": "case", "records": "x"}, 400),
        ({"kind": "melding", "records": [make_record(1)]}, 400),
        ({"records": [make_record(1)]}, 400),
        ({"kind": "case", "quarter": "2026-Q4", "records": [make_record(1)]}, 400),
        ({"kind": "case", "records": [make_record(1)], "afzender": "rbl"}, 400),
        ([make_record(1)], 400),
    ],
    ids=[
        "empty-records",
        "no-records",
        "records-object",
        "records-string",
        "unknown-kind",
        "no-kind",
        "quarter-on-case",
        "unknown-envelope-key",
        "bare-list",
    ],
)
def test_bad_envelope(rbl: Party, problem: Any, count_rows: Any, body: Any, status: int) -> None:
    """A wrong envelope (no records, unknown kind, stray keys) is 400; nothing is stored."""
    problem(rbl.post(SUBMIT, json=body), status)
    assert set(count_rows().values()) == {0}


def test_invalid_json_is_400(rbl: Party, problem: Any) -> None:
    """A body that is not valid JSON is 400 problem+json."""
    problem(
        rbl.post(
            SUBMIT,
            data=b'{"kind": "case", "records": [',
            headers={"Content-Type": "application/json"},
        ),
        400,
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_unsupported_content_type_is_415(rbl: Party, problem: Any, content_type: str) -> None:
    """Anything but JSON or CSV is 415 problem+json."""
    problem(rbl.post(SUBMIT, data=b"kind=case", headers={"Content-Type": content_type}), 415)


# -- CSV -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "lineterminator", "bom"),
    [(",", "\n", False), (";", "\n", False), (";", "\r\n", True), (",", "\r\n", False)],
    ids=["comma", "semicolon", "excel-semicolon-bom-crlf", "comma-crlf"],
)
def test_csv_case_submission(rbl: Party, delimiter: str, lineterminator: str, bom: bool) -> None:
    """A CSV case submission (`,` or `;`, with or without BOM/CRLF) is accepted and routed."""
    records = [
        make_record(1, gemeente="Duiven"),
        make_record(2, "absoluut_verzuim", gemeente="Arnhem"),
        make_record(3, "vrijstelling_5a", gemeente="Lingewaard"),
    ]
    text = to_csv(records, delimiter, lineterminator=lineterminator)
    response = post_csv(rbl, ("\ufeff" if bom else "") + text)
    assert response.status_code == 201, response.json
    assert response.json["accepted"] == 3
    assert recipients(response) == {
        "swv-de-liemers": 1,
        "swv-passend-wijs": 1,
        "swv-de-verbinding": 1,
    }


def test_csv_records_arrive_as_submitted(rbl: Party, liemers: Party) -> None:
    """What a CSV submission carries reaches the recipient field for field (address re-nested)."""
    record = make_record(4, gemeente="Zevenaar", betrokkenheid_toelichting="SWV voert gesprek met ouders")
    assert post_csv(rbl, to_csv([record], ";")).status_code == 201
    [delivery] = liemers.get("/api/v1/deliveries").json["deliveries"]
    assert liemers.get(f"/api/v1/deliveries/{delivery['delivery_id']}").json["records"] == [record]


def test_csv_with_a_column_the_convenant_does_not_allow(rbl: Party, problem: Any, count_rows: Any) -> None:
    """An unknown CSV column is a 422 naming it on every line; nothing is stored."""
    records = [make_record(1, diagnose="onbekend"), make_record(2, diagnose="onbekend")]
    body = problem(post_csv(rbl, to_csv(records, columns=[*COLUMNS, "diagnose"])), 422)
    assert [(e["record"], e["line"], e["field"], e["code"]) for e in body["errors"]] == [
        (0, 2, "diagnose", "not_allowed"),
        (1, 3, "diagnose", "not_allowed"),
    ]
    assert set(count_rows().values()) == {0}


def test_csv_errors_carry_line_numbers(rbl: Party, problem: Any) -> None:
    """A CSV error names the record index and its line in the file (header is line 1)."""
    records = [make_record(n) for n in range(4)]
    records[2]["adres"]["postcode"] = "12"
    body = problem(post_csv(rbl, to_csv(records)), 422)
    assert [(e["record"], e["line"], e["field"]) for e in body["errors"]] == [(2, 4, "adres.postcode")]


def test_csv_field_disallowed_for_the_category(rbl: Party, problem: Any) -> None:
    """In CSV too, a filled cell of a column the row's category does not allow is not_allowed."""
    records = [make_record(1, "vrijstelling_5a", reden_verzuim="wacht op plaatsing")]
    body = problem(post_csv(rbl, to_csv(records)), 422)
    assert [(e["line"], e["field"], e["code"]) for e in body["errors"]] == [(2, "reden_verzuim", "not_allowed")]


def test_csv_row_with_more_cells_than_columns_is_refused(rbl: Party, problem: Any) -> None:
    """A row with cells beyond the header is refused, not silently cut off."""
    text = to_csv([make_record(1)]).rstrip("\n") + ",ADHD\n"
    body = problem(post_csv(rbl, text), 422)
    assert [(e["line"], e["code"]) for e in body["errors"]] == [(2, "not_allowed")]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("kind=lijst", 400),
        ("kind=quarterly_list", 400),
        ("kind=quarterly_list&quarter=Q4-2026", 400),
    ],
)
def test_csv_envelope_comes_from_the_query(rbl: Party, problem: Any, query: str, status: int) -> None:
    """For CSV, kind (and quarter for lists) come from the query string and are checked."""
    problem(post_csv(rbl, to_csv([make_record(1)]), query), status)


def test_csv_header_only_is_400(rbl: Party, problem: Any) -> None:
    """A CSV with only its header line holds no records: 400."""
    problem(post_csv(rbl, ",".join(COLUMNS) + "\n"), 400)


def test_csv_not_utf8_is_400(rbl: Party, problem: Any) -> None:
    """A CSV that is not UTF-8 is 400."""
    text = to_csv([make_record(1, voornaam="Zoë")]).encode("utf-16")
    problem(post_csv(rbl, text), 400)


# -- routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gemeente", "swv"), SWV_OF.items())
def test_rbl_record_goes_to_the_swv_of_the_gemeente(rbl: Party, gemeente: str, swv: str) -> None:
    """A record from the RBL goes only to the SWV whose werkgebied holds the pupil's gemeente."""
    response = rbl.submit([make_record(1, gemeente=gemeente)])
    assert response.status_code == 201, response.json
    assert recipients(response) == {swv: 1}


def test_rbl_list_is_split_per_swv(rbl: Party) -> None:
    """One RBL submission across gemeenten becomes one delivery per SWV with its own records."""
    gemeenten = ["Duiven", "Arnhem", "Zevenaar", "Overbetuwe", "Renkum", "Westervoort"]
    response = rbl.submit([make_record(n, gemeente=g) for n, g in enumerate(gemeenten)])
    assert recipients(response) == {
        "swv-de-liemers": 3,
        "swv-passend-wijs": 2,
        "swv-de-verbinding": 1,
    }


@pytest.mark.parametrize("swv", ["swv-de-liemers", "swv-passend-wijs", "swv-de-verbinding"])
def test_swv_record_goes_to_the_rbl(make_party: Any, swv: str) -> None:
    """A langdurig-verzuim record from an SWV goes to the RBL only."""
    party = make_party(swv)
    gemeente = next(g for g, s in SWV_OF.items() if s == swv)
    response = party.submit([make_record(1, gemeente=gemeente)])
    assert response.status_code == 201, response.json
    assert recipients(response) == {"rbl-midden-gelre": 1}


def test_recipients_see_only_their_records(rbl: Party, liemers: Party, passend_wijs: Party) -> None:
    """After routing, each SWV fetches exactly the BSNs of its own gemeenten."""
    plan = {1: "Duiven", 2: "Arnhem", 3: "Westervoort", 4: "Rheden"}
    assert rbl.submit([make_record(n, gemeente=g) for n, g in plan.items()]).status_code == 201

    def bsns(party: Party) -> set[str]:
        found = set()
        for d in party.get("/api/v1/deliveries").json["deliveries"]:
            found |= {r["bsn"] for r in party.get(f"/api/v1/deliveries/{d['delivery_id']}").json["records"]}
        return found

    assert bsns(liemers) == {make_bsn(1), make_bsn(3)}
    assert bsns(passend_wijs) == {make_bsn(2), make_bsn(4)}


# -- rights ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["absoluut_verzuim", "vrijstelling_5a"])
def test_swv_may_not_submit_rbl_only_categories(liemers: Party, problem: Any, count_rows: Any, category: str) -> None:
    """An SWV submitting absoluut verzuim or vrijstelling 5a gets 403 naming the record."""
    records = [
        make_record(1, gemeente="Duiven"),
        make_record(2, "langdurig_verzuim", gemeente="Zevenaar"),
        make_record(3, category, gemeente="Duiven"),
    ]
    body = problem(liemers.submit(records), 403)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(2, "category", "category_not_provided")]
    assert category in body["errors"][0]["message"]
    assert set(count_rows().values()) == {0}


def test_swv_may_not_submit_rbl_only_categories_by_csv(passend_wijs: Party, problem: Any) -> None:
    """The category right holds for CSV as well, with the line of the refused record."""
    body = problem(post_csv(passend_wijs, to_csv([make_record(1), make_record(2, "absoluut_verzuim")])), 403)
    assert [(e["record"], e["line"]) for e in body["errors"]] == [(1, 3)]


def test_party_cannot_read_another_partys_delivery(
    rbl: Party, liemers: Party, passend_wijs: Party, problem: Any
) -> None:
    """Fetching or acking a delivery addressed to another party is 404, as for one that does not exist."""
    response = rbl.submit([make_record(1, gemeente="Duiven")])
    [delivery] = response.json["deliveries"]
    url = f"/api/v1/deliveries/{delivery['delivery_id']}"
    for intruder in (passend_wijs, rbl):
        problem(intruder.get(url), 404)
        problem(intruder.get(url, headers={"Accept": "text/csv"}), 404)
        problem(intruder.post(f"{url}/ack"), 404)
    [summary] = liemers.get("/api/v1/deliveries").json["deliveries"]
    assert summary["fetched_at"] is None and summary["acked_at"] is None


def test_party_outside_the_convenant_is_403(make_multi_party: Any, problem: Any) -> None:
    """A party that exists only in another convenant cannot submit to this one."""
    outsider = make_multi_party("gemeente-nijmegen")
    body = problem(outsider.submit([make_record(1)]), 403)
    assert "errors" not in body or body["errors"] == []
    problem(
        outsider.post(
            f"{SUBMIT}?kind=case",
            data=to_csv([make_record(1)]),
            headers={"Content-Type": "text/csv"},
        ),
        403,
    )


def test_party_outside_the_convenant_gets_403_before_body_checks(make_multi_party: Any, problem: Any) -> None:
    """An outsider learns nothing about the body rules: even an unsupported body is 403."""
    outsider = make_multi_party("rmc-rijk-van-nijmegen")
    problem(outsider.post(SUBMIT, data=b"x", headers={"Content-Type": "text/plain"}), 403)


def test_member_of_second_convenant_cannot_read_first_convenant_deliveries(make_multi_party: Any, problem: Any) -> None:
    """A delivery of one convenant does not exist for a party of the other convenant (404)."""
    rbl = make_multi_party("rbl-midden-gelre")
    rmc = make_multi_party("rmc-rijk-van-nijmegen")
    [delivery] = rbl.submit([make_record(1, gemeente="Duiven")]).json["deliveries"]
    problem(rmc.get(f"/api/v1/deliveries/{delivery['delivery_id']}"), 404)
    assert rmc.get("/api/v1/deliveries").json["deliveries"] == []
    assert rmc.submit([make_vsv_record(1)], convenant=SECOND_CONVENANT).status_code == 201


@pytest.mark.parametrize("convenant", ["bestaat-niet", "thuiszitters-midden-gelre-2"])
def test_unknown_convenant_is_404(rbl: Party, problem: Any, convenant: str) -> None:
    """Submitting to an unknown convenant is 404 problem+json."""
    problem(rbl.submit([make_record(1)], convenant=convenant), 404)


def test_submission_needs_a_token(client: Any, problem: Any, count_rows: Any) -> None:
    """Submitting without a token is 401 and stores nothing."""
    problem(client.post(SUBMIT, json={"kind": "case", "records": [make_record(1)]}), 401)
    assert set(count_rows().values()) == {0}


# -- quarterly lists -------------------------------------------------------------------------------


def test_quarterly_list_is_stored_but_not_routed(rbl: Party, liemers: Party, count_rows: Any) -> None:
    """A quarterly list is stored whole but no delivery is made from it."""
    records = [make_record(n, gemeente=g) for n, g in enumerate(SWV_OF)]
    response = rbl.submit(records, kind="quarterly_list", quarter="2026-Q4")
    assert response.status_code == 201, response.json
    assert response.json["kind"] == "quarterly_list"
    assert response.json["quarter"] == "2026-Q4"
    assert response.json["accepted"] == 9
    assert response.json["deliveries"] == []
    counts = count_rows()
    assert (
        counts["submissions"],
        counts["records"],
        counts["deliveries"],
        counts["delivery_records"],
    ) == (1, 9, 0, 0)
    assert liemers.get("/api/v1/deliveries").json["deliveries"] == []


def test_quarterly_list_by_csv(liemers: Party, count_rows: Any) -> None:
    """A quarterly list can be sent as CSV with kind and quarter in the query."""
    response = post_csv(
        liemers,
        to_csv([make_record(1, gemeente="Duiven")], ";"),
        "kind=quarterly_list&quarter=2026-Q3",
    )
    assert response.status_code == 201, response.json
    assert response.json["quarter"] == "2026-Q3"
    assert count_rows()["deliveries"] == 0


@pytest.mark.parametrize(
    "quarter",
    [None, "", "2026Q4", "2026-Q5", "2026-Q0", "26-Q1", "2026-q4", "2026-Q4 ", "Q4-2026", 2026],
)
def test_quarterly_list_needs_a_quarter(rbl: Party, problem: Any, quarter: Any) -> None:
    """A quarterly list without a quarter like 2026-Q4 is 400 naming the quarter field."""
    body: dict[str, Any] = {"kind": "quarterly_list", "records": [make_record(1)]}
    if quarter is not None:
        body["quarter"] = quarter
    problem_body = problem(rbl.post(SUBMIT, json=body), 400)
    assert [e["field"] for e in problem_body["errors"]] == ["quarter"]


def test_quarterly_list_is_validated_like_cases(rbl: Party, problem: Any, count_rows: Any) -> None:
    """A quarterly list with one bad record is rejected whole as well."""
    records = [make_record(1), make_record(2, bsn="123456789")]
    problem(rbl.submit(records, kind="quarterly_list", quarter="2026-Q4"), 422)
    assert set(count_rows().values()) == {0}


# -- API envelope: versions, OpenAPI ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "authorised"),
    [
        ("get", "/openapi.json", False),
        ("get", "/api/v1/convenants", False),
        ("get", "/api/v1/convenants", True),
        ("get", f"/api/v1/convenants/{CONVENANT}", True),
        ("get", "/api/v1/convenants/onbekend", True),
        ("get", "/api/v1/deliveries", True),
        ("get", "/api/v1/deliveries/onbekend", True),
        ("post", "/oauth/token", False),
        ("post", SUBMIT, True),
        ("get", "/bestaat/niet", False),
        ("delete", "/api/v1/deliveries", True),
    ],
)
def test_every_response_has_an_api_version(
    app: Any, client: Any, rbl: Party, method: str, path: str, authorised: bool
) -> None:
    """Every response, success or error, carries the API-Version header."""
    headers = rbl.headers if authorised else {}
    response = getattr(client, method)(path, headers=headers)
    assert response.headers.get("API-Version") == app.config["API_VERSION"], response.status_code


def test_api_version_on_created_and_rejected_submissions(app: Any, rbl: Party) -> None:
    """Both a 201 and a 422 submission answer carry API-Version."""
    version = app.config["API_VERSION"]
    assert rbl.submit([make_record(1)]).headers["API-Version"] == version
    assert rbl.submit([make_record(1, bsn="1")]).headers["API-Version"] == version


def test_openapi_lists_the_exchange_paths(client: Any) -> None:
    """/openapi.json is served (OpenAPI 3) and lists the submission, delivery and token paths."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec["openapi"].startswith("3.")
    for path in (
        "/api/v1/convenants/{convenant_id}/submissions",
        "/api/v1/deliveries",
        "/oauth/token",
        "/api/v1/deliveries/{delivery_id}",
        "/api/v1/deliveries/{delivery_id}/ack",
        "/api/v1/convenants",
        "/api/v1/convenants/{convenant_id}",
    ):
        assert path in spec["paths"], path
    assert not any("bsn" in path.lower() for path in spec["paths"]), "no BSN in any URL"


@pytest.mark.parametrize("layout", ["blank-line", "multi-line-cell"])
def test_csv_line_numbers_are_physical_lines(rbl: Party, problem: Any, layout: str) -> None:
    """The `line` of a CSV error is the line of the file on which the bad record starts."""
    first = make_record(
        1,
        reden_verzuim="wacht op\nplaatsing" if layout == "multi-line-cell" else "wacht op plaatsing",
    )
    bad = make_record(2)
    bad["adres"]["postcode"] = "12"
    header, *rows = to_csv([first, bad]).splitlines(keepends=True)
    if layout == "blank-line":
        text = header + rows[0] + "\n" + "".join(rows[1:])
    else:
        text = header + "".join(rows)
    bad_line = 1 + text.split("\n").index(next(r for r in text.split("\n") if make_bsn(2) in r))
    body = problem(post_csv(rbl, text), 422)
    assert [(e["record"], e["line"]) for e in body["errors"]] == [(1, bad_line)]


def test_csv_with_a_repeated_column_is_refused(rbl: Party, problem: Any, count_rows: Any) -> None:
    """A CSV header naming a column twice is refused; no cell is silently dropped."""
    columns = [*COLUMNS[:13], "betrokkenheid", "reden_verzuim"]
    record = make_record(1)
    row = (
        [str(record.get(c, "")) for c in COLUMNS[:5]]
        + list(record["adres"].values())
        + [
            record["laatst_bekende_school"],
            record["startdatum_verzuim"],
            "heeft ADHD",
            "beide",
            "wacht op plaatsing",
        ]
    )
    text = ",".join(columns) + "\n" + ",".join(row) + "\n"
    response = post_csv(rbl, text)
    assert response.status_code in (400, 422), response.json
    problem(response, response.status_code)
    assert set(count_rows().values()) == {0}


def test_unknown_envelope_keys_are_named_by_position_unless_plain(rbl: Party, problem: Any) -> None:
    """An unknown key of the submission envelope is echoed only as a plain identifier; a key holding a
    BSN and a name is reported as `veld N` (its place in the body)."""
    body = {"kind": "case", "records": [make_record(1)], "111222333 Noah": 1, "extra": 2}
    # Sent as written (the test client's json= would sort the keys).
    response = rbl.post(SUBMIT, data=json.dumps(body), headers={"Content-Type": "application/json"})
    refusal = problem(response, 400)
    assert [(e["field"], e["code"]) for e in refusal["errors"]] == [("veld 3", "not_allowed"), ("extra", "not_allowed")]
    assert "111222333" not in response.get_data(as_text=True) and "Noah" not in response.get_data(as_text=True)
