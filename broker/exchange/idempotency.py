"""Idempotent submissions: the `Idempotency-Key` request header (IETF draft-ietf-httpapi-idempotency-key-header).

A party's system that did not hear the answer to a submission sends it again with the same key;
the broker answers as it did the first time and stores nothing twice. The same key with another
request body is refused (422), as the draft prescribes. A key is the caller's own: it is scoped
to its party, kept only as a SHA-256 and forgotten after `IDEMPOTENCY_TTL` seconds.

The key is claimed in the transaction that stores the submission, so a submission is never stored
without its key; the answer is added once that transaction committed. Should the process stop in
between, a retry is told (409) which submission the key stored, rather than storing it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from sqlalchemy import delete
from sqlalchemy.orm import Session

from broker.app.errors import BadRequest, Conflict, ValidationFailed
from broker.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# The draft's key is a Structured Field String ("..."); a bare token is taken as well. Printable ASCII.
KEY = re.compile(r'"?([\x20-\x21\x23-\x7e]{1,255})"?')


@dataclass(frozen=True)
class Claim:
    """A key this request brings and no earlier request used: to be stored with the submission."""

    party_id: str
    key_hash: str
    request_hash: str


@dataclass(frozen=True)
class Replay:
    """The stored answer to an earlier request with the same key and body."""

    body: dict[str, Any]
    status: int

    def response(self) -> tuple[dict[str, Any], int, dict[str, str]]:
        return self.body, self.status, {REPLAYED: "true"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _request_hash() -> str:
    """What makes two requests the same: method, route, query and body (the body read whole)."""
    query = "&".join(f"{k}={v}" for k, v in sorted(request.args.items(multi=True)))
    head = "\x00".join((request.method, request.path, query, request.mimetype)).encode()
    return _sha256(head + b"\x00" + request.get_data(cache=True))


def requested_key() -> str | None:
    """The Idempotency-Key the request carries, checked; None when it carries none."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    match = KEY.fullmatch(raw.strip())
    if match is None:
        raise BadRequest(
            "De Idempotency-Key is 1 tot 255 gewone tekens (ASCII), eventueel tussen aanhalingstekens.",
            errors=[
                {"record": None, "field": HEADER, "code": "invalid_idempotency_key", "message": "Ongeldige sleutel."}
            ],
        )
    return match[1]


def lookup(session: Session, party_id: str, now: dt.datetime) -> Claim | Replay | None:
    """Check the request's key: None without one, a Replay for a repeat, a Claim for a new key."""
    key = requested_key()
    if key is None:
        return None
    claim = Claim(party_id, _sha256(key.encode()), _request_hash())
    row = session.get(IdempotencyKey, (party_id, claim.key_hash))
    if row is not None and row.expires_at <= now:
        session.delete(row)
        session.flush()
        row = None
    if row is None:
        return claim
    if row.request_hash != claim.request_hash:
        raise ValidationFailed(
            "Deze Idempotency-Key is al gebruikt voor een ander verzoek; kies een nieuwe sleutel.",
            errors=[
                {
                    "record": None,
                    "field": HEADER,
                    "code": "idempotency_key_reused",
                    "message": "De sleutel hoort bij een verzoek met een andere inhoud.",
                }
            ],
        )
    if row.response is None or row.status is None:
        raise Conflict(
            "Een verzoek met deze Idempotency-Key is nog in behandeling of werd afgebroken nadat de inzending "
            f"{row.submission_id} was opgeslagen; die inzending staat, stuur haar niet opnieuw.",
            submission_id=row.submission_id,
        )
    return Replay(dict(row.response), row.status)


def reserve(session: Session, claim: Claim | None, submission_id: str, now: dt.datetime) -> None:
    """Store the key with the submission, in its transaction (nothing when the request has no key)."""
    if claim is None:
        return
    ttl = dt.timedelta(seconds=int(current_app.config["IDEMPOTENCY_TTL"]))
    session.add(
        IdempotencyKey(
            party_id=claim.party_id,
            key_hash=claim.key_hash,
            request_hash=claim.request_hash,
            submission_id=submission_id,
            status=None,
            response=None,
            created_at=now,
            expires_at=now + ttl,
        )
    )


def remember(session: Session, claim: Claim | None, body: dict[str, Any], status: int) -> None:
    """Keep the answer of a committed submission for the key's repeats."""
    if claim is None:
        return
    row = session.get(IdempotencyKey, (claim.party_id, claim.key_hash))
    if row is not None:
        row.response, row.status = body, status
        session.commit()


def forget_expired(session: Session, now: dt.datetime) -> int:
    """Delete the keys past their time (the retention job); return how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
