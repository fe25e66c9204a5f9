"""The quarterly calendar in the convenant file, list versions, quarter status and the Inspectie counts."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_record

from schemas.convenant import ConvenantError
from schemas.convenant_file import DEFAULT_DIR, load_convenant, parse_convenant

QUARTERS = f"/api/v1/convenants/{CONVENANT}/quarters"


def demo_data() -> dict[str, Any]:
    return tomllib.loads((DEFAULT_DIR / f"{CONVENANT}.toml").read_text(encoding="utf-8"))


def test_calendar_is_read_from_the_convenant_file() -> None:
    """The demo convenant names RBL and SWV as senders and a peildatum and deadline per quarter."""
    quarterly = load_convenant(DEFAULT_DIR / f"{CONVENANT}.toml").quarterly
    assert quarterly is not None
    assert quarterly.required_roles == ("rbl", "swv")
    q4 = quarterly.dates("2026-Q4")
    assert q4 is not None and (q4.peildatum.isoformat(), q4.deadline.isoformat()) == ("2026-12-31", "2027-01-15")
    assert len(quarterly.calendar) == 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda q: q["calendar"].append(dict(q["calendar"][0])), "twice"),
        (lambda q: q["calendar"][0].update(quarter="2026-5"), "not a quarter"),
        (lambda q: q["calendar"][0].update(deadline="2020-01-01"), "deadline before"),
        (lambda q: q["calendar"][0].update(peildatum="morgen"), "not a date"),
        (lambda q: q.update(reminder_days_before=-1), "reminder_days_before"),
        (lambda q: q.update(required_roles=["rbl", "gemeente"]), "names no party's role"),
    ],
)
def test_bad_calendar_is_refused(change: Any, message: str) -> None:
    """A malformed calendar is a ConvenantError naming the problem."""
    data = demo_data()
    change(data["quarterly"])
    with pytest.raises(ConvenantError, match=message):
        parse_convenant(data)


def test_convenant_without_calendar_has_none() -> None:
    """The calendar is optional: a convenant without one has no quarterly cycle."""
    data = demo_data()
    del data["quarterly"]
    assert parse_convenant(data).quarterly is None


def test_status_lists_versions_and_missing(rbl: Party, liemers: Party, open_quarter: str) -> None:
    """The status shows each list version, who is still missing, and the deadline."""
    assert rbl.submit([make_record(1)], kind="quarterly_list", quarter=open_quarter).status_code == 201
    assert rbl.submit([make_record(2)], kind="quarterly_list", quarter=open_quarter).status_code == 201
    body = liemers.get(f"{QUARTERS}/{open_quarter}").json
    assert [(v["party"], v["version"]) for v in body["lists"]] == [("rbl-midden-gelre", 1), ("rbl-midden-gelre", 2)]
    assert body["missing"] == ["swv-passend-wijs", "swv-de-verbinding", "swv-de-liemers"]
    assert body["runs"] == [] and body["deadline"] > body["peildatum"]


def test_counts_are_per_category_and_gemeente_of_own_list_only(
    rbl: Party, liemers: Party, open_quarter: str
) -> None:
    """The Inspectie counts cover the caller's latest list only and hold no personal data."""
    records = [
        make_record(1, gemeente="Duiven"),
        make_record(2, gemeente="Duiven"),
        make_record(3, gemeente="Zevenaar"),
    ]
    assert liemers.submit(records, kind="quarterly_list", quarter=open_quarter).status_code == 201
    other = rbl.submit([make_record(9, "absoluut_verzuim")], kind="quarterly_list", quarter=open_quarter)
    assert other.status_code == 201
    body = liemers.get(f"{QUARTERS}/{open_quarter}/counts").json
    assert body["counts"] == [
        {"category": "langdurig_verzuim", "gemeente": "Duiven", "count": 2},
        {"category": "langdurig_verzuim", "gemeente": "Zevenaar", "count": 1},
    ]
    assert body["total"] == 3 and body["list_version"] == 1 and body["party"] == "swv-de-liemers"
    assert "bsn" not in str(body)


def test_counts_without_a_list_are_empty(liemers: Party, open_quarter: str) -> None:
    """A party that has sent nothing for the quarter gets zero counts, not an error."""
    body = liemers.get(f"{QUARTERS}/{open_quarter}/counts").json
    assert body["counts"] == [] and body["list_version"] is None


