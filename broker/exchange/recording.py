"""The audit entries of a submission: accepted (a summary, one entry per record and per
recipient), or refused with rule codes and counts only."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from broker.app.errors import BrokerError
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.exchange.submission import KINDS, ROUTED_KINDS, Accepted
from schemas.convenant import Convenant


def activity_for(convenant: Convenant, kind: Any) -> str:
    try:
        return auditing.activity(convenant.id, kind if isinstance(kind, str) else "case")
    except LookupError:
        return auditing.activity(convenant.id, "case")


def audit_acceptance(recorder: Recorder, convenant: Convenant, accepted: Accepted) -> int:
    """Record an accepted submission: a summary entry, one entry per pupil, and one per pupil
    per recipient. Returns the summary's position among the recorder's entries."""
    position = audit_summary(recorder, convenant, accepted)
    submission = accepted.submission
    about = {"submission_id": submission.id, "kind": submission.kind}
    for category, subjects in accepted.by_category(range(len(accepted.pseudonyms))).items():
        recorder.add(
            "record.received",
            activity_for(convenant, submission.kind),
            subjects=subjects,
            convenant_id=convenant.id,
            attributes={**about, "category": category},
        )
    audit_routing(recorder, convenant, accepted)
    return position


def audit_summary(recorder: Recorder, convenant: Convenant, accepted: Accepted) -> int:
    """Record the summary entry of a stored submission; return its position among the recorder's entries."""
    submission = accepted.submission
    position = len(recorder.pending)
    recorder.add(
        "submission.accepted",
        activity_for(convenant, submission.kind),
        root=True,
        convenant_id=convenant.id,
        attributes={
            "submission_id": submission.id,
            "kind": submission.kind,
            "quarter": submission.quarter,
            "records": submission.record_count,
        },
    )
    return position


def audit_routing(recorder: Recorder, convenant: Convenant, accepted: Accepted) -> None:
    """Record per pupil per recipient what was delivered, and per pupil what was held back: by the
    sender's own restriction, or because it went to the recipient unchanged before."""
    submission = accepted.submission
    uri = activity_for(convenant, submission.kind)
    about = {"submission_id": submission.id, "kind": submission.kind}
    for delivery in accepted.deliveries:
        for category, subjects in accepted.by_category(accepted.routed[delivery.recipient_party_id]).items():
            recorder.add(
                "delivery.created",
                uri,
                subjects=subjects,
                parties=[delivery.recipient_party_id],
                convenant_id=convenant.id,
                attributes={
                    **about,
                    "delivery_id": delivery.id,
                    "recipient": delivery.recipient_party_id,
                    "category": category,
                },
            )
    for category, subjects in accepted.by_category(accepted.withheld).items():
        recorder.add(
            "record.withheld",
            uri,
            subjects=subjects,
            convenant_id=convenant.id,
            attributes={**about, "category": category, "reason": "restricted"},
        )
    by_recipient: dict[str, list[int]] = defaultdict(list)
    for seq, recipient in accepted.duplicates:
        by_recipient[recipient].append(seq)
    for recipient, seqs in sorted(by_recipient.items()):
        for category, subjects in accepted.by_category(seqs).items():
            recorder.add(
                "record.withheld",
                uri,
                subjects=subjects,
                convenant_id=convenant.id,
                attributes={**about, "category": category, "reason": "duplicate", "recipient": recipient},
            )


def audit_rejection(recorder: Recorder, convenant: Convenant, kind: Any, refusal: BrokerError) -> None:
    """Record a refused submission with codes and counts only: never the refused data, nor a kind the
    caller typed that is not one of the broker's (a closed set)."""
    known = kind if kind in (*KINDS, *ROUTED_KINDS) else None  # None: refused before a valid kind was read
    recorder.add(
        "submission.rejected",
        activity_for(convenant, known),
        root=True,
        status="Error",
        convenant_id=convenant.id,
        attributes={**auditing.refusal_attributes(refusal), "kind": known},
    )
