"""CSV in (broker/csvio.py): a cell of any length or a header of any text is a 422 that names the
position, never a 500 or an echo of the header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import COLUMNS, CONVENANT, Party, make_record, to_csv

REPO = Path(__file__).resolve().parents[1]
SUBMISSIONS = f"/api/v1/convenants/{CONVENANT}/submissions"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


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
