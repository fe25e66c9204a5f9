"""Who is looking: the logged-in officer of a session, with CSRF protection for their forms.

CSRF: a small session-bound token instead of flask-wtf's CSRFProtect. Only this blueprint has
cookie-authenticated forms; a global CSRFProtect would need every bearer-token API blueprint
(`/api/...`, `/oauth/...`) exempted, and forgetting one exemption breaks parties' clients, while
forgetting to check here is caught by `check_csrf` running before every state-changing request of
the blueprint. SameSite=Lax cookies are a second line of defence.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, session, url_for

from audit.entry import Actor
from broker.extensions import db
from broker.models import User
from broker.services.audit_entries import Viewer
from broker.users import BROKER_OFFICER, ROLES

F = TypeVar("F", bound=Callable[..., Any])

SESSION_USER = "officer"
SESSION_CSRF = "csrf"
SESSION_SUBJECTS = "subject_pseudonyms"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def current_officer() -> User | None:
    """Return the active user of this session, or None (a disabled user is logged out at once)."""
    if "officer" not in g:
        username = session.get(SESSION_USER)
        user = db.session.get(User, username) if isinstance(username, str) else None
        if user is not None and (user.disabled_at is not None or user.role not in ROLES):
            user = None
        g.officer = user
    officer: User | None = g.officer
    return officer


def officer_viewer(user: User) -> Viewer:
    """What `user` may see: every entry for the broker's officer, else their party's."""
    actor = Actor(type="user", id=user.username, party=user.party_id or None)
    return Viewer(actor=actor, party=None if user.role == BROKER_OFFICER else user.party_id)


def login_required(view: F) -> F:
    """Send a visitor without a session to the login page (and back here afterwards)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_officer() is None:
            return redirect(url_for("review.login", next=request.full_path if request.method == "GET" else None))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def log_in(user: User) -> None:
    """Start a fresh session for `user` (nothing of the anonymous session survives)."""
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user.username
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    g.officer = user


def log_out() -> None:
    session.clear()
    g.officer = None


def csrf_token() -> str:
    """The session's CSRF token, for the hidden field of every form."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request whose form does not carry the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(SESSION_CSRF)
    sent = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        abort(400, description="csrf")


def safe_next(target: str | None) -> str:
    """Return `target` if it is a page of the review interface, else the entries page.

    Only a local path under /review/ is followed, so a crafted login link cannot send an officer
    to another site after logging in (no open redirect).
    """
    default = url_for("review.entries")
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/review/") or target.startswith("//"):
        return default
    return target
