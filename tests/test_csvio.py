"""CSV in and out (broker/app/csvio.py): one writer that neutralises formula cells for every CSV the broker
emits (walked over every route that answers text/csv, and the CLI), and a parser that answers a cell
of any length or a header of any text with a 422 that names position, never with a 500 or an echo."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.officers import csrf_from
from fixtures.parties import Party
from fixtures.records import COLUMNS, CONVENANT, make_bsn, make_record, to_csv

from broker.app.csvio import FORMULA, csv_text, neutralise

REPO = Path(__file__).resolve().parents[1]
SUBMISSIONS = f"/api/v1/convenants/{CONVENANT}/submissions"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


# -- the writer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+31 6 1234", "'+31 6 1234"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'=1", "''=1"),  # so that dropping one quote gives the text back
        ("'s-Hertogenbosch", "'s-Hertogenbosch"),
        ("Jansen-1", "Jansen-1"),
        ("", ""),
        (None, ""),
        (-3, -3),  # a number the broker computed is written as a number
        (2.5, 2.5),
        (True, "True"),
    ],
)
def test_neutralise_prefixes_formula_text_and_leaves_numbers(value: Any, written: Any) -> None:
    """Text starting with = + - @ tab or CR (after any quotes) gets one `'` in front; numbers and other
    text are written as they are."""
    assert neutralise(value) == written


def test_a_program_gets_the_texts_back_by_dropping_one_quote() -> None:
    """Reading a written CSV and dropping one leading `'` from cells matching `'+[=+-@\\t\\r]` gives the
    original texts back, whatever they start with."""
    texts = ["=1", "'=1", "''@x", "'s-Hertogenbosch", "-", "plain", "+", "\t\ttab", "a;b", "regel\nregel"]
    written = "".join(csv_text(["kolom"], [[t] for t in texts], delimiter=";"))
    rows = list(csv.reader(io.StringIO(written, newline=""), delimiter=";"))[1:]
    read_back = [cell[1:] if re.fullmatch(r"'+[=+\-@\t\r].*", cell, re.S) else cell for (cell,) in rows]
    assert read_back == texts
    assert all(FORMULA.match(cell) is None or cell.startswith("'") for (cell,) in rows)


def test_only_csvio_writes_csv() -> None:
    """No module of the broker but broker/app/csvio.py imports the csv module: every CSV goes through one writer."""
    importers = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "broker").rglob("*.py")
        if re.search(r"^\s*(import csv\b|from csv import)", path.read_text(encoding="utf-8"), re.M)
    )
    assert importers == ["broker/app/csvio.py"]


# -- the walk over every CSV the broker emits ------------------------------------------------------

POISON = {"voornaam": "=1+2", "achternaam": "+1-2", "school": "@SUM(1;2)", "straat": "-1+2"}


def poisoned_record(n: int, gemeente: str) -> dict[str, Any]:
    record = make_record(n, gemeente=gemeente, voornaam=POISON["voornaam"], achternaam=POISON["achternaam"])
    record["laatst_bekende_school"] = POISON["school"]
    record["adres"]["straat"] = POISON["straat"]
    return record


def assert_neutralised(text: str, delimiter: str, poisons: list[str]) -> None:
    """No cell of the CSV starts with a formula character, and every poison is there, behind a `'`."""
    cells = [cell for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) for cell in row]
    assert [c for c in cells if c.startswith(TRIGGERS)] == []
    for poison in poisons:
        assert "'" + poison in cells, (poison, text[:2000])


def send_list(party: Party, quarter: str, records: list[dict[str, Any]]) -> None:
    response = party.submit(records, kind="quarterly_list", quarter=quarter)
    assert response.status_code == 201, response.json


def test_the_csv_walk_over_every_csv_route(
    app: Any,
    client: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    passend_wijs: Party,
    liemers: Party,
    verbinding: Party,
    open_quarter: str,
    make_officer: Any,
    officer_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Every route that answers text/csv (by the OpenAPI document and the review UI's routes) and
    `broker breaches register --output` write caller text that starts with = + - @ behind a `'`."""
    walked_api: set[tuple[str, str]] = set()
    walked_review: set[str] = set()
    records = list(POISON.values())

    # A delivery (De Liemers gets the Duiven pupil).
    submitted = rbl.submit([poisoned_record(1, "Duiven")])
    assert submitted.status_code == 201, submitted.json
    delivery = {d["recipient"]: d["delivery_id"] for d in submitted.json["deliveries"]}["swv-de-liemers"]
    response = liemers.get(f"/api/v1/deliveries/{delivery}", headers={"Accept": "text/csv"})
    assert response.mimetype == "text/csv"
    assert_neutralised(response.get_data(as_text=True), ",", records)
    walked_api.add(("get", "/api/v1/deliveries/{delivery_id}"))

    # The quarterly match: De Liemers lacks the RBL's Zevenaar pupil.
    send_list(rbl, open_quarter, [make_record(3, gemeente="Duiven"), poisoned_record(7, "Zevenaar")])
    send_list(passend_wijs, open_quarter, [make_record(5, gemeente="Renkum")])
    send_list(liemers, open_quarter, [make_record(3, gemeente="Duiven")])
    send_list(verbinding, open_quarter, [make_record(4, gemeente="Lingewaard")])
    response = liemers.get(f"/api/v1/convenants/{CONVENANT}/quarters/{open_quarter}/match",
                           headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv", response.get_data(as_text=True)[:500]
    assert make_bsn(7) in response.get_data(as_text=True)
    assert_neutralised(response.get_data(as_text=True), ",", records)
    walked_api.add(("get", "/api/v1/convenants/{convenant_id}/quarters/{quarter}/match"))

    # The breach register, through the API, the review UI and the CLI.
    texts = {
        "description": "=1+2 een export ging naar een verkeerd adres.",
        "suspected_cause": "@fout: verkeerde ontvanger",
    }
    reported = liemers.post("/api/v1/breaches", json={
        "convenant_id": CONVENANT,
        "detected_at": (clock.now - dt.timedelta(minutes=5)).isoformat(),
        **texts,
        "scope": {"deliveries": [delivery]},
    })
    assert reported.status_code == 201, reported.json
    breach_texts = list(texts.values())
    response = liemers.get("/api/v1/breaches", headers={"Accept": "text/csv"})
    assert response.mimetype == "text/csv"
    assert_neutralised(response.get_data(as_text=True), ";", breach_texts)
    walked_api.add(("get", "/api/v1/breaches"))

    http = officer_client(make_officer("bo"))
    response = http.get("/review/datalekken/register.csv")
    assert response.mimetype == "text/csv"
    assert_neutralised(response.get_data(as_text=True), ";", breach_texts)
    walked_review.add("/review/datalekken/register.csv")

    output = tmp_path / "register.csv"
    result = runner.invoke(args=["breaches", "register", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert_neutralised(output.read_text(encoding="utf-8"), ";", breach_texts)

    # The log export and the access report hold no caller text at the start of a cell today; a line
    # that did is made here, to see that the route writes through the one writer.
    from broker.review import export
    from broker.rights import access_table

    real_line = export.entry_line
    monkeypatch.setattr(export, "entry_line", lambda row: dataclasses.replace(real_line(row), name="=1+2"))
    response = http.get("/review/export.csv")
    assert response.mimetype == "text/csv"
    assert_neutralised(response.get_data(as_text=True), ",", ["=1+2"])
    walked_review.add("/review/export.csv")

    real_table = access_table.report_table
    monkeypatch.setattr(access_table, "report_table", lambda report: [*real_table(report), ("-1+2",) * 10])
    token = csrf_from(http.get("/review/inzage").get_data(as_text=True))
    response = http.post("/review/inzage", data={"bsn": make_bsn(1), "formaat": "csv", "csrf_token": token})
    assert response.mimetype == "text/csv"
    assert_neutralised(response.get_data(as_text=True), ";", ["-1+2"])

    # The walk covered every CSV route there is.
    spec = client.get("/openapi.json").get_json()
    csv_operations = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method != "parameters"
        for response in operation["responses"].values()
        if isinstance(response, dict) and "text/csv" in response.get("content", {})
    }
    assert csv_operations == walked_api
    csv_pages = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.endswith(".csv")}
    assert csv_pages == walked_review


# -- the parser ------------------------------------------------------------------------------------


def post_csv(party: Party, body: str, problem: Any, status: int) -> dict[str, Any]:
    response = party.post(f"{SUBMISSIONS}?kind=case", data=body.encode(), headers={"Content-Type": "text/csv"})
    return dict(problem(response, status))


def test_a_cell_over_the_csv_modules_limit_is_a_422_naming_record_and_field(
    rbl: Party, problem: Any, count_rows: Any
) -> None:
    """A cell of 200,000 characters (over the csv module's 131,072) is a 422 too_long naming record,
    field and line, not a 500; nothing is stored."""
    records = [make_record(1), make_record(2, reden_verzuim="x" * 200_000)]
    before = count_rows()
    body = post_csv(rbl, to_csv(records), problem, 422)
    assert [(e["record"], e["line"], e["field"], e["code"]) for e in body["errors"]] == [
        (1, 3, "reden_verzuim", "too_long")
    ]
    assert count_rows() == before


def test_a_long_cell_in_an_unknown_column_is_named_by_position(rbl: Party, problem: Any) -> None:
    """A 200,000-character cell under a header that is no plain identifier is not_allowed in `kolom N`."""
    columns = [*COLUMNS, "Opmerking_1"]
    body = post_csv(rbl, to_csv([{**make_record(1), "Opmerking_1": "y" * 200_000}], columns=columns), problem, 422)
    errors = [(e["record"], e["field"], e["code"]) for e in body["errors"]]
    assert errors == [(0, f"kolom {len(columns)}", "not_allowed")]


@pytest.mark.parametrize(
    ("header", "value", "field", "code"),
    [
        pytest.param("Noah_111222333", "x", "kolom {n}", "not_allowed", id="capitals-and-digits"),
        pytest.param("opmerking", "x", "opmerking", "not_allowed", id="plain-identifier-is-named"),
        pytest.param("111222333 Noah", "x", "kolom {n}", "invalid_column_name", id="no-column-name-at-all"),
    ],
)
def test_unknown_columns_are_named_by_position_unless_plain(
    rbl: Party, problem: Any, header: str, value: str, field: str, code: str
) -> None:
    """An unknown column is reported as `kolom N` unless its name is a plain [a-z_]{1,40} identifier;
    the header's own text (here a BSN and a name) never comes back."""
    columns = [*COLUMNS, header]
    row = {**make_record(1), header: value}
    response = rbl.post(f"{SUBMISSIONS}?kind=case", data=to_csv([row], columns=columns).encode(),
                        headers={"Content-Type": "text/csv"})
    body = problem(response, 422)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field.format(n=len(columns)), code)]
    if header != "opmerking":
        assert "111222333" not in response.get_data(as_text=True) and "Noah" not in response.get_data(as_text=True)


def test_a_column_named_twice_is_named_by_position(rbl: Party, problem: Any) -> None:
    """A repeated column that is no plain identifier is reported by the position of its repetition."""
    text = "category,bsn,Achternaam_X,Achternaam_X\nlangdurig_verzuim,100000022,a,b\n"
    body = post_csv(rbl, text, problem, 400)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("kolom 4", "duplicate_column")]
