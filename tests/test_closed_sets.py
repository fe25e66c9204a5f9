"""Nothing a caller typed reaches the append-only log or a metric label unless it was validated.

A refused submission is audited with rule codes and counts, and a kind only from the broker's own
closed set; metric labels come from closed sets too. Each test sends hostile text (a name beside a
BSN, and a unique marker) and then reads the whole log and the whole /metrics page for it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record, to_csv
from sqlalchemy import select

from broker.app.extensions import db
from broker.models import AuditEntryRow

MARKER = "zqxjmarker"
HOSTILE = f"{MARKER} Noah {make_bsn(5)} " + "x" * 5000
SUBMISSIONS = f"/api/v1/convenants/{CONVENANT}/submissions"


def whole_log(app: Any) -> str:
    with app.app_context():
        return "\n".join(bytes(c).decode() for c in db.session.scalars(select(AuditEntryRow.canonical)))


def rejections(app: Any) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow.canonical).where(AuditEntryRow.name == "submission.rejected"))
        return [json.loads(bytes(c)) for c in rows]


def metrics(client: Any) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


@pytest.mark.parametrize("how", ["json", "csv"])
def test_an_invalid_kind_reaches_neither_the_log_nor_a_metric_label(
    app: Any, client: Any, rbl: Party, how: str
) -> None:
    """A kind that is no kind is refused; its rejection entry says kind null, and /metrics has no series for it."""
    for n in range(3):  # distinct values must not make distinct series either
        kind = f"{HOSTILE}{n}"
        if how == "json":
            response = rbl.post(SUBMISSIONS, json={"kind": kind, "records": [make_record(1)]})
        else:
            response = rbl.post(
                SUBMISSIONS, query_string={"kind": kind}, data=to_csv([make_record(1)]), content_type="text/csv"
            )
        assert response.status_code == 400
        assert MARKER not in response.get_data(as_text=True)
    assert [r["attributes"]["kind"] for r in rejections(app)] == [None, None, None]
    assert MARKER not in whole_log(app) and make_bsn(5) not in whole_log(app)
    page = metrics(client)
    assert MARKER not in page
    kinds = set(re.findall(r'^broker_submissions_total\{[^}]*kind="([^"]*)"', page, re.MULTILINE))
    assert "unknown" in kinds and kinds <= {"case", "quarterly_list", "correction", "unknown"}


def test_a_rejection_is_audited_with_codes_and_counts_only(app: Any, rbl: Party) -> None:
    """Unknown field names, refused values and their messages stay out of the rejection entry."""
    records = [make_record(1, **{f"{MARKER}_veld": "x"}), make_record(2, voornaam=f"{MARKER} (ADHD)"), {"bsn": "1"}]
    response = rbl.post(SUBMISSIONS, json={"kind": "case", "records": records})
    assert response.status_code == 422
    [entry] = rejections(app)
    attributes = entry["attributes"]
    assert set(attributes) == {"http_status", "errors", "codes", "code_counts", "kind"}
    assert attributes["kind"] == "case" and attributes["http_status"] == 422
    assert sum(attributes["code_counts"].values()) == attributes["errors"] == len(response.json["errors"])
    assert attributes["codes"] == sorted(attributes["code_counts"])
    assert MARKER not in whole_log(app)


def test_an_unknown_http_method_is_one_label(client: Any) -> None:
    """A method no route knows is counted as `other`, not as a label of its own."""
    for method in ("PROPFIND", f"X{MARKER.upper()}"):
        client.open("/api/v1/convenants", method=method)
    page = metrics(client)
    assert MARKER.upper() not in page and "PROPFIND" not in page
    assert 'method="other"' in page
