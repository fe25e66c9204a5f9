"""Failed logins lock out a username *from one address*; many failures from everywhere slow the
username down, but never keep the officer out of an address they log in from."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fixtures.app import Clock, initialised_app
from fixtures.officers import OFFICER_PASSWORD, csrf_from
from sqlalchemy import select

from broker.app.extensions import db
from broker.models import AuditEntryRow

A, B, FRESH = "198.51.100.1", "198.51.100.2", "203.0.113.9"
STRANGERS = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]


@pytest.fixture
def limited_app(app_config: dict[str, Any]) -> Any:
    """Five failures lock a username out from an address; eight from all addresses slow it down."""
    config = {
        **app_config, "SESSION_COOKIE_SECURE": False, "LOCKOUT_FAILURES": 5, "LOCKOUT_WINDOW": 900,
        "LOCKOUT_SECONDS": 900, "LOGIN_SLOWDOWN_FAILURES": 8, "LOGIN_SLOWDOWN_MAX": 60,
        "RATELIMIT_LOGIN": "1000 per minute",  # the per-address request rate is tested elsewhere
    }
    with initialised_app(config) as app:
        for name in ("ann", "bob"):
            result = app.test_cli_runner().invoke(
                args=["users", "add", name, "--role", "broker-officer", "--password", OFFICER_PASSWORD]
            )
            assert result.exit_code == 0, result.output
        yield app


def attempt(app: Any, address: str, password: str, username: str = "ann", headers: Any = None) -> Any:
    """One login from `address`, in a browser of its own."""
    http = app.test_client()
    environ = {"REMOTE_ADDR": address}
    token = csrf_from(http.get("/review/login", environ_base=environ).get_data(as_text=True))
    return http.post(
        "/review/login", data={"username": username, "password": password, "csrf_token": token},
        environ_base=environ, headers=headers or {},
    )


def wait_shown(response: Any) -> int:
    """The seconds the login page asks to wait (Retry-After may be the per-address rate's, if longer)."""
    assert response.status_code == 429
    match = re.search(r"Probeer het over (\d+) seconden opnieuw", response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:300]
    return int(match.group(1))


def audited(app: Any, name: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntryRow.canonical).where(AuditEntryRow.name == name))
        return [json.loads(bytes(c))["attributes"] for c in rows]


def test_a_stranger_locks_out_only_their_own_address(limited_app: Any) -> None:
    """Five failures for ann from A lock ann out from A; ann still logs in from B, bob from A."""
    assert [attempt(limited_app, A, "wrong").status_code for _ in range(5)] == [200, 200, 200, 200, 429]
    locked = attempt(limited_app, A, OFFICER_PASSWORD)
    assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= 901
    # A client cannot pick its address by a header: no proxy is trusted (TRUSTED_PROXIES=0).
    assert attempt(limited_app, A, OFFICER_PASSWORD, headers={"X-Forwarded-For": B}).status_code == 429
    assert attempt(limited_app, B, OFFICER_PASSWORD).status_code == 302
    assert attempt(limited_app, A, OFFICER_PASSWORD, username="bob").status_code == 302
    refused = audited(limited_app, "login.refused")
    assert [r["address"] for r in refused] == [A] * 7  # five wrong passwords, two while locked
    assert [r["reason"] for r in refused].count("locked out") == 2
    (lockout,) = audited(limited_app, "login.locked_out")
    assert lockout["username"] == "ann" and lockout["address"] == A


def test_failures_from_many_addresses_slow_the_username_but_not_at_the_officers_own_address(
    limited_app: Any, clock: Clock
) -> None:
    """Past eight failures from all addresses, a new address must wait (429, Retry-After) even with the
    right password; from B, where ann logged in before, the right password still gets in at once."""
    assert attempt(limited_app, B, OFFICER_PASSWORD).status_code == 302  # ann's own desk
    for address in (A, *STRANGERS):
        statuses = [attempt(limited_app, address, "wrong").status_code for _ in range(2)]
        assert statuses == [200, 200]  # no address reaches its own lockout
    (started,) = audited(limited_app, "login.slowed_down")
    assert started["username"] == "ann"
    waited = attempt(limited_app, FRESH, OFFICER_PASSWORD)
    assert waited.status_code == 429
    assert "Te veel mislukte pogingen" in waited.get_data(as_text=True)
    assert wait_shown(waited) == 2 and int(waited.headers["Retry-After"]) >= 2
    assert attempt(limited_app, B, OFFICER_PASSWORD).status_code == 302
    assert attempt(limited_app, FRESH, OFFICER_PASSWORD, username="bob").status_code == 302  # per username
    # Each further failure doubles the wait, up to LOGIN_SLOWDOWN_MAX; it never becomes a lockout.
    waits = []
    for n in range(8):
        clock.advance(seconds=61)
        assert attempt(limited_app, f"192.0.2.{100 + n}", "wrong").status_code == 200
        waits.append(wait_shown(attempt(limited_app, FRESH, OFFICER_PASSWORD)))
    assert waits == [3, 5, 9, 17, 33, 61, 61, 61]  # 2, 4 ... 60 seconds and the second it is in
    assert attempt(limited_app, B, OFFICER_PASSWORD).status_code == 302
    clock.advance(seconds=61)
    assert attempt(limited_app, FRESH, OFFICER_PASSWORD).status_code == 302  # slowed, never locked out
    assert [r["reason"] for r in audited(limited_app, "login.refused")].count("slowed down") == 9
