"""Review sessions end when the officer ends them: a cookie copied before logout, a password change
or `users disable` opens neither the review pages nor /api/v1/audit/entries afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.officers import OFFICER_PASSWORD, csrf_from
from sqlalchemy import select

from broker.app.extensions import db
from broker.models import AuditEntryRow, ReviewSession

NEW_PASSWORD = "a much longer new passphrase"
AUDIT_QUERY = "/api/v1/audit/entries?trace_id=" + "0" * 32


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Review cookies over plain http, as the test client speaks."""
    return {**app_config, "SESSION_COOKIE_SECURE": False}


def copy_of(app: Any, http: Any) -> Any:
    """A second client holding a copy of `http`'s session cookie, as a thief would."""
    cookie = http.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value)
    return thief


def opens(http: Any) -> tuple[bool, bool]:
    """Whether this client's cookie opens the review pages and the audit entries API."""
    page = http.get("/review/")
    api = http.get(AUDIT_QUERY)
    assert page.status_code in (200, 302) and api.status_code in (200, 401), (page.status_code, api.status_code)
    return page.status_code == 200, api.status_code == 200


def log_out(http: Any) -> None:
    token = csrf_from(http.get("/review/").get_data(as_text=True))
    assert http.post("/review/logout", data={"csrf_token": token}).status_code == 302


def entries_named(app: Any, name: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow.canonical).where(AuditEntryRow.name == name))
        return [json.loads(bytes(c)) for c in rows]


def test_a_cookie_copied_before_logout_opens_nothing_after_it(app: Any, make_officer: Any, officer_client: Any) -> None:
    """The copy works while the session lasts; after logout neither the pages nor the API take it."""
    officer = officer_client(make_officer("ann"))
    thief = copy_of(app, officer)
    assert opens(thief) == (True, True)
    log_out(officer)
    assert opens(thief) == (False, False)
    assert opens(officer) == (False, False)
    with app.app_context():
        (row,) = db.session.scalars(select(ReviewSession)).all()
        assert row.username == "ann" and row.ended_at is not None


def test_the_database_holds_only_a_hash_of_the_session_token(app: Any, make_officer: Any, officer_client: Any) -> None:
    """The cookie's token is not in the table: a copy of the database opens no session."""
    officer = officer_client(make_officer("ann"))
    session = app.session_interface.get_signing_serializer(app).loads(
        officer.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    )
    token = session["session"]
    assert len(token) >= 40
    with app.app_context():
        (row,) = db.session.scalars(select(ReviewSession)).all()
        assert token not in (row.token_hash, row.username, row.address)
        assert len(row.token_hash) == 64


def test_logging_in_again_starts_a_new_session(app: Any, make_officer: Any, officer_client: Any) -> None:
    """Each login has its own token (no fixation); ending one leaves the other open."""
    make_officer("ann")
    first, second = officer_client("ann"), officer_client("ann")
    name = app.config["SESSION_COOKIE_NAME"]
    assert first.get_cookie(name).value != second.get_cookie(name).value
    log_out(first)
    assert opens(second) == (True, True)


def test_users_passwd_ends_every_session(app: Any, runner: Any, make_officer: Any, officer_client: Any) -> None:
    """`broker users passwd` asks twice, ends all the user's sessions and is audited without the password."""
    make_officer("ann")
    sessions = [officer_client("ann"), officer_client("ann")]
    thief = copy_of(app, sessions[0])
    result = runner.invoke(args=["users", "passwd", "ann"], input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "2 session(s) ended" in result.output
    for http in (*sessions, thief):
        assert opens(http) == (False, False)
    officer_client("ann", password=NEW_PASSWORD)
    with pytest.raises(AssertionError):
        officer_client("ann")  # the old password no longer works
    (entry,) = entries_named(app, "user.password_changed")
    assert entry["attributes"]["username"] == "ann" and entry["attributes"]["sessions_ended"] == 2
    assert entry["actor"]["id"].startswith("cli:")
    assert NEW_PASSWORD not in json.dumps(entry)


@pytest.mark.parametrize(
    ("given", "message"),
    [("short", "at least 12 characters"), (None, "Error: The two entered values do not match.")],
)
def test_users_passwd_keeps_the_rules_of_users_add(
    app: Any, runner: Any, make_officer: Any, officer_client: Any, given: str | None, message: str
) -> None:
    """A short password, or two that differ, change nothing and end no session."""
    make_officer("ann")
    http = officer_client("ann")
    typed = f"{given}\n{given}\n" if given else f"{NEW_PASSWORD}\nsomething else entirely\n" * 3
    result = runner.invoke(args=["users", "passwd", "ann"], input=typed)
    assert result.exit_code != 0
    assert message in result.output
    assert opens(http) == (True, True)
    officer_client("ann")  # the old password still works
    assert entries_named(app, "user.password_changed") == []


def test_users_passwd_of_an_unknown_user_fails(runner: Any) -> None:
    """There is no account to change."""
    result = runner.invoke(args=["users", "passwd", "nobody", "--password", NEW_PASSWORD])
    assert result.exit_code != 0 and "no such user" in result.output


def test_users_disable_ends_every_session(app: Any, runner: Any, make_officer: Any, officer_client: Any) -> None:
    """After `users disable` a copied cookie opens nothing, and the session rows are ended."""
    officer = officer_client(make_officer("ann"))
    thief = copy_of(app, officer)
    assert runner.invoke(args=["users", "disable", "ann"]).exit_code == 0
    assert opens(thief) == (False, False)
    with app.app_context():
        assert [r.ended_at is not None for r in db.session.scalars(select(ReviewSession))] == [True]


def test_changing_the_own_password_ends_the_other_sessions(app: Any, make_officer: Any, officer_client: Any) -> None:
    """The page asks the current password and the new one twice; this session stays, the others end."""
    make_officer("ann")
    here, elsewhere = officer_client("ann"), officer_client("ann")
    thief = copy_of(app, elsewhere)
    page = here.get("/review/wachtwoord")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    form = {"csrf_token": token, "current_password": OFFICER_PASSWORD,
            "new_password": NEW_PASSWORD, "new_password_repeated": NEW_PASSWORD}
    assert here.post("/review/wachtwoord", data={**form, "csrf_token": ""}).status_code == 400  # CSRF
    assert opens(elsewhere) == (True, True)
    response = here.post("/review/wachtwoord", data=form)
    assert response.status_code == 302
    assert opens(here) == (True, True)
    assert opens(elsewhere) == (False, False) and opens(thief) == (False, False)
    (entry,) = entries_named(app, "user.password_changed")
    assert entry["attributes"]["sessions_ended"] == 1 and entry["attributes"]["by"] == "self"
    assert entry["actor"] == {**entry["actor"], "type": "user", "id": "ann"}
    officer_client("ann", password=NEW_PASSWORD)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"current_password": "not the password"}, "Het huidige wachtwoord klopt niet."),
        ({"new_password_repeated": "another new passphrase"}, "niet gelijk"),
        ({"new_password": "short", "new_password_repeated": "short"}, "minstens 12 tekens"),
    ],
)
def test_a_refused_password_change_changes_nothing(
    app: Any, make_officer: Any, officer_client: Any, change: dict[str, str], message: str
) -> None:
    """A wrong current password, a mismatch or a short new one: an error at the field, no session ends."""
    make_officer("ann")
    here, elsewhere = officer_client("ann"), officer_client("ann")
    token = csrf_from(here.get("/review/wachtwoord").get_data(as_text=True))
    form = {"csrf_token": token, "current_password": OFFICER_PASSWORD,
            "new_password": NEW_PASSWORD, "new_password_repeated": NEW_PASSWORD, **change}
    response = here.post("/review/wachtwoord", data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert opens(here) == (True, True) and opens(elsewhere) == (True, True)
    officer_client("ann")
    assert entries_named(app, "user.password_changed") == []


def test_a_session_ends_when_idle_and_at_its_maximum_age(
    app: Any, make_officer: Any, officer_client: Any, clock: Clock
) -> None:
    """PERMANENT_SESSION_LIFETIME without a request ends a session; so does REVIEW_SESSION_MAX_LIFETIME."""
    idle = int(app.config["PERMANENT_SESSION_LIFETIME"])
    absolute = int(app.config["REVIEW_SESSION_MAX_LIFETIME"])
    assert idle < absolute
    make_officer("ann")
    quiet, busy = officer_client("ann"), officer_client("ann")
    clock.advance(seconds=idle - 60)
    assert opens(busy) == (True, True)
    clock.advance(seconds=120)
    assert opens(quiet) == (False, False)  # idle too long
    clock.advance(seconds=absolute - idle - 120)  # the busy one keeps it alive
    assert opens(busy) == (True, True)
    clock.advance(seconds=61)
    assert opens(busy) == (False, False)  # active, but logged in too long ago
