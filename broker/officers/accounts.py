"""Privacy officers' accounts for the review interface (the `broker users` commands: officers/cli.py).

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile). An account is never deleted, only disabled, so a username in the audit log always
names one person.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from broker.app import runtime
from broker.auditing.step import Step, broker_activity
from broker.models import ReviewSession, User
from broker.parties.mail import check_address

PARTY_OFFICER = "privacy-officer"
BROKER_OFFICER = "broker-officer"
ROLES = (PARTY_OFFICER, BROKER_OFFICER)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" on every login attempt is a cheap DoS
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")

_hasher = PasswordHasher()


class UserError(ValueError):
    """An account cannot be created or changed as asked."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_username(username: str) -> str:
    return username.strip().lower()


def is_known_party(party_id: str) -> bool:
    return any(c.party(party_id) for c in runtime.convenants().values())


def check_new_user(session: Session, username: str, role: str, party_id: str | None, password: str) -> None:
    """Refuse an account that breaks the role, party, username or password rules."""
    if not USERNAME.match(username):
        raise UserError("a username is 2-100 characters: a-z, 0-9, '.', '_', '@', '-'")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if role == PARTY_OFFICER and not party_id:
        raise UserError(f"a {PARTY_OFFICER} needs --party")
    if role == BROKER_OFFICER and party_id:
        raise UserError(f"a {BROKER_OFFICER} sees every party; leave out --party")
    if party_id and not is_known_party(party_id):
        raise UserError(f"party {party_id!r} is in no convenant")
    check_password(password)
    if session.get(User, username) is not None:
        raise UserError(f"user {username!r} already exists")


def checked_email(address: str) -> str:
    """Return the address in normal form, or raise UserError if it is not an e-mail address."""
    try:
        return check_address(address)
    except ValueError as e:
        raise UserError(str(e)) from e


def create_user(
    session: Session,
    username: str,
    role: str,
    party_id: str | None,
    password: str,
    now: dt.datetime,
    email: str | None = None,
) -> User:
    """Add an account (in the caller's transaction) after checking every rule."""
    username = normalise_username(username)
    check_new_user(session, username, role, party_id, password)
    email = checked_email(email) if email is not None else None
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        party_id=party_id,
        created_at=now,
        disabled_at=None,
        email=email,
    )
    session.add(user)
    return user


def check_password(password: str) -> None:
    """Refuse a password that is too short or too long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password may be at most {MAX_PASSWORD_LENGTH} characters")


def password_matches(user: User, password: str) -> bool:
    return len(password) <= MAX_PASSWORD_LENGTH and _password_matches(user.password_hash, password)


def change_password(session: Session, user: User, password: str, now: dt.datetime, keep: str | None = None) -> int:
    """Set a new password (in the caller's transaction) and end the user's sessions but `keep`."""
    check_password(password)
    user.password_hash = hash_password(password)
    return end_sessions(session, user.username, now, keep=keep)


def end_sessions(session: Session, username: str, now: dt.datetime, keep: str | None = None) -> int:
    """End every live review session of `username` but the one whose token hash is `keep`; how many."""
    statement = update(ReviewSession).where(ReviewSession.username == username, ReviewSession.ended_at.is_(None))
    if keep is not None:
        statement = statement.where(ReviewSession.token_hash != keep)
    result = session.execute(statement.values(ended_at=now).execution_options(synchronize_session="fetch"))
    return int(getattr(result, "rowcount", 0) or 0)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the active user with this password, or None; unknown users cost the same time."""
    name = normalise_username(username)
    user = session.get(User, name) if USERNAME.match(name) else None
    if user is None or len(password) > MAX_PASSWORD_LENGTH:
        # Hash anyway, so that the response time does not tell whether the account exists.
        _password_matches(_dummy_hash(), password[:MAX_PASSWORD_LENGTH])
        return None
    if not _password_matches(user.password_hash, password) or user.disabled_at is not None:
        return None
    if user.role not in ROLES:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def audit_password_changed(step: Step, user: User, ended: int, by: str) -> None:
    """Audit a password change in its step: who and how many sessions ended, never the password."""
    step.record(
        "user.password_changed", broker_activity("user"), root=True, parties=[user.party_id] if user.party_id else [],
        attributes={"username": user.username, "role": user.role, "party": user.party_id, "by": by,
                    "sessions_ended": ended},
    )
