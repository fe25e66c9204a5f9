"""The privacy officers' review interface: server-rendered Dutch pages over the audit log."""

from __future__ import annotations

import structlog
from flask import Flask

from broker.app.secret import load_secret_key, secret_key_problem

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    """Load the session secret and register the review pages under /review."""
    import broker.review.breaches  # noqa: F401  (its routes join the blueprint)
    from broker.review import account, retention, rights  # noqa: F401  (their routes join the blueprint)
    from broker.review.views import bp

    load_secret_key(app)
    problem = secret_key_problem(app)
    if problem is not None:
        # `broker init` must still run without a secret (it creates the file), so the app starts;
        # the review pages answer 503 until the secret exists.
        structlog.get_logger("broker.review").warning("review interface disabled", reason=problem)
    app.register_blueprint(bp)
