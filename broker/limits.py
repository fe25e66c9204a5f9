"""Abuse of the two sign-in doors, the token endpoint and the review login.

Two defences, both audited:
- **Request rates per address** (flask-limiter): RATELIMIT_TOKEN and RATELIMIT_LOGIN, answered
  with 429 and Retry-After. The counts live in RATELIMIT_STORAGE_URI: memory:// is per worker;
  give several workers or instances a shared store (redis://, memcached://) for one count.
- **Lockout after repeated failures**, in the database, so every worker and instance sees it:
  LOCKOUT_FAILURES failures within LOCKOUT_WINDOW seconds lock the subject for LOCKOUT_SECONDS.
  The subject of a token request is the client it claims *and* the address it comes from: a
  stranger who knows a party's client_id must not be able to lock the party's own system out.
  The subject of a login is the username (existing or not, so a lockout tells nothing about
  which accounts exist).
Every refusal writes an audit entry with the broker as actor (the claimed identity is unproven),
and so does every lockout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.entry import Actor
from broker import runtime
from broker.auditing import Recorder, broker_activity, commit_audited
from broker.models import SignInFailure

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


def login_subject(username: str) -> str:
    """What failed logins of `username` count against."""
    return username


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


def refuse(
    session: Session, kind: str, subject: str | None, reason: str, attributes: dict[str, Any]
) -> Lockout | None:
    """Audit a failed sign-in and count it against `subject`; the lockout it causes, if it does.

    Rolls back whatever the failed attempt did, then commits the audit entry and the count.
    """
    session.rollback()
    now = runtime.now()
    recorder = Recorder(actor=Actor(type="system", id=f"{kind}-endpoint"), started=now)
    activity = broker_activity("token" if kind == TOKEN else "user")
    recorder.add(f"{kind}.refused", activity, root=True, status="Error",
                 attributes={**attributes, "reason": reason, "address": client_address()})
    lockout = None
    if subject is not None:
        lockout = _count(session, kind, subject[:200], now)
        if lockout is not None:
            recorder.add(
                f"{kind}.locked_out", activity, status="Error",
                attributes={**attributes, "address": client_address(), "until": lockout.until.isoformat()},
            )
    commit_audited(session, recorder)
    return lockout


def _count(session: Session, kind: str, subject: str, now: dt.datetime) -> Lockout | None:
    limit, window, duration = _settings()
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
    if now - row.window_started > window:
        row.failures, row.window_started, row.locked_until = 0, now, None
    row.failures += 1
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
