"""Who is looking: the officer of a review session, kept server-side.

Sessions: the signed cookie carries only a random token; the row of `review_sessions` with its
hash says whose session it is and whether it still counts. A copied cookie is therefore worth
nothing once the session has ended: at logout (that session), at a password change or
`broker users disable` (every session of the user), after PERMANENT_SESSION_LIFETIME without a
request, or REVIEW_SESSION_MAX_LIFETIME after logging in.

The review interface and `GET /api/v1/audit/entries` both read the officer from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import current_app, g, session
from sqlalchemy import delete

from audit.entry import Actor
from broker.app import runtime
from broker.app.extensions import db
from broker.auditing.entries import Viewer
from broker.models import ReviewSession, User
from broker.officers.accounts import BROKER_OFFICER, ROLES
from broker.parties import limits

SESSION_TOKEN = "session"
SESSION_CSRF = "csrf"
# last_seen_at is written at most this often: idle expiry is that much coarse, and a page view
# is not a database write.
TOUCH_INTERVAL = dt.timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _expired(row: ReviewSession, now: dt.datetime) -> bool:
    idle: dt.timedelta = current_app.permanent_session_lifetime
    absolute = dt.timedelta(seconds=int(current_app.config["REVIEW_SESSION_MAX_LIFETIME"]))
    return now - row.last_seen_at > idle or now - row.created_at > absolute


def _session_row() -> ReviewSession | None:
    """The live row of this cookie's session, or None (no token, unknown, ended or expired)."""
    token = session.get(SESSION_TOKEN)
    if not isinstance(token, str) or not token:
        return None
    row = db.session.get(ReviewSession, token_hash(token))
    if row is None or row.ended_at is not None or _expired(row, runtime.now()):
        return None
    return row


def current_officer() -> User | None:
    """Return the active user of this session, or None.

    The session must be a live row (not ended, not expired) of a user who is not disabled.
    """
    if "officer" not in g:
        row = _session_row()
        user = db.session.get(User, row.username) if row is not None else None
        if user is not None and (user.disabled_at is not None or user.role not in ROLES):
            user = None
        if row is not None and user is not None:
            _touch(row)
        g.officer = user
        g.review_session = row if user is not None else None
    officer: User | None = g.officer
    return officer


def _touch(row: ReviewSession) -> None:
    now = runtime.now()
    if now - row.last_seen_at < TOUCH_INTERVAL:
        return
    pending = bool(db.session.new or db.session.dirty or db.session.deleted)
    row.last_seen_at = now
    if not pending:  # else it is committed with the request's own changes
        db.session.commit()


def officer_viewer(user: User) -> Viewer:
    """What `user` may see: every entry for the broker's officer, else their party's."""
    actor = Actor(type="user", id=user.username, party=user.party_id or None)
    return Viewer(actor=actor, party=None if user.role == BROKER_OFFICER else user.party_id)


def log_in(user: User) -> None:
    """Start a fresh session for `user` (in the caller's transaction): a new token and row, and
    nothing of the anonymous session survives (no session fixation)."""
    token = secrets.token_urlsafe(32)
    now = runtime.now()
    row = ReviewSession(
        token_hash=token_hash(token), username=user.username, address=limits.client_address()[:100],
        created_at=now, last_seen_at=now, ended_at=None,
    )
    db.session.add(row)
    # Rows long past their lifetime only served to remember the addresses the officer uses.
    db.session.execute(
        delete(ReviewSession).where(
            ReviewSession.username == user.username,
            ReviewSession.created_at < now - dt.timedelta(days=limits.KNOWN_ADDRESS_DAYS),
        )
    )
    session.clear()
    session.permanent = True
    session[SESSION_TOKEN] = token
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    g.officer, g.review_session = user, row


def log_out() -> None:
    """End this session (in the caller's transaction) and empty the cookie."""
    row = g.get("review_session") or _session_row()
    if row is not None and row.ended_at is None:
        row.ended_at = runtime.now()
    session.clear()
    g.officer, g.review_session = None, None
