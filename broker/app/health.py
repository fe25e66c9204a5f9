"""Operating the broker: liveness and readiness, and a 503 (not a 500) while the database is away.

- `GET /healthz` answers as long as the process serves requests (liveness; touches nothing).
- `GET /readyz` checks what a request needs: the database (reachable, migrated to head), the
  master key and the broker's signing keys (they unwrap), and the key vault (writable). Any
  failure is a 503 problem+json naming the failed checks, so a load balancer takes the instance
  out until it recovers.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

import structlog
from flask import Blueprint, Flask, Response, render_template, request
from sqlalchemy import exc, text

from broker.app.errors import RETRY_AFTER, ServiceUnavailable
from broker.app.problems import problem_response

log = structlog.get_logger("broker.ops")

bp = Blueprint("ops", __name__)

# Errors that mean "the database is not there (now)", not "this request is wrong".
UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int, dict[str, str]]:
    """Liveness: the process answers."""
    return {"status": "ok"}, 200, {"Cache-Control": "no-store"}


@functools.cache
def _schema_head() -> str | None:
    from alembic.script import ScriptDirectory

    from broker.app.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def _check_database() -> None:
    from broker.app.extensions import db

    session = db.session
    try:
        current = session.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        session.rollback()
    head = _schema_head()
    if current != head:
        raise RuntimeError(f"schema at {current}, code expects {head}: run `broker init`")


def _check_keys() -> None:
    from broker.app import runtime
    from broker.app.extensions import db
    from broker.auditing.step import CHECKPOINT_PURPOSE
    from broker.parties.oauth import TOKEN_PURPOSE

    try:
        keyring = runtime.keyring()
        for purpose in (TOKEN_PURPOSE, CHECKPOINT_PURPOSE):
            # Unwrapping them proves the master key is the one that wrapped every key.
            if not keyring.signing_keys(purpose):
                raise RuntimeError(f"no {purpose} key: run `broker init`")
    finally:
        db.session.rollback()


def _check_vault() -> None:
    from broker.app import runtime

    directory = runtime.key_vault().directory
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise RuntimeError(f"the key vault {directory} is missing or not writable")


CHECKS = {"database": _check_database, "keys": _check_keys, "vault": _check_vault}


@bp.get("/readyz")
def readyz() -> Response | tuple[dict[str, Any], int, dict[str, str]]:
    """Readiness: the database, the keys and the key vault can serve a request."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as e:  # noqa: BLE001 - every failure makes the instance unready
            log.warning("readiness check failed", check=name, error=type(e).__name__, detail=str(e))
            results[name] = "failed"
    if all(value == "ok" for value in results.values()):
        return {"status": "ready", "checks": results}, 200, {"Cache-Control": "no-store"}
    failed = ", ".join(name for name, value in results.items() if value != "ok")
    problem = ServiceUnavailable(f"Niet gereed: {failed}.", checks=results, headers={"Retry-After": RETRY_AFTER})
    return problem_response(problem)


def _database_unavailable(error: Exception) -> Response | tuple[str, int, dict[str, str]]:
    """A database that is down, restarting or overloaded: 503 with Retry-After, the request undone."""
    from broker.app.extensions import db

    with contextlib.suppress(Exception):  # the connection may be gone; the pool discards it
        db.session.rollback()
    log.error("database unavailable", error=type(error).__name__, path=request.path)
    detail = "De database is tijdelijk niet bereikbaar; er is niets verwerkt. Probeer het later opnieuw."
    headers = {"Retry-After": RETRY_AFTER}
    if request.blueprint == "review":
        page = render_template("review/error.html", title="Tijdelijk niet beschikbaar", detail=detail, hide_banner=True)
        return page, 503, headers
    return problem_response(ServiceUnavailable(detail, headers=headers))


API_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",  # answers about pupils stay out of every cache
}


def _security_headers(response: Response) -> Response:
    """Every answer: no MIME sniffing, HSTS over TLS; the API's (the review UI sets its own): no
    cache, no content to run or frame."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.blueprint != "review":
        for name, value in API_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.after_request(_security_headers)
    for error in UNAVAILABLE:
        app.register_error_handler(error, _database_unavailable)
