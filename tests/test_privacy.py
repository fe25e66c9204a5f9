"""No plaintext BSN in the database or the logs after a realistic run; and the log redaction."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record, to_csv
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from broker.app.logging import REDACTED, configure_logging, redact_bsn

SUBMIT = f"/api/v1/convenants/{CONVENANT}/submissions"
DELIVERIES = "/api/v1/deliveries"
BSNS = [make_bsn(n) for n in range(100, 118)]


@pytest.fixture
def exchange_run(rbl: Party, liemers: Party, passend_wijs: Party) -> list[str]:
    """Accepted and rejected submissions (JSON and CSV) with known BSNs, then fetches and acks."""
    # accepted: JSON cases, CSV cases, a quarterly list; and an SWV case back to the RBL
    assert (
        rbl.submit(
            [
                make_record(n, gemeente=g)
                for n, g in [(100, "Duiven"), (101, "Arnhem"), (102, "Zevenaar"), (103, "Rheden")]
            ]
        ).status_code
        == 201
    )
    csv_text = to_csv(
        delimiter=";", records=[make_record(104, gemeente="Westervoort"), make_record(105, gemeente="Renkum")]
    )
    assert rbl.post(f"{SUBMIT}?kind=case", data=csv_text, headers={"Content-Type": "text/csv"}).status_code == 201
    assert (
        rbl.submit(
            [make_record(106), make_record(107, gemeente="Duiven")],
            kind="quarterly_list",
            quarter="2026-Q4",
        ).status_code
        == 201
    )
    assert liemers.submit([make_record(108, gemeente="Duiven")]).status_code == 201
    # rejected: a bad record among good, a duplicate, a forbidden category, a BSN in free text,
    # a bad CSV
    bad = make_record(110)
    bad["adres"]["postcode"] = "XXXX"
    assert rbl.submit([make_record(109), bad]).status_code == 422
    assert rbl.submit([make_record(111), make_record(112, bsn=make_bsn(111))]).status_code == 422
    assert liemers.submit([make_record(113, "absoluut_verzuim", gemeente="Duiven")]).status_code == 403
    assert rbl.submit([make_record(114, reden_verzuim=f"broer {make_bsn(115)} ook")]).status_code == 422
    bad_csv = to_csv(delimiter=";", records=[make_record(116, geboortedatum="2030-01-01")])
    assert rbl.post(f"{SUBMIT}?kind=case", data=bad_csv, headers={"Content-Type": "text/csv"}).status_code == 422
    assert rbl.submit([make_record(117, diagnose="x")]).status_code == 422
    # every recipient fetches (JSON and CSV) and acknowledges
    for party in (liemers, passend_wijs, rbl):
        for d in party.get(DELIVERIES).json["deliveries"]:
            url = f"{DELIVERIES}/{d['delivery_id']}"
            assert party.get(url).status_code == 200
            assert party.get(url, headers={"Accept": "text/csv"}).status_code == 200
            assert party.post(f"{url}/ack").status_code == 200
    return BSNS


def _dump_database(app: Any) -> list[bytes]:
    """Every value of every column of every table, as bytes."""
    from broker.app.extensions import db

    values: list[bytes] = []
    with app.app_context(), db.engine.connect() as conn:
        inspector = inspect(conn)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                for (value,) in conn.execute(text(f'SELECT "{column["name"]}" FROM "{table}"')):
                    if value is None:
                        continue
                    if isinstance(value, bytes | bytearray | memoryview):
                        values.append(bytes(value))
                    elif isinstance(value, dict | list):
                        values.append(json.dumps(value).encode())
                    else:
                        values.append(str(value).encode())
    return values


def _pseudonyms(app: Any) -> list[str]:
    from broker.app.extensions import db
    from broker.models import Record

    with app.app_context():
        return list(db.session.scalars(select(Record.pseudonym)))


def test_database_holds_no_plaintext_bsn(app: Any, app_config: dict[str, Any], exchange_run: list[str]) -> None:
    """After the run no BSN is in any column of any table, nor in the SQLite file (and WAL)."""
    pseudonyms = _pseudonyms(app)
    assert len(pseudonyms) == 9  # 4 + 2 + 2 + 1 accepted records
    dump = _dump_database(app)
    assert any(pseudonyms[0].encode() in v for v in dump), "the dump must see the stored data"
    for bsn in exchange_run:
        assert not any(bsn.encode() in v for v in dump), f"BSN {bsn} stored in clear"

    url = make_url(app_config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists())
        assert pseudonyms[0].encode() in raw, "the file bytes must hold the stored data"
        for bsn in exchange_run:
            assert bsn.encode("ascii") not in raw, f"BSN {bsn} in the database file"


def test_logs_hold_no_bsn(app_config: dict[str, Any], exchange_run: list[str]) -> None:
    """After the run, the log file has the request log lines and no BSN."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    log = Path(app_config["LOG_FILE"]).read_text(encoding="utf-8")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert sum(1 for line in lines if line.get("event") == "request") >= 20
    for bsn in exchange_run:
        assert bsn not in log, f"BSN {bsn} in the log"


def test_logged_bsn_is_redacted_in_the_file(app: Any, app_config: dict[str, Any]) -> None:
    """A BSN logged via structlog or stdlib, in text, fields or a traceback, is redacted."""
    bsn = make_bsn(200)
    log = structlog.get_logger("test.privacy")
    log.info(f"gevonden {bsn}", bsn=bsn, nested={"lijst": [bsn, int(bsn)]})
    logging.getLogger("test.stdlib").warning("BSN %s in een stdlib-bericht", bsn)
    try:
        raise ValueError(f"kapot record {bsn}")
    except ValueError:
        log.exception("fout")
    for handler in logging.getLogger().handlers:
        handler.flush()
    content = Path(app_config["LOG_FILE"]).read_text(encoding="utf-8")
    assert bsn not in content
    assert content.count(REDACTED) >= 5
    assert "kapot record" in content  # the traceback is there, only the number is gone


# -- the redaction processor -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (make_bsn(1), REDACTED),
        (f"bsn={make_bsn(1)}", f"bsn={REDACTED}"),
        (f"{make_bsn(1)},{make_bsn(2)}", f"{REDACTED},{REDACTED}"),
        (f"a{make_bsn(1)}b", f"a{REDACTED}b"),
        (int(make_bsn(1)), REDACTED),
        ([make_bsn(1), "x"], [REDACTED, "x"]),
        ({"deep": {"er": (make_bsn(1),)}}, {"deep": {"er": [REDACTED]}}),
    ],
    ids=["bare", "in-text", "two", "between-letters", "int", "list", "nested"],
)
def test_redaction_replaces_valid_bsns(value: Any, expected: Any) -> None:
    """redact_bsn replaces every elfproef-valid nine-digit number in strings, ints, containers."""
    event = {"event": "bericht", "extra": value}
    assert redact_bsn(None, "info", event)["extra"] == expected


def test_redaction_covers_the_event_text() -> None:
    """The event message itself is redacted too."""
    event = {"event": f"record van {make_bsn(3)} geweigerd"}
    assert redact_bsn(None, "info", event)["event"] == f"record van {REDACTED} geweigerd"


@pytest.mark.parametrize(
    "value",
    [
        "123456789",
        123456789,
        "1000000090",
        "12345678",
        "0612345678",
        "duration 123456789 ns",
        "2026-09-01",
        "6811 AB",
        True,
        None,
        3.5,
    ],
    ids=[
        "nine-digits-no-elfproef",
        "int-no-elfproef",
        "ten-digits",
        "eight-digits",
        "phone",
        "in-text",
        "date",
        "postcode",
        "bool",
        "none",
        "float",
    ],
)
def test_redaction_keeps_what_is_not_a_bsn(value: Any) -> None:
    """Numbers failing the elfproef or not nine digits long, and other values, are kept as is."""
    assert redact_bsn(None, "info", {"event": "x", "extra": value})["extra"] == value


@pytest.mark.parametrize(
    "template",
    [
        "{a}{b}{c}{d}.{e}{f}.{g}{h}{i}",
        "{a}{b}{c} {d}{e}{f} {g}{h}{i}",
        "{a}{b}{c}{d}-{e}{f}-{g}{h}{i}",
    ],
    ids=["dots", "spaces", "hyphens"],
)
def test_redaction_of_grouped_bsn(template: str) -> None:
    """A BSN written in digit groups is redacted as well."""
    digits = dict(zip("abcdefghi", make_bsn(4), strict=True))
    written = template.format(**digits)
    assert written not in redact_bsn(None, "info", {"event": f"bsn {written}"})["event"]


def test_reconfiguring_logging_closes_the_previous_log_file(tmp_path: Path) -> None:
    """Configuring logging again closes the log file it configured before."""
    configure_logging("INFO", str(tmp_path / "a.log"))
    [old] = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    try:
        configure_logging("INFO", str(tmp_path / "b.log"))
        assert old.stream is None or old.stream.closed
    finally:
        old.close()
