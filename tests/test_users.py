"""The review interface's accounts: `broker users add|list|disable`, roles, hashing, auditing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.officers import OFFICER_PASSWORD
from sqlalchemy import select

from broker.app.extensions import db
from broker.auditing.step import broker_activity
from broker.models import AuditEntryRow, Base, User
from broker.officers import accounts as users

PARTY = "swv-de-liemers"
PASSWORD = "een lang geheim wachtwoord"


def add(runner: Any, *args: str, input: str | None = None) -> Any:
    return runner.invoke(args=["users", "add", *args], input=input)


def stored_user(app: Any, username: str) -> User | None:
    with app.app_context():
        return db.session.get(User, username)


def audit_entries(app: Any, name: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow).where(AuditEntryRow.name == name).order_by(AuditEntryRow.idx))
        return [{**json.loads(r.canonical), "parties": r.parties} for r in rows]


def test_add_party_officer_with_positional_username(app: Any, runner: Any) -> None:
    """`users add NAME --role privacy-officer --party P --password X` creates an active officer of P."""
    result = add(runner, "ann", "--role", "privacy-officer", "--party", PARTY, "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    user = stored_user(app, "ann")
    assert user is not None
    assert (user.role, user.party_id, user.disabled_at) == ("privacy-officer", PARTY, None)


def test_add_broker_officer_with_username_option(app: Any, runner: Any) -> None:
    """The username may also be given as --username; a broker officer has no party."""
    result = add(runner, "--username", "bob", "--role", "broker-officer", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    user = stored_user(app, "bob")
    assert user is not None and (user.role, user.party_id) == ("broker-officer", None)


def test_password_is_read_from_a_confirmed_prompt(app: Any, runner: Any) -> None:
    """Without --password the password is asked twice (hidden), so it can come from stdin."""
    result = add(runner, "cas", "--role", "broker-officer", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    with app.app_context():
        assert users.authenticate(db.session, "cas", PASSWORD) is not None


def test_mismatched_password_confirmation_adds_nobody(app: Any, runner: Any) -> None:
    """Two different passwords at the prompt add no user."""
    result = add(runner, "dee", "--role", "broker-officer", input=f"{PASSWORD}\nsomething else!!\n")
    assert result.exit_code != 0
    assert stored_user(app, "dee") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eve", "--role", "privacy-officer"], "needs --party"),
        (["eve", "--role", "broker-officer", "--party", PARTY], "leave out --party"),
        (["eve", "--role", "privacy-officer", "--party", "gemeente-nergens"], "in no convenant"),
        (["eve", "--role", "broker-officer", "--password", "kort-11-tek"], "at least 12"),
        (["e", "--role", "broker-officer"], "username"),
        (["eve", "--role", "admin"], "Invalid value for '--role'"),
        (["eve", "--username", "other", "--role", "broker-officer"], "give the username once"),
        (["--role", "broker-officer"], "give a USERNAME"),
    ],
)
def test_add_refuses_accounts_that_break_the_rules(app: Any, runner: Any, args: list[str], message: str) -> None:
    """Role/party rules, a known party, a 12-character password and one valid username are required."""
    if "--password" not in args:
        args = [*args, "--password", PASSWORD]
    result = add(runner, *args)
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []


def test_existing_username_is_refused(app: Any, runner: Any, make_officer: Any) -> None:
    """A username cannot be added twice, not even with another case."""
    make_officer("ann", party=PARTY)
    result = add(runner, "ANN", "--role", "broker-officer", "--password", PASSWORD)
    assert result.exit_code != 0 and "already exists" in result.output


def test_password_is_stored_only_as_an_argon2_hash(app: Any, make_officer: Any) -> None:
    """No table holds the plaintext password; the users table holds an Argon2id hash of it."""
    make_officer("ann", party=PARTY, password=PASSWORD)
    with app.app_context():
        user = db.session.get(User, "ann")
        assert user is not None and user.password_hash.startswith("$argon2id$")
        for table in Base.metadata.sorted_tables:
            for row in db.session.execute(table.select()):
                dumped = " ".join(
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row
                )
                assert PASSWORD not in dumped, table.name


def test_list_shows_users_roles_parties_and_state(runner: Any, make_officer: Any) -> None:
    """`users list` names each user with role, party and whether it is disabled."""
    make_officer("ann", party=PARTY)
    make_officer("bob")
    assert runner.invoke(args=["users", "disable", "bob"]).exit_code == 0
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines[0].split() == ["ann", "privacy-officer", PARTY, "active"]
    assert lines[1].split()[:4] == ["bob", "broker-officer", "-", "disabled"]


def test_disabled_user_can_no_longer_log_in(app: Any, runner: Any, make_officer: Any) -> None:
    """After `users disable` the right password no longer authenticates."""
    make_officer("ann", party=PARTY)
    with app.app_context():
        assert users.authenticate(db.session, "ann", OFFICER_PASSWORD) is not None
    result = runner.invoke(args=["users", "disable", "ann"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert users.authenticate(db.session, "ann", OFFICER_PASSWORD) is None


def test_disabling_an_unknown_user_fails(runner: Any) -> None:
    """`users disable` of a name that does not exist exits non-zero."""
    result = runner.invoke(args=["users", "disable", "nobody"])
    assert result.exit_code != 0 and "no such user" in result.output


def test_adding_and_disabling_are_audited(app: Any, runner: Any, make_officer: Any) -> None:
    """Both steps write an entry under the access-management activity, naming user, role and party."""
    make_officer("ann", party=PARTY)
    assert runner.invoke(args=["users", "disable", "ann"]).exit_code == 0
    with app.app_context():
        activity = broker_activity("user")
    for name in ("user.added", "user.disabled"):
        (entry,) = audit_entries(app, name)
        assert entry["processing_activity_id"] == activity
        assert entry["attributes"] == {"username": "ann", "role": "privacy-officer", "party": PARTY}
        assert entry["actor"]["type"] == "user" and entry["actor"]["id"].startswith("cli:")
        assert f",{PARTY}," in entry["parties"]


def test_wrong_password_and_unknown_user_both_fail(app: Any, make_officer: Any) -> None:
    """authenticate returns None for a wrong password and for an unknown user alike."""
    make_officer("ann", party=PARTY)
    with app.app_context():
        assert users.authenticate(db.session, "ann", "not the password") is None
        assert users.authenticate(db.session, "nobody", OFFICER_PASSWORD) is None
        assert users.authenticate(db.session, " Ann ", OFFICER_PASSWORD) is not None


def test_unknown_user_still_costs_a_password_hash(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown username is checked against a dummy hash, so timing does not reveal accounts."""
    checked: list[str] = []
    real = users._password_matches
    monkeypatch.setattr(users, "_password_matches", lambda h, p: checked.append(h) or real(h, p))
    with app.app_context():
        assert users.authenticate(db.session, "nobody", OFFICER_PASSWORD) is None
    assert len(checked) == 1 and checked[0].startswith("$argon2id$")
