"""The review interface's guards: a page needs a logged-in officer, a form the session's CSRF token.

CSRF: a small session-bound token instead of flask-wtf's CSRFProtect. Only this blueprint has
cookie-authenticated forms; a global CSRFProtect would need every bearer-token API blueprint
(`/api/...`, `/oauth/...`) exempted, and forgetting one exemption breaks parties' clients, while
forgetting to check here is caught by `check_csrf` running before every state-changing request of
the blueprint. SameSite=Lax cookies are a second line of defence.

Who is logged in is read from the server-side session (broker/officers/sessions.py).
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort, redirect, request, session, url_for

from broker.officers.sessions import SESSION_CSRF, current_officer

F = TypeVar("F", bound=Callable[..., Any])

SESSION_SUBJECTS = "subject_pseudonyms"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def login_required(view: F) -> F:
    """Send a visitor without a session to the login page (and back here afterwards)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_officer() is None:
            return redirect(url_for("review.login", next=request.full_path if request.method == "GET" else None))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
