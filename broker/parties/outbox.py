"""The outbox: messages to parties, delivered by signed webhook or by e-mail, with retries.

An entry is written in the transaction of whatever caused it, then a worker delivers it. Every
attempt is kept. A webhook entry goes to its party's webhook with an HMAC signature; the secret
that signs it is wrapped by the master key, because the broker must be able to use it again (a
hash would not do). An e-mail entry goes to its own address, rendered by `broker.parties.mail`; it waits
while no mailer is configured. Both channels share the back-off (1 minute doubling to 6 hours)
and keep trying for a week: a receiver down for hours or days loses nothing. Only an entry still
undelivered a week after it was queued is abandoned, with every attempt kept to show why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import smtplib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.models import OutboxAttempt, OutboxEntry, Webhook
from broker.parties.mail import DEFAULT_SENDER, Mailer, compose
from keys.envelope import unwrap_key, wrap_key

SIGNATURE_HEADER = "X-Broker-Signature"
FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_WAIT = dt.timedelta(hours=6)
KEEP_TRYING = dt.timedelta(days=7)
TIMEOUT_SECONDS = 10
WEBHOOK = "webhook"
EMAIL = "email"
CHANNELS = (WEBHOOK, EMAIL)
SMTP_OK = 250

# (url, body, headers) -> HTTP status; raises OSError when the receiver cannot be reached.
Poster = Callable[[str, bytes, dict[str, str]], int]
# What one try gave: (where it went, HTTP or SMTP status or None, error or None).
Outcome = tuple[str, int | None, str | None]


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
    session: Session,
    *,
    party_id: str,
    topic: str,
    dedupe_key: str,
    payload: dict[str, Any],
    now: dt.datetime,
    channel: str = WEBHOOK,
    address: str | None = None,
) -> int:
    """Queue a message once per `dedupe_key`; return 1 if queued, 0 if it already was.

    A webhook message goes to the party's webhook; an e-mail message (`channel="email"`) to `address`.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    if (channel == EMAIL) != bool(address):
        raise ValueError("an e-mail message needs an address, and only an e-mail message has one")
    if session.scalar(select(OutboxEntry.id).where(OutboxEntry.dedupe_key == dedupe_key)) is not None:
        return 0
    entry = OutboxEntry(
        id=str(uuid.uuid4()),
        party_id=party_id,
        channel=channel,
        address=address,
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


def deliver_due(
    session: Session,
    master_key: bytes,
    now: dt.datetime,
    post: Poster = post_json,
    mailer: Mailer | None = None,
    sender: str = DEFAULT_SENDER,
) -> int:
    """Try every due entry once; commit per entry; return how many arrived.

    Webhook entries wait while their party has no webhook, e-mail entries while there is no `mailer`.
    """
    ready = and_(OutboxEntry.channel == WEBHOOK, Webhook.party_id.is_not(None))
    if mailer is not None:
        ready = or_(ready, OutboxEntry.channel == EMAIL)
    due = session.scalars(
        select(OutboxEntry)
        .outerjoin(Webhook, Webhook.party_id == OutboxEntry.party_id)
        .where(
            OutboxEntry.delivered_at.is_(None),
            OutboxEntry.abandoned_at.is_(None),
            OutboxEntry.next_attempt_at <= now,
            ready,
        )
        .order_by(OutboxEntry.created_at)
    ).all()
    delivered = 0
    for entry in due:
        if entry.channel == EMAIL:
            assert mailer is not None
            url, status, error = _send_email(entry, now, mailer, sender)
        else:
            url, status, error = _post_webhook(session, master_key, entry, post)
        delivered += _record(session, entry, now, url, status, error)
        session.commit()
    return delivered


def _post_webhook(session: Session, master_key: bytes, entry: OutboxEntry, post: Poster) -> Outcome:
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
    try:
        return hook.url, post(hook.url, body, headers), None
    except OSError as e:
        return hook.url, None, f"{type(e).__name__}: {e}"[:300]


def _send_email(entry: OutboxEntry, now: dt.datetime, mailer: Mailer, sender: str) -> Outcome:
    assert entry.address is not None
    url = f"mailto:{entry.address}"
    try:
        message = compose(entry.topic, entry.payload, entry.address, sender, now=now, delivery_id=entry.id)
    except ValueError as e:
        # A payload that cannot be rendered fails like an unreachable server: recorded, retried, in the end abandoned.
        return url, None, f"{type(e).__name__}: {e}"[:300]
    try:
        mailer(message)
    except (OSError, smtplib.SMTPException) as e:
        # The exception names the server's answer, never the message, so no breach details reach the error.
        return url, None, f"{type(e).__name__}: {e}"[:300]
    return url, SMTP_OK, None


def _record(
    session: Session, entry: OutboxEntry, now: dt.datetime, url: str, status: int | None, error: str | None
) -> int:
    """Keep the attempt; mark the entry delivered, or schedule its retry, or abandon it. Return 1 if delivered."""
    entry.attempts += 1
    session.add(
        OutboxAttempt(
            id=str(uuid.uuid4()), entry_id=entry.id, attempted_at=now, url=url, status_code=status, error=error
        )
    )
    if status is not None and 200 <= status < 300:
        entry.delivered_at = now
        return 1
    if now - entry.created_at >= KEEP_TRYING:
        entry.abandoned_at = now
    else:
        entry.next_attempt_at = now + backoff(entry.attempts)
    return 0
