"""The review pages: log in, browse and export the audit log, verify it, read the register."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import structlog
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from audit.entry import Actor
from broker.app import runtime
from broker.app.csvio import csv_response
from broker.app.errors import BrokerError, ServiceUnavailable
from broker.app.extensions import db
from broker.app.secret import secret_key_problem
from broker.app.timefmt import AMSTERDAM
from broker.auditing import step as auditing
from broker.auditing.entries import (
    EntryFilter,
    Viewer,
    action_names,
    conditions,
    count_entries,
    entry_line,
    log_end,
    page_of_entries,
    record_review,
)
from broker.auditing.step import audited_step, broker_activity
from broker.exchange import need_to_know
from broker.models import User
from broker.officers.accounts import BROKER_OFFICER, authenticate, normalise_username
from broker.officers.sessions import current_officer, log_in, log_out, officer_viewer
from broker.parties import limits
from broker.review import integrity
from broker.review.auth import SESSION_SUBJECTS, check_csrf, csrf_token, login_required, safe_next
from broker.review.export import csv_chunks
from broker.review.forms import FILTER_ARGS, INVALID_BSN, FilterForm, party_names, pseudonymise_lookup, read_filters

bp = Blueprint(
    "review", __name__, url_prefix="/review", template_folder="templates", static_folder="static"
)
log = structlog.get_logger("broker.review")

LOGIN_FAILED = "Inloggen is niet gelukt: de gebruikersnaam of het wachtwoord klopt niet."
HTTP_TITLES = {
    400: "Ongeldig verzoek",
    403: "Niet toegestaan",
    404: "Niet gevonden",
    405: "Niet toegestaan",
    429: "Te veel pogingen",
}
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


# -- every request ----------------------------------------------------------------------------------


@bp.before_request
def _guard() -> None:
    problem = secret_key_problem(current_app)
    if problem is not None:
        log.error("review interface refused", reason=problem)
        raise ServiceUnavailable("De inzage-omgeving is niet geconfigureerd (geen geheime sleutel).")
    check_csrf()


@bp.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if request.endpoint != "review.static":
        response.headers["Cache-Control"] = "no-store"  # pages and exports about people stay out of caches
    return response


@bp.errorhandler(BrokerError)
def _broker_error(error: BrokerError) -> tuple[str, int]:
    page = render_template("review/error.html", title=error.title, detail=error.detail, hide_banner=True)
    return page, error.status


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    if error.code == 400 and error.description == "csrf":
        detail = "Het formulier was verlopen of kwam niet van deze pagina. Probeer het opnieuw."
    else:
        detail = "Deze pagina kon niet worden getoond."
    title = HTTP_TITLES.get(error.code or 500, "Fout")
    page = render_template("review/error.html", title=title, detail=detail, hide_banner=True)
    return page, error.code or 500


@bp.app_template_filter("anchor")
def _anchor(uri: str) -> str:
    """An HTML id for a processing activity URI."""
    return "act-" + re.sub(r"[^A-Za-z0-9_-]", "-", uri)


@bp.context_processor
def _page_context() -> dict[str, Any]:
    return {
        "officer": current_officer(),
        "csrf_token": csrf_token,
        "integrity": _integrity_banner,
        "role_label": _role_label,
        "BROKER_OFFICER": BROKER_OFFICER,
    }


def _integrity_banner() -> dict[str, Any]:
    return {"checkpoint": integrity.checkpoint_summary(db.session), "verification": integrity.last_verification()}


def _role_label(user: User) -> str:
    if user.role == BROKER_OFFICER:
        return "privacy officer van de broker"
    return f"privacy officer van {party_names().get(user.party_id or '', user.party_id)}"


def _officer_viewer() -> tuple[User, Viewer]:
    user = current_officer()
    assert user is not None  # login_required ran first
    return user, officer_viewer(user)


def _carried_args() -> dict[str, Any]:
    """The filters a POST form carried along, to return to the same view afterwards."""
    return {k: v for k in FILTER_ARGS if (v := request.form.get(k, "").strip()[:200])}


def _session_subjects() -> dict[str, str] | None:
    """The active subject filter: convenant id to pseudonym (the BSN itself was never kept)."""
    stored = session.get(SESSION_SUBJECTS)
    if not isinstance(stored, dict) or not stored:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) and PSEUDONYM.match(v) for k, v in stored.items()):
        return None
    return stored


def _page_arg() -> int:
    try:
        return max(1, int(request.args.get("pagina", "1")))
    except ValueError:
        return 1


def _read_form(actions: list[str]) -> tuple[FilterForm, EntryFilter, dict[str, str] | None]:
    form = read_filters(request.args, actions)
    subjects = _session_subjects()
    entry_filter = replace(
        form.entry_filter,
        subjects=tuple(subjects.values()) if subjects else None,
        before=log_end(db.session),  # the log as it was before this query's own audit entry
    )
    return form, entry_filter, subjects


# -- logging in and out ---------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limits.limiter.limit(limits.login_rate, methods=["POST"], error_message=limits.TOO_MANY)
def login() -> Any:
    """Log in with username and password; one message for every failure, a lockout after several."""
    error, status = None, 200
    if request.method == "POST":
        username = normalise_username(request.form.get("username", ""))
        attributes = {"username": username if db.session.get(User, username[:100]) else "(onbekend)"}
        now = runtime.now()
        subject = limits.login_subject(username)  # this username from this address
        if lockout := limits.locked(db.session, limits.LOGIN, subject, now):
            limits.refuse(db.session, limits.LOGIN, None, "locked out", attributes)
            return locked_out_page(lockout, now)
        if wait := limits.slowed(db.session, username, now):
            limits.refuse(db.session, limits.LOGIN, None, "slowed down", attributes)
            return locked_out_page(wait, now)
        user = authenticate(db.session, username, request.form.get("password", ""))
        if user is not None:
            # The step also stores a rehashed password, the cleared failures and the new session.
            with audited_step(db.session, officer_viewer(user).actor) as step:
                limits.succeeded(step.session, limits.LOGIN, subject)
                log_in(user)
                step.record(
                    "user.logged_in", broker_activity("user"), root=True, attributes={"username": user.username}
                )
            return redirect(safe_next(request.form.get("next")))
        log.info("review login refused")
        reason = "wrong username or password"
        if lockout := limits.refuse(db.session, limits.LOGIN, subject, reason, attributes, username=username):
            return locked_out_page(lockout, now)
        error = LOGIN_FAILED
    elif current_officer() is not None:
        return redirect(url_for("review.entries"))
    wanted = request.values.get("next")
    next_page = safe_next(wanted) if wanted else ""
    return render_template("review/login.html", error=error, next_page=next_page), status


def locked_out_page(lockout: limits.Lockout, now: Any) -> tuple[str, int, dict[str, str]]:
    """The login page (or the password page's answer) while a lockout or slowdown lasts: 429."""
    seconds = lockout.retry_after(now)
    wait = f"{math.ceil(seconds / 60)} minuten" if seconds >= 120 else f"{seconds} seconden"
    error = f"Te veel mislukte pogingen. Probeer het over {wait} opnieuw."
    page = render_template("review/login.html", error=error, next_page="")
    return page, 429, {"Retry-After": str(lockout.retry_after(now))}


@bp.post("/logout")
def logout() -> Any:
    """Log out: the session ends on the server (a copy of the cookie opens nothing) and is emptied."""
    user = current_officer()
    actor = officer_viewer(user).actor if user is not None else Actor(type="system", id="review")
    with audited_step(db.session, actor) as step:  # the entry commits with the session's end
        if user is not None:
            step.record("user.logged_out", broker_activity("user"), root=True, attributes={"username": user.username})
        log_out()
    flash("U bent uitgelogd.", "info")
    return redirect(url_for("review.login"))


# -- the log ----------------------------------------------------------------------------------------


@bp.get("/")
@login_required
def entries() -> Any:
    """Show the entries the officer may see, filtered, newest first."""
    _user, viewer = _officer_viewer()
    actions = action_names(db.session)
    form, entry_filter, subjects = _read_form(actions)
    per_page = int(current_app.config["REVIEW_PER_PAGE"])
    page, pages, total, lines = _page_arg(), 1, 0, []
    if not form.errors:
        where = conditions(entry_filter, viewer)
        total = count_entries(db.session, where)
        pages = max(1, math.ceil(total / per_page))
        page = min(page, pages)
        lines = [entry_line(row) for row in page_of_entries(db.session, where, page, per_page)]
        record_review(
            db.session, viewer, "review.entries_viewed",
            {**entry_filter.attributes(), "page": page, "shown": len(lines), "total": total}, subjects,
        )
    activities = {a.uri: a for a in auditing.register().activities}
    # The pseudonyms are shown only where the officer's party may name the pupil (need-to-know).
    known_subjects = need_to_know.nameable(db.session, viewer.party, subjects) if subjects else {}
    return render_template(
        "review/entries.html",
        form=form, lines=lines, page=page, pages=pages, total=total, subjects=subjects, known_subjects=known_subjects,
        actions=actions, parties=party_names(), convenants=runtime.convenants(),
        activities=activities, viewer=viewer,
    )


@bp.post("/betrokkene")
@login_required
def lookup_subject() -> Any:
    """Filter on one data subject: the BSN is pseudonymised per convenant and then forgotten."""
    pseudonyms = pseudonymise_lookup(request.form.get("bsn", ""))
    if pseudonyms is None:
        flash(INVALID_BSN, "error")
    else:
        session[SESSION_SUBJECTS] = pseudonyms
        flash("Het filter op betrokkene staat aan.", "info")
    return redirect(url_for("review.entries", **_carried_args()))


@bp.post("/betrokkene/wissen")
@login_required
def clear_subject() -> Any:
    """Remove the subject filter."""
    session.pop(SESSION_SUBJECTS, None)
    flash("Het filter op betrokkene is gewist.", "info")
    return redirect(url_for("review.entries", **_carried_args()))


@bp.get("/export.csv")
@login_required
def export() -> Any:
    """Download the filtered entries as CSV, streamed."""
    _user, viewer = _officer_viewer()
    form, entry_filter, subjects = _read_form(action_names(db.session))
    if form.errors:
        flash("Het filter bevat een fout; er is niets geëxporteerd.", "error")
        return redirect(url_for("review.entries", **form.query_args))
    # Audited (and committed) before the first byte leaves: a failed audit write exports nothing.
    record_review(db.session, viewer, "review.entries_exported", entry_filter.attributes(), subjects)
    where = conditions(entry_filter, viewer)
    filename = f"logboek-{runtime.now().astimezone(AMSTERDAM):%Y%m%d-%H%M%S}.csv"
    return csv_response(csv_chunks(db.session, where), filename)


@bp.post("/controle")
@login_required
def verify() -> Any:
    """Verify the whole log now and show the result in the banner."""
    user, viewer = _officer_viewer()
    state = integrity.run_verification(db.session, user.username)
    problem = state["problem"] or {}
    record_review(
        db.session, viewer, "review.log_verified",
        {"ok": state["ok"], "entries": state["entries"], "problem_index": problem.get("index"),
         "problem_kind": problem.get("kind"), "problem_column": problem.get("column")},
    )
    if state["ok"]:
        flash(f"Het logboek is volledig gecontroleerd: {state['entries']} entries kloppen.", "info")
    else:
        column = f" (kolom {problem['column']})" if problem.get("column") else ""
        flash(f"Het logboek klopt niet vanaf entry {problem.get('index')}: {problem.get('label')}{column}.", "error")
    return redirect(url_for("review.entries", **_carried_args()))


@bp.get("/register")
@login_required
def register() -> Any:
    """Show the register of processing activities (AVG art. 30)."""
    activities = auditing.register().activities
    scopes: dict[str, list[Any]] = {}
    for activity in activities:
        scopes.setdefault(activity.scope, []).append(activity)
    return render_template("review/register.html", scopes=scopes, convenants=runtime.convenants())
