"""Write the audit entries of one processing step in that step's own transaction.

Every view, command and job that processes data runs it as `with audited_step(session, actor) as
step:`; the step records its entries (`step.record`) while it works, and on leaving the block they
are appended and the transaction commits together, or neither happens (fail closed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from audit.entry import (
    Actor,
    AuditEntry,
    ForeignOperation,
    SealedEntry,
    format_time,
    new_span_id,
    new_trace_id,
)
from broker.app import metrics, runtime
from broker.app.errors import RETRY_AFTER, BrokerError, ServiceUnavailable
from broker.auditing.store import AuditIntegrityError, CheckpointSigner, append_entries, sign_checkpoint
from broker.models import AuditCheckpoint
from schemas.register import BROKER_SCOPE, Register

log = structlog.get_logger("broker.audit")

SUBJECT_ID_TYPE = "convenant-pseudoniem"
CHECKPOINT_PURPOSE = "audit-checkpoint-signing"
# A rule code as the broker writes them (`invalid_bsn`, `forbidden_content.gezondheid`): never caller text.
RULE_CODE = re.compile(r"[a-z][a-z_]{0,59}(\.[a-z][a-z0-9_]{0,59})?")
# W3C Trace Context: version ff is invalid.
TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass
class Recorder:
    """The entries of one step: one trace, a root span, one entry per data subject."""

    actor: Actor
    started: dt.datetime
    foreign: ForeignOperation | None = None
    trace_id: str = field(default_factory=new_trace_id)
    root_span: str = field(default_factory=new_span_id)
    pending: list[AuditEntry] = field(default_factory=list)

    def add(
        self,
        name: str,
        activity: str,
        *,
        subjects: Iterable[str] = (),
        subject_type: str = SUBJECT_ID_TYPE,
        parties: Sequence[str] = (),
        convenant_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        status: str = "Ok",
        root: bool = False,
        actor: Actor | None = None,
    ) -> None:
        """Add one entry, or one per data subject when `subjects` are given.

        The entry names the acting party and `parties` as the parties that took part: each of
        them may see it. `actor` records a step the broker takes in the same trace under its own
        name (the step's actor then is no party of the entry unless `parties` names it).
        """
        actor = actor or self.actor
        start, end = format_time(self.started), format_time(runtime.now())
        involved = tuple(dict.fromkeys(p for p in (actor.party, *parties) if p))
        common: dict[str, Any] = {
            "trace_id": self.trace_id,
            "name": name,
            "start_time": start,
            "end_time": max(start, end),
            "status": status,
            "processing_activity_id": activity,
            "actor": actor,
            "foreign_operation": self.foreign,
            "parties": involved,
            "convenant_id": convenant_id,
            "attributes": attributes or {},
        }
        subject_list = list(subjects)
        if not subject_list:
            span, parent = (self.root_span, None) if root else (new_span_id(), self.root_span)
            self.pending.append(AuditEntry(span_id=span, parent_span_id=parent, **common))
            return
        template = AuditEntry(span_id=self.root_span, parent_span_id=self.root_span, **common)
        self.pending.extend(template.for_subject(new_span_id(), subject, subject_type) for subject in subject_list)


def refusal_attributes(refusal: BrokerError) -> dict[str, Any]:
    """What the audit entry of a refused step says about the refusal: its status, and the rule codes it
    named with how often; never a field name, a value or a message, which may hold what the caller typed."""
    counts: dict[str, int] = {}
    for error in refusal.errors:
        code = error.get("code") if isinstance(error, dict) else None
        key = code if isinstance(code, str) and RULE_CODE.fullmatch(code) else "other"
        counts[key] = counts.get(key, 0) + 1
    return {
        "http_status": refusal.status,
        "errors": len(refusal.errors),
        "codes": sorted(counts),
        "code_counts": dict(sorted(counts.items())),
    }


def register() -> Register:
    result: Register = current_app.extensions["broker.register"]
    return result


def activity(scope: str, step: str) -> str:
    """The processing activity URI under which `step` of `scope` is done."""
    return register().uri(scope, step)


def broker_activity(step: str) -> str:
    return activity(BROKER_SCOPE, step)


def request_recorder(actor: Actor) -> Recorder:
    """A recorder for the current request; a W3C traceparent names the caller's operation."""
    foreign = None
    match = TRACEPARENT.match(request.headers.get("traceparent", ""))
    if match and actor.party:
        try:
            foreign = ForeignOperation(trace_id=match[1], span_id=match[2], party=actor.party)
        except ValueError:
            foreign = None  # an invalid traceparent (all-zero ids) is ignored, as W3C prescribes
    return Recorder(actor=actor, started=runtime.now(), foreign=foreign)


def checkpoint_signer() -> CheckpointSigner:
    key = runtime.keyring().signing_key(CHECKPOINT_PURPOSE, "Ed25519")
    private = key.private_key
    assert isinstance(private, Ed25519PrivateKey)
    return CheckpointSigner(current_app.config["AUDIT_ORIGIN"], private)


@dataclass(frozen=True)
class Committed:
    sealed: list[SealedEntry]
    checkpoint: AuditCheckpoint


@dataclass
class Step:
    """One audited unit of work: its session, its moment, and the entries it records.

    Made only by `audited_step`, which owns the transaction: what the step changes and the
    entries it records are committed together, or neither is.
    """

    session: Session
    recorder: Recorder
    now: dt.datetime
    committed: Committed | None = None

    def record(self, name: str, activity: str, **details: Any) -> None:
        """Record one entry (or one per subject) of this step; see `Recorder.add`."""
        self.recorder.add(name, activity, **details)


Refusal = Callable[[Recorder, BrokerError], None]


@contextmanager
def audited_step(
    session: Session,
    actor: Actor,
    *,
    on_refusal: Refusal | None = None,
    now: dt.datetime | None = None,
) -> Iterator[Step]:
    """Run one processing step as a unit of work that commits with its audit entries.

    `actor` is who acts (in a request the recorder also carries the caller's W3C trace). On leaving
    the block the step's changes and entries are committed in one transaction with a signed
    checkpoint, or, if the audit write fails, rolled back and refused with a 503 (fail closed).
    A `BrokerError` rolls everything back; `on_refusal` may then record the refusal, which is
    committed alone before the error goes on. Any other exception rolls back. A step that
    recorded nothing commits as a plain transaction. `now` is the step's moment when a job runs
    it for a given time (default: the clock's now).
    """
    now = now or runtime.now()
    recorder = _recorder_for(actor, now)
    step = Step(session=session, recorder=recorder, now=now)
    try:
        yield step
    except BrokerError as refusal:
        session.rollback()
        recorder.pending.clear()
        if on_refusal is not None:
            on_refusal(recorder, refusal)
            step.committed = _commit_audited(session, recorder)
        raise
    except BaseException:
        session.rollback()
        recorder.pending.clear()
        raise
    if recorder.pending:
        step.committed = _commit_audited(session, recorder)
    else:
        session.commit()


def _recorder_for(actor: Actor, now: dt.datetime) -> Recorder:
    """The recorder of a step by `actor`: in a request, with the caller's traceparent."""
    if has_request_context():
        recorder = request_recorder(actor)
        recorder.started = now
        return recorder
    return Recorder(actor=actor, started=now)


def _commit_audited(session: Session, recorder: Recorder) -> Committed:
    """Append the recorder's entries and commit with the step, or roll both back and refuse.

    Every step ends with a signed checkpoint, so no entry stays uncovered by a signature.
    """
    try:
        sealed = append_entries(session, recorder.pending)
        signed = sign_checkpoint(session, checkpoint_signer(), runtime.now())
        session.commit()
    except (SQLAlchemyError, AuditIntegrityError) as e:
        session.rollback()
        metrics.AUDIT_REFUSALS.labels(type(e).__name__).inc()
        log.error("audit write failed; step refused", error=type(e).__name__)
        raise ServiceUnavailable(
            "Het logboek kon niet worden bijgewerkt; de verwerking is niet uitgevoerd. Probeer het later opnieuw.",
            headers={"Retry-After": RETRY_AFTER},
        ) from e
    metrics.committed(recorder.pending)
    recorder.pending.clear()
    return Committed(sealed, signed)


def cli_actor() -> Actor:
    """The administrator running a `broker` command."""
    import getpass

    return Actor(type="user", id=f"cli:{getpass.getuser()}")



def sync_register(session: Session) -> list[str]:
    """Store new activity versions; refuse a changed text under an existing id.

    An activity id must always mean one fixed text, so whoever edits a definition file must
    bump the activity's version. Returns the ids added.
    """
    from sqlalchemy import select

    from broker.models import RegisterActivity

    stored = {row.uri: row for row in session.scalars(select(RegisterActivity))}
    added = []
    for item in register().activities:
        row = stored.get(item.uri)
        if row is None:
            session.add(
                RegisterActivity(
                    uri=item.uri,
                    scope=item.scope,
                    activity=item.id,
                    version=item.version,
                    digest=item.digest,
                    text=dict(item.text),
                    registered_at=runtime.now(),
                )
            )
            added.append(item.uri)
        elif row.digest != item.digest:
            raise RuntimeError(f"the text of {item.uri} changed without a new version; bump `version` in its file")
    return added
