"""Database tables, one module per capability. The schema itself is created by Alembic migrations,
never by `create_all`; every table is imported here so that `Base.metadata` knows them all.
"""

from broker.models.audit import AuditCheckpoint, AuditEntryRow, AuditNode, RegisterActivity
from broker.models.base import Base, UTCDateTime, table
from broker.models.breaches import Breach, BreachEvent, BreachParty, PartySuspension
from broker.models.exchange import Delivery, DeliveryRecord, IdempotencyKey, Record, Submission
from broker.models.jobs import Lease
from broker.models.keys import DataKey, KeyMaterial
from broker.models.matching import MatchRun, QuarterList
from broker.models.officers import ReviewSession, User
from broker.models.parties import AssertionJti, Client, OutboxAttempt, OutboxEntry, PartyContact, SignInFailure, Webhook
from broker.models.rights import CaseEnding, SubjectRequest, SubjectRestriction

__all__ = [
    "AssertionJti",
    "AuditCheckpoint",
    "AuditEntryRow",
    "AuditNode",
    "Base",
    "Breach",
    "BreachEvent",
    "BreachParty",
    "CaseEnding",
    "Client",
    "DataKey",
    "Delivery",
    "DeliveryRecord",
    "IdempotencyKey",
    "KeyMaterial",
    "Lease",
    "MatchRun",
    "OutboxAttempt",
    "OutboxEntry",
    "PartyContact",
    "PartySuspension",
    "QuarterList",
    "Record",
    "RegisterActivity",
    "ReviewSession",
    "SignInFailure",
    "SubjectRequest",
    "SubjectRestriction",
    "Submission",
    "UTCDateTime",
    "User",
    "Webhook",
    "table",
]
