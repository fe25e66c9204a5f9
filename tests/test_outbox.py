"""Reminders before the deadline, and the outbox that delivers them by signed webhook with retries."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from fixtures.app import Clock
from fixtures.parties import Party
from fixtures.receivers import WebhookReceiver
from fixtures.records import CONVENANT, make_record
from sqlalchemy import text


def deadline_of(app: Any, quarter: str) -> dt.datetime:
    from broker.app import runtime
    from broker.matching.quarters import deadline_at

    with app.app_context():
        return deadline_at(runtime.get_convenant(CONVENANT).quarterly.dates(quarter))


def set_hook(runner: Any, party: str, url: str) -> str:
    result = runner.invoke(args=["webhooks", "set", "--party", party, "--url", url])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def rows(app: Any, sql: str) -> list[Any]:
    from broker.app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def test_reminder_goes_to_parties_without_a_list_signed(
    app: Any, runner: Any, clock: Clock, rbl: Party, passend_wijs: Party, open_quarter: str,
    webhook_receiver: WebhookReceiver,
) -> None:
    """N days before the deadline, each party without a list gets one signed reminder; senders get none."""
    secret = set_hook(runner, "swv-de-liemers", webhook_receiver.url)
    set_hook(runner, "rbl-midden-gelre", webhook_receiver.url)
    assert rbl.submit([make_record(1)], kind="quarterly_list", quarter=open_quarter).status_code == 201
    assert "reminders queued: 0" in runner.invoke(args=["match", "run-due"]).output  # too early

    clock.now = deadline_of(app, open_quarter) - dt.timedelta(days=3)
    output = runner.invoke(args=["match", "run-due"]).output
    assert "reminders queued: 3" in output and "outbox delivered: 1" in output  # only Liemers has a hook
    assert len(webhook_receiver.received) == 1
    hit = webhook_receiver.received[0]
    body = json.loads(hit["body"])
    assert body["topic"] == "quarterly_list.reminder" and body["quarter"] == open_quarter
    expected = "sha256=" + hmac.new(secret.encode(), hit["body"], hashlib.sha256).hexdigest()
    assert hit["headers"]["X-Broker-Signature"] == expected
    parties = {r[0] for r in rows(app, "SELECT party_id FROM outbox")}
    assert parties == {"swv-passend-wijs", "swv-de-liemers", "swv-de-verbinding"}
    # once per party and quarter, however often run-due runs
    assert "reminders queued: 0" in runner.invoke(args=["match", "run-due"]).output
    assert len(webhook_receiver.received) == 1


def test_failed_delivery_is_retried_with_backoff_and_every_attempt_kept(
    app: Any, runner: Any, clock: Clock, open_quarter: str, webhook_receiver: WebhookReceiver
) -> None:
    """A 500 is retried after 1, then 2 minutes (the clock is moved, nobody sleeps); each try is recorded."""
    set_hook(runner, "swv-de-liemers", webhook_receiver.url)
    webhook_receiver.statuses = [500, 503]
    clock.now = deadline_of(app, open_quarter) - dt.timedelta(days=1)
    assert "outbox delivered: 0" in runner.invoke(args=["match", "run-due"]).output
    assert "outbox delivered: 0" in runner.invoke(args=["match", "run-due"]).output  # not due yet
    clock.advance(minutes=1)
    assert "outbox delivered: 0" in runner.invoke(args=["match", "run-due"]).output
    clock.advance(minutes=1)
    assert "outbox delivered: 0" in runner.invoke(args=["match", "run-due"]).output  # waits 2 minutes now
    clock.advance(minutes=1)
    assert "outbox delivered: 1" in runner.invoke(args=["match", "run-due"]).output
    attempts = rows(app, "SELECT status_code FROM outbox_attempts ORDER BY attempted_at")
    assert [a[0] for a in attempts] == [500, 503, 200]
    assert len(webhook_receiver.received) == 3
    assert len({h["headers"]["X-Broker-Delivery"] for h in webhook_receiver.received}) == 1


def test_unreachable_receiver_is_an_attempt_too(app: Any, runner: Any, clock: Clock, open_quarter: str) -> None:
    """A refused connection is recorded as an attempt with its error, and retried later."""
    set_hook(runner, "swv-de-liemers", "http://127.0.0.1:9/hook")
    clock.now = deadline_of(app, open_quarter) - dt.timedelta(days=1)
    assert "outbox delivered: 0" in runner.invoke(args=["match", "run-due"]).output
    ((status, error),) = rows(app, "SELECT status_code, error FROM outbox_attempts")
    assert status is None and "Error" in error


def test_webhook_secret_is_stored_wrapped(app: Any, runner: Any) -> None:
    """The printed secret is not in the database; what is stored is wrapped by the master key."""
    secret = set_hook(runner, "swv-de-liemers", "https://example.invalid/hook")
    ((wrapped,),) = rows(app, "SELECT wrapped_secret FROM webhooks")
    assert secret.encode() not in bytes(wrapped)
    result = runner.invoke(args=["webhooks", "set", "--party", "nobody", "--url", "https://x.invalid"])
    assert result.exit_code != 0


def test_backoff_doubles_up_to_a_cap() -> None:
    """The wait after each failed attempt doubles, but never exceeds six hours."""
    from broker.parties.outbox import backoff

    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff(30) == dt.timedelta(hours=6)
