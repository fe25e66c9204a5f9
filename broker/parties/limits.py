"""Abuse of the two sign-in doors, the token endpoint and the review login.

Two defences, both audited:
- **Request rates per address** (flask-limiter): RATELIMIT_TOKEN and RATELIMIT_LOGIN, answered
  with 429 and Retry-After. The counts live in RATELIMIT_STORAGE_URI: memory:// is per worker;
  give several workers or instances a shared store (redis://, memcached://) for one count.
- **Lockout after repeated failures**, in the database, so every worker and instance sees it:
  LOCKOUT_FAILURES failures within LOCKOUT_WINDOW seconds lock the subject for LOCKOUT_SECONDS.
  The subject of a token request is the client it claims *and* the address it comes from: a
  stranger who knows a party's client_id must not be able to lock the party's own system out.
  The subject of a login is the username *and* the address, for the same reason: a stranger must
  not be able to lock the privacy officer out during a breach. Usernames count whether or not
  they exist, so a lockout tells nothing about which accounts exist.
- **Slowdown per username**, against guessing from many addresses: LOGIN_SLOWDOWN_FAILURES
  failures of one username within LOCKOUT_WINDOW, from all addresses together, make every further
  failure delay the next attempt (1, 2, 4 ... up to LOGIN_SLOWDOWN_MAX seconds). The delay holds
  only for addresses the officer has not logged in from in the last KNOWN_ADDRESS_DAYS, so it
  never keeps an officer out of their own desk.
Every refusal writes an audit entry with the broker as actor (the claimed identity is unproven),
and so does every lockout and the start of a slowdown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.entry import Actor
from broker.auditing.step import audited_step, broker_activity
from broker.models import ReviewSession, SignInFailure

TOKEN = "token"
LOGIN = "login"

limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


TOO_MANY = "Te veel aanvragen vanaf dit adres; probeer het later opnieuw."


def token_rate() -> str:
    value: str = current_app.config["RATELIMIT_TOKEN"]
    return value


def login_rate() -> str:
    value: str = current_app.config["RATELIMIT_LOGIN"]
    return value


def client_address() -> str:
    return request.remote_addr or "onbekend"


LOGIN_USER = "login-user"  # a username's failures from every address, for the slowdown
KNOWN_ADDRESS_DAYS = 90


def login_subject(username: str) -> str:
    """What failed logins of `username` from this address count against (no address has a space)."""
    return f"{client_address()} {username}"


@dataclass(frozen=True)
class Lockout:
    until: dt.datetime

    def retry_after(self, now: dt.datetime) -> int:
        return max(1, int((self.until - now).total_seconds()) + 1)


def _settings() -> tuple[int, dt.timedelta, dt.timedelta]:
    cfg = current_app.config
    return (
        int(cfg["LOCKOUT_FAILURES"]),
        dt.timedelta(seconds=int(cfg["LOCKOUT_WINDOW"])),
        dt.timedelta(seconds=int(cfg["LOCKOUT_SECONDS"])),
    )


def locked(session: Session, kind: str, subject: str, now: dt.datetime) -> Lockout | None:
    """The lockout in force for `subject`, if any."""
    row = session.get(SignInFailure, (kind, subject[:200]))
    if row is not None and row.locked_until is not None and row.locked_until > now:
        return Lockout(row.locked_until)
    return None


def known_address(session: Session, username: str, now: dt.datetime) -> bool:
    """Whether `username` logged in from this address in the last KNOWN_ADDRESS_DAYS."""
    since = now - dt.timedelta(days=KNOWN_ADDRESS_DAYS)
    found = session.scalar(
        select(ReviewSession.token_hash).where(
            ReviewSession.username == username[:100],
            ReviewSession.address == client_address()[:100],
            ReviewSession.created_at >= since,
        ).limit(1)
    )
    return found is not None


def slowed(session: Session, username: str, now: dt.datetime) -> Lockout | None:
    """The wait before `username` may be tried again from an address it has not logged in from."""
    if known_address(session, username, now):
        return None
    return locked(session, LOGIN_USER, username, now)


def refuse(
    session: Session,
    kind: str,
    subject: str | None,
    reason: str,
    attributes: dict[str, Any],
    username: str | None = None,
) -> Lockout | None:
    """Audit a failed sign-in and count it against `subject` (and a login's `username` against its
    slowdown); the lockout it causes, if it does.

    Rolls back whatever the failed attempt did, then commits the audit entry and the counts.
    """
    session.rollback()
    activity = broker_activity("token" if kind == TOKEN else "user")
    lockout = None
    with audited_step(session, Actor(type="system", id=f"{kind}-endpoint")) as step:
        now = step.now
        step.record(f"{kind}.refused", activity, root=True, status="Error",
                    attributes={**attributes, "reason": reason, "address": client_address()})
        if subject is not None:
            lockout = _count(session, kind, subject[:200], now)
            if lockout is not None:
                step.record(
                    f"{kind}.locked_out", activity, status="Error",
                    attributes={**attributes, "address": client_address(), "until": lockout.until.isoformat()},
                )
        if username is not None:
            started = _count_slowdown(session, username[:200], now)
            if started is not None:
                step.record(
                    "login.slowed_down", activity, status="Error",
                    attributes={**attributes, "until": started.until.isoformat()},
                )
    return lockout


def _counted_row(session: Session, kind: str, subject: str, now: dt.datetime) -> SignInFailure:
    """The subject's row, locked, with this failure counted (a new window if the last has passed)."""
    key = (kind, subject)
    if session.get(SignInFailure, key) is None:
        # Two workers may count the subject's first failure at once: one insert wins, the other
        # then locks and counts the winner's row.
        try:
            with session.begin_nested():
                session.add(SignInFailure(kind=kind, subject=subject, failures=0, window_started=now))
        except IntegrityError:
            pass
    row = session.get(SignInFailure, key, with_for_update=True, populate_existing=True)
    assert row is not None
    if now - row.window_started > _settings()[1]:
        row.failures, row.window_started, row.locked_until = 0, now, None
    row.failures += 1
    return row


def _count_slowdown(session: Session, username: str, now: dt.datetime) -> Lockout | None:
    """Count a failure of `username` from any address; past the threshold each one delays the next
    attempt longer. Returns the delay when this failure started the slowdown."""
    threshold = int(current_app.config["LOGIN_SLOWDOWN_FAILURES"])
    row = _counted_row(session, LOGIN_USER, username, now)
    if row.failures < threshold:
        return None
    delay = min(2 ** min(row.failures - threshold, 30), int(current_app.config["LOGIN_SLOWDOWN_MAX"]))
    row.locked_until = now + dt.timedelta(seconds=delay)
    return Lockout(row.locked_until) if row.failures == threshold else None


def _count(session: Session, kind: str, subject: str, now: dt.datetime) -> Lockout | None:
    limit, _window, duration = _settings()
    row = _counted_row(session, kind, subject, now)
    if row.failures >= limit and (row.locked_until is None or row.locked_until <= now):
        row.locked_until = now + duration
        return Lockout(row.locked_until)
    return None


def succeeded(session: Session, kind: str, subject: str) -> None:
    """A successful sign-in wipes the subject's failures (in the caller's transaction)."""
    row = session.get(SignInFailure, (kind, subject[:200]))
    if row is not None:
        session.delete(row)


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
