"""Retention with crypto-shredding, driven by a controlled clock: nothing is held past its period,
and what is purged cannot be decrypted, not even from a copy of the database taken before."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.parties import Party, refresh_token
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import func, select, text

from broker import create_app
from broker.app import runtime
from broker.app.extensions import db
from broker.exchange.delivery import open_records
from broker.models import AuditEntryRow, DataKey, Delivery, KeyMaterial, Record, Submission
from keys.envelope import DecryptionError, Sealer, unwrap_key
from schemas.convenant import ConvenantError
from schemas.convenant_file import parse_convenant

LIEMERS, RBL = "swv-de-liemers", "rbl-midden-gelre"


def send_case(rbl: Party, liemers: Party, *, ack: bool) -> dict[str, Any]:
    """The RBL sends two Duiven pupils to De Liemers, which fetches (and perhaps acknowledges) them."""
    response = rbl.submit([make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")])
    assert response.status_code == 201, response.json
    delivery_id = response.json["deliveries"][0]["delivery_id"]
    assert liemers.get(f"/api/v1/deliveries/{delivery_id}").status_code == 200
    if ack:
        assert liemers.post(f"/api/v1/deliveries/{delivery_id}/ack").status_code == 200
    return {"submission": response.json["submission_id"], "delivery": delivery_id}


def retention_run(runner: Any) -> str:
    result = runner.invoke(args=["retention", "run"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def report(runner: Any) -> list[dict[str, Any]]:
    result = runner.invoke(args=["retention", "report", "--json"])
    assert result.exit_code == 0, result.output
    lines: list[dict[str, Any]] = json.loads(result.output)
    return lines


def snapshot(app: Any) -> dict[str, Any]:
    """What a database backup holds: the sealed payloads and the wrapped data keys."""
    with app.app_context(), db.engine.connect() as conn:
        records = [dict(r._mapping) for r in conn.execute(text("SELECT submission_id, seq, payload FROM records"))]
        keys = {
            r.id: dict(r._mapping) for r in conn.execute(text("SELECT id, kek_kid, wrapped, vaulted FROM data_keys"))
        }
        submissions = {r.id: r.data_key_id for r in conn.execute(text("SELECT id, data_key_id FROM submissions"))}
    return {"records": records, "keys": keys, "submissions": submissions}


def decryptable(app: Any, backup: dict[str, Any]) -> int:
    """How many of the backup's payloads the broker's keys (master key, KEKs, vault) still open."""
    opened = 0
    with app.app_context():
        keyring = runtime.keyring()
        for record in backup["records"]:
            key_row = backup["keys"][backup["submissions"][record["submission_id"]]]
            row = DataKey(
                id=key_row["id"], kek_kid=key_row["kek_kid"], wrapped=key_row["wrapped"], vaulted=key_row["vaulted"]
            )
            try:
                kek_row = db.session.get(KeyMaterial, row.kek_kid)
                assert kek_row is not None
                wrapping = keyring._wrapping_key(row, keyring._unwrap(kek_row))
                data_key = unwrap_key(wrapping, row.wrapped, f"data-key/{row.id}")
                Sealer(data_key).open(record["payload"], f"{record['submission_id']}/{record['seq']}".encode())
            except (LookupError, DecryptionError):
                continue
            opened += 1
    return opened


# -- the rules come from the convenant file ---------------------------------------------------------


def test_retention_rules_are_read_from_the_convenant_file(app: Any) -> None:
    with app.app_context():
        rules = runtime.get_convenant(CONVENANT).retention
    assert rules is not None
    assert rules.delivery_after_ack == dt.timedelta(days=7) and rules.delivery_max == dt.timedelta(days=60)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"delivery_days_after_ack": -1, "delivery_max_days": 60}, "whole number of days"),
        ({"delivery_days_after_ack": 9, "delivery_max_days": 3}, "must not be shorter"),
        ({"delivery_days_after_ack": 1, "delivery_max_days": 3, "quarterly_lists": "forever"}, "until_next_match"),
    ],
)
def test_bad_retention_rules_are_refused(section: dict[str, Any], message: str) -> None:
    import tomllib

    from schemas.convenant_file import DEFAULT_DIR

    data = tomllib.loads((DEFAULT_DIR / f"{CONVENANT}.toml").read_text(encoding="utf-8"))
    data["retention"] = section
    with pytest.raises(ConvenantError, match=message):
        parse_convenant(data)


# -- deliveries -------------------------------------------------------------------------------------


def test_an_acknowledged_delivery_is_purged_after_its_period_and_not_before(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party
) -> None:
    sent = send_case(rbl, liemers, ack=True)
    clock.advance(days=7, seconds=-1)
    assert "purged: 0;" in retention_run(runner)
    clock.advance(seconds=1)
    output = retention_run(runner)
    assert "retention.delivered: 2 records purged" in output and "data keys destroyed: 1" in output
    with app.app_context():
        assert db.session.scalar(select(Record).limit(1)) is None
        submission = db.session.get(Submission, sent["submission"])
        assert submission is not None and submission.purged_at == clock.now
        key = db.session.get(DataKey, submission.data_key_id)
        assert key is not None and key.wrapped is None and key.destroyed_at == clock.now
        assert not list(runtime.key_vault().key_ids())  # the share is gone too
        purged = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == "record.purged")).all()
        assert len(purged) == 2 and all(e.data_subject_id for e in purged)  # per pupil, by pseudonym
        assert all(b"payload" not in e.canonical for e in purged)
    refresh_token(liemers, clock)
    fetched = liemers.get(f"/api/v1/deliveries/{sent['delivery']}")
    assert fetched.status_code == 200 and fetched.json["records"] == []


def test_an_unacknowledged_delivery_goes_at_the_maximum(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party
) -> None:
    send_case(rbl, liemers, ack=False)
    clock.advance(days=30)
    assert "purged: 0;" in retention_run(runner)
    clock.advance(days=30)
    assert "purged: 2;" in retention_run(runner)


def test_a_purge_leaves_nothing_decryptable_even_from_an_earlier_copy(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party
) -> None:
    send_case(rbl, liemers, ack=True)
    backup = snapshot(app)
    assert decryptable(app, backup) == 2  # the check works: before the purge the copy opens
    clock.advance(days=8)
    retention_run(runner)
    assert decryptable(app, backup) == 0


def test_an_old_sqlite_file_served_again_cannot_open_a_purged_delivery(
    app: Any, app_config: dict[str, Any], runner: Any, clock: Clock, rbl: Party, liemers: Party, tmp_path: Path
) -> None:
    """A whole backup file, served by a broker with the same master key and vault after the purge."""
    if not app_config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("copies the database file; the snapshot test covers PostgreSQL")
    sent = send_case(rbl, liemers, ack=True)
    database = Path(app_config["DATABASE_URL"].removeprefix("sqlite:///"))
    with app.app_context():
        db.session.close()
        db.engine.dispose()
    copy = tmp_path / "backup.db"
    shutil.copyfile(database, copy)
    clock.advance(days=8)
    retention_run(runner)
    restored = create_app({**app_config, "DATABASE_URL": f"sqlite:///{copy}"})
    with restored.app_context():
        delivery = db.session.get(Delivery, sent["delivery"])
        assert delivery is not None
        with pytest.raises(LookupError):
            open_records(db.session, runtime.keyring(), delivery)
        db.engine.dispose()


# -- quarterly lists --------------------------------------------------------------------------------


def test_a_quarterly_list_is_kept_until_the_next_quarters_match(
    app: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    liemers: Party,
    passend_wijs: Party,
    verbinding: Party,
    open_quarter: str,
) -> None:
    with app.app_context():
        calendar = [q.quarter for q in runtime.get_convenant(CONVENANT).quarterly.calendar]  # type: ignore[union-attr]
    if calendar.index(open_quarter) + 1 >= len(calendar):
        pytest.skip("no next quarter in the calendar")
    following = calendar[calendar.index(open_quarter) + 1]

    def all_lists(quarter: str) -> None:
        for party, gemeente in (
            (rbl, "Duiven"),
            (liemers, "Duiven"),
            (passend_wijs, "Arnhem"),
            (verbinding, "Lingewaard"),
        ):
            response = party.submit([make_record(1, gemeente=gemeente)], kind="quarterly_list", quarter=quarter)
            assert response.status_code == 201, response.json

    all_lists(open_quarter)
    clock.advance(days=200)
    for party in (rbl, liemers, passend_wijs, verbinding):
        refresh_token(party, clock)
    assert "retention.quarterly_list" not in retention_run(runner)  # no later match yet: kept
    assert any(line["rule"] == "retention.quarterly_list" and line["next_due"] is None for line in report(runner))
    all_lists(following)  # the next quarter's match runs as the last list arrives
    output = retention_run(runner)
    assert "retention.quarterly_list: 4 records purged" in output
    with app.app_context():
        left = db.session.scalars(select(Submission.quarter).join(Record, Record.submission_id == Submission.id)).all()
    assert set(left) == {following}


# -- the auditor's report ---------------------------------------------------------------------------


def test_the_report_flags_what_is_past_retention_until_the_job_runs(
    runner: Any, clock: Clock, rbl: Party, liemers: Party
) -> None:
    send_case(rbl, liemers, ack=True)
    (line,) = report(runner)
    assert line["records"] == 2 and line["past_retention"] == 0 and line["kind"] == "case"
    clock.advance(days=10)
    (line,) = report(runner)
    assert line["past_retention"] == 2
    text_report = runner.invoke(args=["retention", "report"]).output
    assert "over de bewaartermijn" in text_report
    retention_run(runner)
    assert report(runner) == []
    assert "geen persoonsgegevens" in runner.invoke(args=["retention", "report"]).output


def test_a_large_run_shows_progress_and_purges_in_batches(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party
) -> None:
    for n in range(3):
        response = rbl.submit([make_record(10 * n + i, gemeente="Duiven") for i in range(4)])
        assert response.status_code == 201
    clock.advance(days=61)
    result = runner.invoke(args=["retention", "run", "--batch", "4"])
    assert result.exit_code == 0, result.output
    assert "Purging" in result.output and "purged: 12;" in result.output
    with app.app_context():
        traces = db.session.scalars(
            select(AuditEntryRow.trace_id).where(AuditEntryRow.name == "record.purged").distinct()
        ).all()
    assert len(traces) == 3  # one audited transaction per batch


def test_after_a_full_quarter_and_retention_runs_nothing_is_held_past_its_period(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party, verbinding: Party,
    open_quarter: str,
) -> None:
    """A whole quarter as the demo parties live it: cases routed, fetched (some acknowledged), one case
    ended, every list in and matched, then the next quarter's lists. After the retention runs, the
    report shows nothing past its period and only the newest quarter's lists remain."""
    with app.app_context():
        calendar = [q.quarter for q in runtime.get_convenant(CONVENANT).quarterly.calendar]  # type: ignore[union-attr]
    if calendar.index(open_quarter) + 1 >= len(calendar):
        pytest.skip("no next quarter in the calendar")
    following = calendar[calendar.index(open_quarter) + 1]
    parties = (rbl, liemers, passend_wijs, verbinding)
    gemeente = {rbl.party_id: "Duiven", liemers.party_id: "Duiven", passend_wijs.party_id: "Arnhem",
                verbinding.party_id: "Lingewaard"}

    def all_lists(quarter: str, first: int) -> None:
        for n, party in enumerate(parties):
            records = [make_record(first + n, gemeente=gemeente[party.party_id]), make_record(first + 9)]
            if party is not rbl:
                records = records[:1]
            response = party.submit(records, kind="quarterly_list", quarter=quarter)
            assert response.status_code == 201, response.json

    cases = rbl.submit([make_record(20 + i, gemeente=g) for i, g in enumerate(["Duiven", "Arnhem", "Lingewaard"])])
    assert cases.status_code == 201, cases.json
    for party in (liemers, passend_wijs, verbinding):
        for delivery in party.get("/api/v1/deliveries").json["deliveries"]:
            assert party.get(f"/api/v1/deliveries/{delivery['id']}").status_code == 200
            if party is not verbinding:  # De Verbinding never acknowledges
                assert party.post(f"/api/v1/deliveries/{delivery['id']}/ack").status_code == 200
    ended = rbl.post(f"/api/v1/convenants/{CONVENANT}/endings", json={"bsn": make_bsn(20), "reason": "overleden"})
    assert ended.status_code == 201, ended.json
    all_lists(open_quarter, 1)
    for party in parties:
        match = party.get(f"/api/v1/convenants/{CONVENANT}/quarters/{open_quarter}/match")
        assert match.status_code == 200, match.json

    clock.advance(days=95)
    for party in parties:
        refresh_token(party, clock)
    all_lists(following, 101)
    retention_run(runner)
    assert all(line["past_retention"] == 0 for line in report(runner))
    clock.advance(days=60)  # the end notice, never acknowledged, reaches its maximum too
    retention_run(runner)
    lines = report(runner)
    assert all(line["past_retention"] == 0 for line in lines), lines
    assert {line["kind"] for line in lines} == {"quarterly_list"}
    with app.app_context():
        quarters = set(
            db.session.scalars(select(Submission.quarter).join(Record, Record.submission_id == Submission.id))
        )
        destroyed = db.session.scalar(
            select(func.count()).select_from(DataKey).where(DataKey.destroyed_at.is_not(None))
        )
    assert quarters == {following}
    assert destroyed and destroyed > 0


def test_the_review_page_shows_holdings_and_flags_what_is_past_retention(
    app: Any, runner: Any, clock: Clock, rbl: Party, liemers: Party, make_officer: Any, officer_client: Any
) -> None:
    app.config["SESSION_COOKIE_SECURE"] = False
    send_case(rbl, liemers, ack=True)
    http = officer_client(make_officer("auditor"))
    page = http.get("/review/bewaartermijnen").get_data(as_text=True)
    assert "geleverd en bewaartermijn verstreken" in page and "over hun bewaartermijn" not in page
    clock.advance(days=8)
    http = officer_client("auditor")  # eight days on, the first session has ended
    page = http.get("/review/bewaartermijnen").get_data(as_text=True)
    assert "2 records zijn over hun bewaartermijn" in page
    retention_run(runner)
    assert "geen persoonsgegevens" in http.get("/review/bewaartermijnen").get_data(as_text=True)
