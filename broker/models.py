"""Database tables. The schema itself is created by Alembic migrations, never by `create_all`."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Store UTC, return aware UTC datetimes on every database (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetimes are ambiguous; pass an aware one")
            value = value.astimezone(dt.UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def table(model: type[Base]) -> Table:
    """The Core table of a model, for executemany paths that bypass the ORM."""
    return cast(Table, model.__table__)


class Client(Base):
    """An OAuth client of one party, authenticated by its public key (private_key_jwt)."""

    __tablename__ = "clients"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100), index=True)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class AssertionJti(Base):
    """A client assertion's `jti`, kept until the assertion expires so it cannot be replayed."""

    __tablename__ = "assertion_jtis"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class Lease(Base):
    """A job's lease: only its holder runs the job until it expires (one scheduler for all workers)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[dt.datetime]


class SignInFailure(Base):
    """Recent failed token requests (per client and address) or logins (per username), for lockout."""

    __tablename__ = "sign_in_failures"
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


class KeyMaterial(Base):
    """A key wrapped by the master key: per-convenant KEKs and pseudonym keys, broker signing keys."""

    __tablename__ = "key_material"
    __table_args__ = (UniqueConstraint("scope", "purpose", "version"),)
    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(20))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


class DataKey(Base):
    """The key that encrypts one submission's records, wrapped by its convenant's KEK."""

    __tablename__ = "data_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kek_kid: Mapped[str] = mapped_column(ForeignKey("key_material.kid"), index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]
    destroyed_at: Mapped[dt.datetime | None]
    # Wrapped together with a share in the key vault (keys/vault.py); False for older keys.
    vaulted: Mapped[bool] = mapped_column(default=False)


class Submission(Base):
    """One accepted case submission or quarterly list."""

    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100), index=True)
    party_id: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id"))
    kind: Mapped[str] = mapped_column(String(20))
    quarter: Mapped[str | None] = mapped_column(String(7))
    record_count: Mapped[int]
    data_key_id: Mapped[str] = mapped_column(ForeignKey("data_keys.id"))
    received_at: Mapped[dt.datetime]
    # When its last record was purged (retention, ending, erasure); the row stays as a tombstone.
    purged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class Record(Base):
    """One pupil record of a submission: routing metadata in clear, the rest sealed."""

    __tablename__ = "records"
    __table_args__ = (Index("ix_records_pseudonym", "pseudonym"),)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category: Mapped[str] = mapped_column(String(50))
    gemeente: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    pseudonym_kid: Mapped[str] = mapped_column(String(100))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # A correction names the record it replaces, as "<submission_id>/<seq>".
    corrects: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # A routed record's keyed fingerprint (keys.pseudonym): an unchanged record is not delivered again.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Delivery(Base):
    """What the broker routed to one recipient party."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_recipient", "recipient_party_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    submission_id: Mapped[str | None] = mapped_column(ForeignKey("submissions.id"))
    sender_party_id: Mapped[str] = mapped_column(String(100))
    recipient_party_id: Mapped[str] = mapped_column(String(100))
    record_count: Mapped[int]
    created_at: Mapped[dt.datetime]
    fetched_at: Mapped[dt.datetime | None]
    acked_at: Mapped[dt.datetime | None]
    # A match delivery's counts of every group, with its quarter and result version.
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # When its records were purged (retention, ending, erasure); the row stays as a tombstone.
    purged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class DeliveryRecord(Base):
    """Which stored records make up a delivery."""

    __tablename__ = "delivery_records"
    __table_args__ = (
        ForeignKeyConstraint(
            ["submission_id", "seq"], ["records.submission_id", "records.seq"], name="fk_delivery_records_record"
        ),
    )
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class IdempotencyKey(Base):
    """The answer to a submission sent with an Idempotency-Key, replayed for the same key and body.

    The key itself is not kept, only its SHA-256 (it is what a caller typed); the answer holds ids,
    counts and a receipt, never a BSN.
    """

    __tablename__ = "idempotency_keys"
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class AuditEntryRow(Base):
    """One sealed audit entry. Append-only: database triggers refuse UPDATE and DELETE.

    The canonical bytes are the record; the other columns are copies of its fields for search.
    """

    __tablename__ = "audit_entries"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    processing_activity_id: Mapped[str] = mapped_column(String(300), index=True)
    data_subject_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(100))
    actor_party: Mapped[str | None] = mapped_column(String(100))
    parties: Mapped[str] = mapped_column(String(500))
    convenant_id: Mapped[str | None] = mapped_column(String(100))
    start_time: Mapped[dt.datetime] = mapped_column(index=True)
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditNode(Base):
    """A perfect Merkle subtree hash (level >= 1), kept so proofs need O(log n) reads."""

    __tablename__ = "audit_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpoint(Base):
    """A signed checkpoint (C2SP tlog-checkpoint) of the audit log at one size."""

    __tablename__ = "audit_checkpoints"
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[dt.datetime]


class RegisterActivity(Base):
    """One version of a processing activity of the AVG art. 30 register; its text never changes."""

    __tablename__ = "register_activities"
    uri: Mapped[str] = mapped_column(String(300), primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))
    activity: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    digest: Mapped[str] = mapped_column(String(80))
    text: Mapped[dict] = mapped_column(JSON)
    registered_at: Mapped[dt.datetime]


class User(Base):
    """A privacy officer of the review interface."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(40))
    party_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    disabled_at: Mapped[dt.datetime | None]
    # Where breach alerts for this officer go; without one the officer sees them in the review UI only.
    email: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ReviewSession(Base):
    """One login to the review interface. The cookie carries a random token; only its hash is kept,
    so a copy of the table opens no session. An ended row stays until it is old (known addresses)."""

    __tablename__ = "review_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    address: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]


# -- quarterly matching (issue 4) ------------------------------------------------------------------


class QuarterList(Base):
    """One version of a party's quarterly list: the submission that holds it, numbered per party."""

    __tablename__ = "quarter_lists"
    __table_args__ = (UniqueConstraint("convenant_id", "quarter", "party_id", "version"),)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    quarter: Mapped[str] = mapped_column(String(7))
    party_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime]


class MatchRun(Base):
    """One version of a quarter's match result. Inserted first: the unique version is a lock too."""

    __tablename__ = "match_runs"
    __table_args__ = (UniqueConstraint("convenant_id", "quarter", "version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    quarter: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(Integer)
    supersedes: Mapped[str | None] = mapped_column(String(36))
    trigger: Mapped[str] = mapped_column(String(20))
    inputs: Mapped[dict] = mapped_column(JSON)
    missing: Mapped[list] = mapped_column(JSON)
    report: Mapped[dict | None] = mapped_column(JSON)
    ran_at: Mapped[dt.datetime]


class Webhook(Base):
    """Where a party receives outbox messages; the HMAC secret is wrapped by the master key."""

    __tablename__ = "webhooks"
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


class OutboxEntry(Base):
    """A message to one party, delivered by webhook with retries (reminders, breach notices)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "delivered_at", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100))
    # "webhook" (to the party's webhook) or "email" (to `address`).
    channel: Mapped[str] = mapped_column(String(10), default="webhook")
    address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    topic: Mapped[str] = mapped_column(String(60))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[dt.datetime | None]
    abandoned_at: Mapped[dt.datetime | None]


class OutboxAttempt(Base):
    """One try to deliver an outbox entry: every attempt is kept."""

    __tablename__ = "outbox_attempts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("outbox.id"), index=True)
    attempted_at: Mapped[dt.datetime]
    url: Mapped[str] = mapped_column(String(500))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))


# -- breaches (issue 5) -----------------------------------------------------------------------------


class PartyContact(Base):
    """An e-mail address at which a party receives breach notifications."""

    __tablename__ = "party_contacts"
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    email: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[dt.datetime]


class Breach(Base):
    """A (suspected) personal data breach: what happened, its impact, its clock and its state."""

    __tablename__ = "breaches"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    convenant_id: Mapped[str] = mapped_column(String(100), index=True)
    # None: the breach happened at the broker itself.
    reporting_party_id: Mapped[str | None] = mapped_column(String(100))
    reported_by: Mapped[str] = mapped_column(String(100))
    reported_at: Mapped[dt.datetime]
    detected_at: Mapped[dt.datetime]
    notify_deadline: Mapped[dt.datetime]
    ap_deadline: Mapped[dt.datetime]
    description: Mapped[str] = mapped_column(Text)
    suspected_cause: Mapped[str] = mapped_column(Text)
    # Submission and delivery ids, a time window and subject pseudonyms (never a BSN).
    scope: Mapped[dict] = mapped_column(JSON)
    impact_computed: Mapped[dict] = mapped_column(JSON)
    impact: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), index=True)
    late_since: Mapped[dt.datetime | None]
    measures: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(100))
    trace_id: Mapped[str] = mapped_column(String(32))


class BreachParty(Base):
    """One controller in a breach: the reporter or an affected party, with its notice and AP decision."""

    __tablename__ = "breach_parties"
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    added_at: Mapped[dt.datetime]
    notified_at: Mapped[dt.datetime | None]
    notified_via: Mapped[str | None] = mapped_column(String(20))
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    ap_reported: Mapped[bool | None]
    ap_reference: Mapped[str | None] = mapped_column(String(100))
    ap_reported_at: Mapped[dt.datetime | None]
    ap_reasoning: Mapped[str | None] = mapped_column(Text)
    ap_decided_at: Mapped[dt.datetime | None]
    ap_decided_by: Mapped[str | None] = mapped_column(String(100))
    ap_escalated_at: Mapped[dt.datetime | None]


class BreachEvent(Base):
    """One step in a breach's history, for its timeline (the audit log holds the proof)."""

    __tablename__ = "breach_events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # the order of events within one breach
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(JSON)


class PartySuspension(Base):
    """Containment: a party's clients suspended while a breach is open."""

    __tablename__ = "party_suspensions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100), index=True)
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), index=True)
    started_at: Mapped[dt.datetime]
    started_by: Mapped[str] = mapped_column(String(100))
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(100))


# -- lifecycle of a case: ending, rights, retention (issue 6) --------------------------------------


class CaseEnding(Base):
    """A party ended its case about a pupil, with one of the convenant's ending reasons."""

    __tablename__ = "case_endings"
    __table_args__ = (Index("ix_case_endings_subject", "convenant_id", "pseudonym"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    party_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(60))
    ended_at: Mapped[dt.datetime]
    # The parties that received the pupil's data and got an end notice.
    notified: Mapped[list] = mapped_column(JSON)


class SubjectRestriction(Base):
    """AVG art. 18: while active, nothing about this pupil is routed."""

    __tablename__ = "subject_restrictions"
    __table_args__ = (Index("ix_subject_restrictions_subject", "convenant_id", "pseudonym"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime]
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(100))


class SubjectRequest(Base):
    """A data subject's request (AVG art. 15-21) as received by a party, and where it was forwarded."""

    __tablename__ = "subject_requests"
    __table_args__ = (Index("ix_subject_requests_subject", "convenant_id", "pseudonym"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    received_by: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[dt.datetime]
    registered_at: Mapped[dt.datetime]
    forwarded_to: Mapped[list] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
