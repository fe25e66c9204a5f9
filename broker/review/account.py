"""The officer's own account: change the password (every other session of the officer ends)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from broker.app import runtime
from broker.app.extensions import db
from broker.auditing.step import audited_step
from broker.officers.accounts import (
    MIN_PASSWORD_LENGTH,
    UserError,
    audit_password_changed,
    change_password,
    password_matches,
)
from broker.officers.sessions import officer_viewer
from broker.parties import limits
from broker.review.auth import login_required
from broker.review.views import bp, locked_out_page

WRONG_CURRENT = "Het huidige wachtwoord klopt niet."


@bp.route("/wachtwoord", methods=["GET", "POST"])
@login_required
@limits.limiter.limit(limits.login_rate, methods=["POST"], error_message=limits.TOO_MANY)
def change_own_password() -> Any:
    """Change the password: the current one, the new one twice; other sessions end."""
    user = g.officer
    errors: dict[str, str] = {}
    if request.method == "POST":
        now = runtime.now()
        subject = limits.login_subject(user.username)
        attributes = {"username": user.username}
        # A stolen session must not become a way to guess the password: the same lockout as the login.
        if lockout := limits.locked(db.session, limits.LOGIN, subject, now):
            limits.refuse(db.session, limits.LOGIN, None, "locked out", attributes)
            return locked_out_page(lockout, now)
        new, repeated = request.form.get("new_password", ""), request.form.get("new_password_repeated", "")
        if not password_matches(user, request.form.get("current_password", "")):
            if lockout := limits.refuse(db.session, limits.LOGIN, subject, "wrong current password", attributes):
                return locked_out_page(lockout, now)
            errors["current_password"] = WRONG_CURRENT
        elif new != repeated:
            errors["new_password_repeated"] = "De twee nieuwe wachtwoorden zijn niet gelijk."
        else:
            try:
                with audited_step(db.session, officer_viewer(user).actor) as step:
                    ended = change_password(step.session, user, new, step.now, keep=g.review_session.token_hash)
                    audit_password_changed(step, user, ended, by="self")
            except UserError:
                errors["new_password"] = f"Het nieuwe wachtwoord heeft minstens {MIN_PASSWORD_LENGTH} tekens."
            else:
                flash("Uw wachtwoord is gewijzigd; uw andere sessies zijn beëindigd.", "info")
                return redirect(url_for("review.entries"))
    status = 400 if errors else 200
    return render_template("review/password.html", errors=errors, min_length=MIN_PASSWORD_LENGTH), status
