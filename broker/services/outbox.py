"""The outbox: messages to parties, delivered by webhook with an HMAC signature and retries.

An entry is written in the transaction of whatever caused it, then a worker delivers it. Every
attempt is kept. The secret that signs a party's webhooks is wrapped by the master key, because
the broker must be able to use it again (a hash would not do).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.models import OutboxAttempt, OutboxEntry, Webhook
from keys.envelope import unwrap_key, wrap_key

SIGNATURE_HEADER = "X-Broker-Signature"
FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_WAIT = dt.timedelta(hours=6)
MAX_ATTEMPTS = 12
TIMEOUT_SECONDS = 10

# (url, body, headers) -> HTTP status; raises OSError when the receiver cannot be reached.
Poster = Callable[[str, bytes, dict[str, str]], int]


def _context(party_id: str) -> str:
    return f"webhook/{party_id}"


def set_webhook(session: Session, master_key: bytes, party_id: str, url: str, now: dt.datetime) -> str:
    """Register (or replace) a party's webhook URL with a fresh secret; return the secret once."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("the webhook URL must be http(s)")
    secret = secrets.token_urlsafe(32)
    wrapped = wrap_key(master_key, secret.encode(), _context(party_id))
    row = session.get(Webhook, party_id)
    if row is None:
        session.add(Webhook(party_id=party_id, url=url, wrapped_secret=wrapped, created_at=now))
    else:
        row.url, row.wrapped_secret, row.created_at = url, wrapped, now
    return secret


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def enqueue(
    session: Session, *, party_id: str, topic: str, dedupe_key: str, payload: dict[str, Any], now: dt.datetime
) -> int:
    """Queue a message once per `dedupe_key`; return 1 if queued, 0 if it already was."""
    if session.scalar(select(OutboxEntry.id).where(OutboxEntry.dedupe_key == dedupe_key)) is not None:
        return 0
    entry = OutboxEntry(
        id=str(uuid.uuid4()),
        party_id=party_id,
        topic=topic,
        dedupe_key=dedupe_key,
        payload=payload,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
        delivered_at=None,
        abandoned_at=None,
    )
    try:
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        return 0  # another worker queued it first
    return 1


def post_json(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with the standard library; a non-2xx answer is returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the n-th failed attempt: 1, 2, 4, ... minutes, at most six hours."""
    return min(FIRST_RETRY * (2 ** (attempts - 1)), LONGEST_WAIT)


def deliver_due(session: Session, master_key: bytes, now: dt.datetime, post: Poster = post_json) -> int:
    """Try every due entry of a party with a webhook once; commit per entry; return how many arrived."""
    due = session.scalars(
        select(OutboxEntry)
        .join(Webhook, Webhook.party_id == OutboxEntry.party_id)
        .where(
            OutboxEntry.delivered_at.is_(None),
            OutboxEntry.abandoned_at.is_(None),
            OutboxEntry.next_attempt_at <= now,
        )
        .order_by(OutboxEntry.created_at)
    ).all()
    delivered = 0
    for entry in due:
        delivered += _attempt(session, master_key, entry, now, post)
        session.commit()
    return delivered


def _attempt(session: Session, master_key: bytes, entry: OutboxEntry, now: dt.datetime, post: Poster) -> int:
    hook = session.get(Webhook, entry.party_id)
    assert hook is not None
    body = json.dumps({"id": entry.id, "topic": entry.topic, **entry.payload}, separators=(",", ":")).encode()
    secret = unwrap_key(master_key, hook.wrapped_secret, _context(entry.party_id))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        "X-Broker-Event": entry.topic,
        "X-Broker-Delivery": entry.id,
    }
    status: int | None = None
    error: str | None = None
    try:
        status = post(hook.url, body, headers)
    except OSError as e:
        error = f"{type(e).__name__}: {e}"[:300]
    entry.attempts += 1
    session.add(
        OutboxAttempt(
            id=str(uuid.uuid4()), entry_id=entry.id, attempted_at=now, url=hook.url, status_code=status, error=error
        )
    )
    if status is not None and 200 <= status < 300:
        entry.delivered_at = now
        return 1
    if entry.attempts >= MAX_ATTEMPTS:
        entry.abandoned_at = now
    else:
        entry.next_attempt_at = now + backoff(entry.attempts)
    return 0
