"""Fault: the parties' webhook receiver is down for hours (503, or nothing listening on the port).

The clock moves in 20-minute steps over a 32-hour outage and the scheduler ticks at each step, while
cases are routed, ended and forwarded and a breach is reported and runs past its 24-hour deadline.
Then the receiver comes back on the same URL and the broker catches up. Nobody sleeps.

What the product promises (broker/parties/outbox.py, broker/jobs/scheduler.py, broker/breaches/):
every attempt is kept, retries back off 1, 2, 4 ... minutes up to six hours, a message counts as
delivered only on a 2xx, the breach goes `te laat` and escalates once at its deadline, also by
e-mail to the privacy officers. It does not promise order across retries: within one run of the
outbox, due messages go out oldest first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.officers import OFFICER_PASSWORD
from fixtures.parties import Party, refresh_token
from fixtures.receivers import SmtpServer
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import select
from werkzeug.serving import make_server

from broker.app.extensions import db
from broker.models import AuditEntryRow, OutboxAttempt, OutboxEntry
from broker.parties import outbox

STEP = dt.timedelta(minutes=20)
OUTAGE = dt.timedelta(hours=32)
CATCH_UP = outbox.LONGEST_WAIT + dt.timedelta(hours=1)  # longer than the longest back-off
RBL, LIEMERS, PASSEND_WIJS, VERBINDING = "rbl-midden-gelre", "swv-de-liemers", "swv-passend-wijs", "swv-de-verbinding"
OFFICER_MAIL = "fg@broker.example"
BREACHES = "/api/v1/breaches"
ENDINGS = f"/api/v1/convenants/{CONVENANT}/endings"
REQUESTS = f"/api/v1/convenants/{CONVENANT}/subject-requests"

# The pupils of the exchange: test pupil number -> gemeente (which routes it to one SWV).
PUPILS = {1: "Duiven", 2: "Arnhem", 3: "Lingewaard", 4: "Zevenaar", 5: "Rheden", 6: "Overbetuwe"}


# -- a receiver that can fail, go away and come back on the same port -------------------------------


@dataclass
class Receiver:
    """A webhook endpoint on a fixed loopback port. `mode` is "503" (answers 503) or "up" (200);
    `stop()` closes the port (connection refused) and `start()` opens it again."""

    port: int
    mode: str = "503"
    tick: int = -1  # the scheduler tick in progress, set by the test
    hits: list[dict[str, Any]] = field(default_factory=list)
    _server: Any = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        status = 200 if self.mode == "up" else 503
        self.hits.append({"tick": self.tick, "headers": headers, "body": body, "status": status})
        start_response(f"{status} {'OK' if status == 200 else 'Service Unavailable'}", [("Content-Type", "text/plain")])
        return [b"ok" if status == 200 else b"down"]

    def start(self) -> None:
        assert self._server is None
        self._server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            assert self._thread is not None
            self._thread.join()
            self._server.server_close()
            self._server = None

    def refuses(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) != 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = Receiver(port)
    yield receiver
    receiver.stop()


# -- helpers ---------------------------------------------------------------------------------------


def cli(runner: Any, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return str(result.output)


def run_tick(app: Any, receiver: Receiver, number: int) -> Any:
    """One scheduler tick, as `broker serve` runs it every minute."""
    from broker.jobs.scheduler import tick

    receiver.tick = number
    with app.app_context():
        return tick()


def entries(app: Any) -> list[OutboxEntry]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxEntry).order_by(OutboxEntry.created_at, OutboxEntry.id)).all()
        db.session.expunge_all()
        return list(rows)


def attempts(app: Any) -> dict[str, list[OutboxAttempt]]:
    """Every kept attempt, per outbox entry, in time order."""
    with app.app_context():
        rows = db.session.scalars(select(OutboxAttempt).order_by(OutboxAttempt.attempted_at)).all()
        db.session.expunge_all()
    per_entry: dict[str, list[OutboxAttempt]] = defaultdict(list)
    for row in rows:
        per_entry[row.entry_id].append(row)
    return per_entry


def audit(app: Any, *names: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.name.in_(names)).order_by(AuditEntryRow.idx)
        ).all()
        return [json.loads(bytes(r.canonical)) for r in rows]


def end_case(party: Party, clock: Clock, n: int) -> None:
    refresh_token(party, clock)
    response = party.post(ENDINGS, json={"bsn": make_bsn(n), "reason": "teruggekeerd_naar_onderwijs"})
    assert response.status_code == 201, response.json


def forward_request(party: Party, clock: Clock, n: int) -> None:
    refresh_token(party, clock)
    body = {"bsn": make_bsn(n), "kind": "inzage", "received_at": clock.now.isoformat(), "note": "per brief"}
    response = party.post(REQUESTS, json=body)
    assert response.status_code == 201, response.json


@dataclass
class Exchange:
    """What the scenario set up: the parties' clients, their webhook secrets, the breach."""

    parties: dict[str, Party]
    secrets: dict[str, str]
    breach_id: str = ""
    deadline: dt.datetime | None = None


def set_up(app: Any, runner: Any, clock: Clock, receiver: Receiver, smtp: SmtpServer, parties: list[Party]) -> Exchange:
    """Webhooks for every party (one receiver), e-mail for a privacy officer, and the RBL's cases
    routed to the three SWVs, two of which fetch them."""
    app.config.update(SMTP_HOST=smtp.host, SMTP_PORT=smtp.port)
    cli(runner, "users", "add", "fg-broker", "--role", "broker-officer", "--password", OFFICER_PASSWORD,
        "--email", OFFICER_MAIL)  # fmt: skip
    by_id = {p.party_id: p for p in parties}
    secrets = {pid: cli(runner, "webhooks", "set", "--party", pid, "--url", receiver.url).strip() for pid in by_id}
    sent = by_id[RBL].submit([make_record(n, gemeente=g) for n, g in PUPILS.items()])
    assert sent.status_code == 201, sent.json
    deliveries = {d["recipient"]: d["delivery_id"] for d in sent.json["deliveries"]}
    assert set(deliveries) == {LIEMERS, PASSEND_WIJS, VERBINDING}
    for pid in (LIEMERS, PASSEND_WIJS):
        assert by_id[pid].get(f"/api/v1/deliveries/{deliveries[pid]}").status_code == 200
    exchange = Exchange(by_id, secrets)
    exchange.breach_id, exchange.deadline = report_breach(by_id[RBL], clock, sent.json["submission_id"])
    return exchange


def report_breach(rbl: Party, clock: Clock, submission_id: str) -> tuple[str, dt.datetime]:
    response = rbl.post(
        BREACHES,
        json={
            "convenant_id": CONVENANT,
            "detected_at": clock.now.isoformat(),
            "description": "Een export met leerlinggegevens is naar een verkeerd e-mailadres gestuurd.",
            "suspected_cause": "Menselijke fout: verkeerde geadresseerde gekozen bij het versturen.",
            "scope": {"submissions": [submission_id]},
        },
    )
    assert response.status_code == 201, response.json
    roles = {p["party_id"]: p["role"] for p in response.json["parties"]}
    assert roles == {RBL: "melder", LIEMERS: "betrokken", PASSEND_WIJS: "betrokken", VERBINDING: "betrokken"}
    return response.json["id"], dt.datetime.fromisoformat(response.json["deadline"])


def webhooks(app: Any) -> list[OutboxEntry]:
    return [e for e in entries(app) if e.channel == outbox.WEBHOOK]


# -- the scenario ------------------------------------------------------------------------------------


def go_down(receiver: Receiver, mode: str) -> None:
    if mode == "503":
        receiver.mode = "503"
        receiver.start()
    else:
        receiver.stop()
        assert receiver.refuses()


def come_back(receiver: Receiver, mode: str) -> None:
    receiver.mode = "up"
    if mode == "refused":
        receiver.start()


@pytest.mark.parametrize("mode", ["503", "refused"])
def test_webhook_receiver_down_for_32_hours(
    app: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    liemers: Party,
    passend_wijs: Party,
    verbinding: Party,
    receiver: Receiver,
    smtp_server: SmtpServer,
    mode: str,
) -> None:
    """While every webhook fails for 32 hours: each attempt is kept with its answer or error, the waits
    between attempts grow to at most six hours, nothing counts as delivered, and the breach still
    goes `te laat` at its deadline and escalates once (audited, e-mailed to the officer). When the
    receiver is back, every message still held goes out exactly once, signed, oldest first per party
    within a run."""
    go_down(receiver, mode)
    start = clock.now
    ex = set_up(app, runner, clock, receiver, smtp_server, [rbl, liemers, passend_wijs, verbinding])
    # More notices while the receiver is down, at their own times (offset from start: action).
    actions: dict[dt.timedelta, Callable[[], None]] = {
        dt.timedelta(0): lambda: (end_case(rbl, clock, 1), forward_request(passend_wijs, clock, 2)),
        dt.timedelta(hours=6): lambda: end_case(rbl, clock, 3),
        dt.timedelta(hours=12): lambda: forward_request(liemers, clock, 4),
        # two notices to the RBL a minute apart, both due at the same run of the outbox
        dt.timedelta(hours=20): lambda: (clock.advance(minutes=-2), forward_request(passend_wijs, clock, 5),
                                         clock.advance(minutes=1), forward_request(verbinding, clock, 6),
                                         clock.advance(minutes=1)),
    }  # fmt: skip
    ticks_at: list[dt.datetime] = []
    late_at: dt.datetime | None = None
    number = 0
    while clock.now - start <= OUTAGE:
        if clock.now - start in actions:
            actions[clock.now - start]()
        result = run_tick(app, receiver, number)
        ticks_at.append(clock.now)
        mailed = [e for e in entries(app) if e.channel == outbox.EMAIL and e.delivered_at == clock.now]
        assert result.delivered == len(mailed)  # e-mail still goes out; no webhook does
        held = webhooks(app)
        assert all(e.delivered_at is None for e in held), "a webhook counted as delivered while the receiver was down"
        if late_at is None and any(
            e["attributes"]["to"] == "te laat" for e in audit(app, "breach.state_changed")
        ):
            late_at = clock.now
        clock.advance(minutes=STEP.total_seconds() / 60)
        number += 1
    down_until = clock.now
    assert not [h for h in receiver.hits if h["status"] == 200]
    if mode == "refused":
        assert receiver.hits == []

    # -- the breach went late at its deadline, once, although no webhook arrived ------------------
    assert ex.deadline == start + dt.timedelta(hours=24)
    assert late_at is not None and ex.deadline <= late_at < ex.deadline + STEP
    changes = [
        (e["attributes"]["from"], e["attributes"]["to"])
        for e in audit(app, "breach.state_changed")
        if e["attributes"]["breach_id"] == ex.breach_id
    ]
    assert changes == [("gemeld", "te laat")]
    assert audit(app, "breach.party_notified") == []  # no affected party got the notice during the outage
    overdue = [e for e in webhooks(app) if e.topic == "breach.overdue"]
    assert sorted(e.party_id for e in overdue) == sorted(ex.parties)
    assert all(e.created_at == late_at for e in overdue)
    missing = {m["party_id"] for m in overdue[0].payload["missing_acknowledgements"]}
    assert missing == {LIEMERS, PASSEND_WIJS, VERBINDING}
    officer_mail = [m for m in smtp_server.messages if OFFICER_MAIL in m["To"]]
    assert [m["X-Broker-Event"] for m in officer_mail] == ["breach.overdue"]  # by e-mail, while webhooks failed
    refresh_token(rbl, clock)
    shown = rbl.get(f"{BREACHES}/{ex.breach_id}").json
    assert shown["state"] == "te laat" and shown["late"] is True

    # -- the receiver comes back on the same URL ---------------------------------------------------
    come_back(receiver, mode)
    recovered_at = clock.now
    while clock.now - recovered_at <= CATCH_UP:
        run_tick(app, receiver, number)
        ticks_at.append(clock.now)
        clock.advance(minutes=STEP.total_seconds() / 60)
        number += 1
    assert len(smtp_server.messages) == len(officer_mail)  # the escalation e-mail went once

    held = webhooks(app)
    kept = attempts(app)
    delivered = [e for e in held if e.delivered_at is not None]
    abandoned = [e for e in held if e.abandoned_at is not None]
    assert delivered, "nothing was delivered after the receiver came back"
    assert {e.topic for e in delivered} >= {"breach.overdue", "subject_request.forwarded"}
    assert all(e.delivered_at >= down_until for e in delivered)
    # Every message the outbox still held when the receiver came back was delivered.
    assert {e.id for e in held} == {e.id for e in delivered} | {e.id for e in abandoned}
    assert not {e.id for e in delivered} & {e.id for e in abandoned}

    # -- every attempt kept; waits grow and stay bounded ---------------------------------------------
    for entry in held:
        tries = kept[entry.id]
        assert len(tries) == entry.attempts >= 1
        assert tries[0].attempted_at == min(t for t in ticks_at if t >= entry.created_at)  # first run after queuing
        assert all(t.url == receiver.url for t in tries)
        failed, last = (tries[:-1], tries[-1]) if entry.delivered_at else (tries, None)
        for t in failed:
            assert t.attempted_at < down_until
            if mode == "503":
                assert t.status_code == 503 and t.error is None
            else:
                assert t.status_code is None and t.error and "refused" in t.error.lower()
        if last is not None:
            assert last.status_code == 200 and last.error is None and last.attempted_at == entry.delivered_at
        gaps = [b.attempted_at - a.attempted_at for a, b in zip(tries, tries[1:], strict=False)]
        for n, gap in enumerate(gaps, start=1):
            assert outbox.backoff(n) <= gap < outbox.backoff(n) + STEP, (entry.topic, n, gap)
        assert gaps == sorted(gaps), "the wait between attempts shrank"
        assert all(gap < outbox.LONGEST_WAIT + STEP for gap in gaps)
        if entry.abandoned_at is not None:  # only a week after it was queued
            assert entry.abandoned_at - entry.created_at >= outbox.KEEP_TRYING
    late_enough = [e for e in held if e.created_at >= start + dt.timedelta(hours=12)]
    assert late_enough and all(e.delivered_at for e in late_enough), "a message within its retry budget was lost"

    # -- at the receiver: exactly once per message, signed, the body the outbox holds ------------------
    accepted = [h for h in receiver.hits if h["status"] == 200]
    ids = Counter(h["headers"]["X-Broker-Delivery"] for h in accepted)
    assert ids == Counter({e.id: 1 for e in delivered}), "a message arrived twice, or not at all"
    signatures = Counter(h["headers"]["X-Broker-Signature"] for h in accepted)
    assert max(signatures.values()) == 1
    by_id = {e.id: e for e in held}
    for hit in receiver.hits:
        entry = by_id[hit["headers"]["X-Broker-Delivery"]]
        secret = ex.secrets[entry.party_id].encode()
        expected = "sha256=" + hmac.new(secret, hit["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hit["headers"]["X-Broker-Signature"], expected)
        body = json.loads(hit["body"])
        assert body["id"] == entry.id and body["topic"] == entry.topic == hit["headers"]["X-Broker-Event"]
        assert all(body[k] == v for k, v in entry.payload.items())
        assert all(make_bsn(n) not in hit["body"].decode() for n in PUPILS)
    hits_per_entry = Counter(h["headers"]["X-Broker-Delivery"] for h in receiver.hits)
    for entry in held:  # every try that reached the receiver is an attempt the broker kept
        reached = len(kept[entry.id]) if mode == "503" else (1 if entry.delivered_at else 0)
        assert hits_per_entry[entry.id] == reached

    # -- order: within one run of the outbox, a party's messages go out oldest first ----------------
    runs: dict[tuple[int, str], list[OutboxEntry]] = defaultdict(list)
    for hit in receiver.hits:
        entry = by_id[hit["headers"]["X-Broker-Delivery"]]
        runs[hit["tick"], entry.party_id].append(entry)
    assert any(len(batch) > 1 for batch in runs.values()), "no run held two messages for one party"
    for batch in runs.values():
        assert [e.created_at for e in batch] == sorted(e.created_at for e in batch)

    # -- the breach after the outage ------------------------------------------------------------------
    notified = audit(app, "breach.party_notified")
    delivered_notices = {e.party_id: e for e in delivered if e.topic == "breach.notified"}
    assert {e["attributes"]["party"] for e in notified} == set(delivered_notices)
    for entry in notified:
        assert entry["attributes"]["via"] == "webhook"
        party = entry["attributes"]["party"]
        assert dt.datetime.fromisoformat(entry["attributes"]["at"]) == delivered_notices[party].delivered_at
    refresh_token(rbl, clock)
    shown = rbl.get(f"{BREACHES}/{ex.breach_id}").json
    assert shown["state"] == "te laat" and shown["late"] is True  # nobody acknowledged: still late
    changes = [e["attributes"]["to"] for e in audit(app, "breach.state_changed")]
    assert changes == ["te laat"]  # escalated once, not again after the outage


def test_no_notice_is_dropped_while_the_receiver_is_down_for_30_hours(
    app: Any,
    runner: Any,
    clock: Clock,
    rbl: Party,
    liemers: Party,
    passend_wijs: Party,
    verbinding: Party,
    receiver: Receiver,
    smtp_server: SmtpServer,
) -> None:
    """A breach notice and an end notice queued as the receiver goes down reach it once it is back,
    30 hours later; every affected party then counts as notified by webhook."""
    go_down(receiver, "503")
    start = clock.now
    ex = set_up(app, runner, clock, receiver, smtp_server, [rbl, liemers, passend_wijs, verbinding])
    end_case(rbl, clock, 1)
    number = 0
    while clock.now - start <= dt.timedelta(hours=30) + CATCH_UP:
        if clock.now - start >= dt.timedelta(hours=30):
            receiver.mode = "up"
        run_tick(app, receiver, number)
        clock.advance(minutes=STEP.total_seconds() / 60)
        number += 1
    held = webhooks(app)
    first = [e for e in held if e.created_at == start]
    assert {e.topic for e in first} == {"breach.notified", "case.ended"}
    accepted = Counter(h["headers"]["X-Broker-Delivery"] for h in receiver.hits if h["status"] == 200)
    assert [e.id for e in first if e.abandoned_at is not None] == [], "dropped during the outage"
    assert all(accepted[e.id] == 1 for e in first)
    notified = {e["attributes"]["party"] for e in audit(app, "breach.party_notified")}
    assert notified == {LIEMERS, PASSEND_WIJS, VERBINDING}
    assert ex.breach_id
