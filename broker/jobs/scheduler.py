"""Run due matches, queue reminders, move breaches on and deliver the outbox: once (`tick`) or every
minute (`Scheduler`). The Scheduler also purges what is past its retention, once an hour.

`broker serve` starts a Scheduler in every worker, but only the holder of the database lease
"scheduler" runs the jobs, so they run once however many workers and instances there are; when
the holder dies, another worker takes the lease over once it expires. Cron can call
`broker match run-due` as well: the quarter lock, row locks on open breaches and the outbox's
unique keys make concurrent runners harmless.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from flask import Flask, current_app

from audit.entry import Actor
from broker.app import runtime
from broker.app.extensions import db
from broker.auditing.step import audited_step
from broker.breaches import escalation
from broker.jobs import leases
from broker.matching import match as matching
from broker.matching import quarters
from broker.parties import mail, outbox
from broker.rights import retention

log = structlog.get_logger("broker.scheduler")

DEFAULT_INTERVAL = 60.0
RETENTION_INTERVAL = dt.timedelta(hours=1)
LEASE = "scheduler"


@dataclass(frozen=True)
class TickResult:
    runs: int
    reminders: int
    delivered: int
    breaches: int = 0


def _breach_step() -> int:
    """Note delivered breach notices, move states on and escalate; audited as the scheduler."""
    with audited_step(db.session, Actor(type="system", id="scheduler")) as step:
        return escalation.run_due(step.session, runtime.convenants(), step.recorder, step.now)


def tick(*, deliver: bool = True, post: outbox.Poster = outbox.post_json) -> TickResult:
    """Do everything that is due now, in the current app context."""
    session = db.session
    now = runtime.now()
    runs = matching.run_due(session, runtime.convenants(), now)
    reminders = 0
    for convenant in runtime.convenants().values():
        reminders += quarters.queue_reminders(session, convenant, now)
    session.commit()
    changed = _breach_step()  # escalations queued here go out below, in this same tick
    delivered = (
        outbox.deliver_due(
            session,
            runtime.master_key(),
            now,
            post,
            mailer=mail.smtp_mailer(current_app.config),
            sender=current_app.config["SMTP_FROM"],
        )
        if deliver
        else 0
    )
    if delivered:
        changed += _breach_step()  # a notice just delivered may complete `genotificeerd`
    return TickResult(len(runs), reminders, delivered, changed)


class Scheduler(threading.Thread):
    """A daemon thread that calls `tick` every `interval` seconds with an app of its own."""

    def __init__(self, create_app: Callable[[], Flask], interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__(name="broker-scheduler", daemon=True)
        self._create_app = create_app
        self._interval = interval
        self._stop_event = threading.Event()
        self.holder = leases.holder_id()
        # Renewed every tick; a holder that stops ticking loses it after three missed ticks.
        self._lease_ttl = dt.timedelta(seconds=max(3 * interval, 30))
        self._last_retention: dt.datetime | None = None

    def run(self) -> None:
        # Its own app, so its own engine: no connection is shared with (or forked into) a worker.
        app = self._create_app()
        while True:
            try:
                with app.app_context():
                    self._tick_if_leader()
            except Exception:  # noqa: BLE001 - keep the scheduler alive; the next tick retries
                log.exception("scheduler tick failed")
            if self._stop_event.wait(self._interval):
                self._release(app)
                return

    def _tick_if_leader(self) -> None:
        now = runtime.now()
        if not leases.acquire(db.session, LEASE, self.holder, now, self._lease_ttl):
            self._last_retention = None  # should the lease come here, retention runs at once
            return
        result = tick()
        if result.runs or result.reminders or result.delivered or result.breaches:
            log.info(
                "scheduler tick",
                runs=result.runs,
                reminders=result.reminders,
                delivered=result.delivered,
                breaches=result.breaches,
            )
        if self._last_retention is None or now - self._last_retention >= RETENTION_INTERVAL:
            self._last_retention = now
            purged = retention.run_retention(db.session, runtime.keyring(), runtime.convenants(), now)
            if purged.total or purged.shares_deleted:
                log.info("retention run", purged=purged.total, keys=purged.keys_destroyed)

    def _release(self, app: Flask) -> None:
        try:
            with app.app_context():
                leases.release(db.session, LEASE, self.holder)
        except Exception:  # noqa: BLE001 - the lease then simply expires
            log.warning("scheduler lease not released")

    def stop(self) -> None:
        self._stop_event.set()
