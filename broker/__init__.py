"""The convenant broker: a Flask app that validates, pseudonymises, seals and routes records."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from broker.app.config import Defaults


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the broker app: defaults, then BROKER_* environment, then test overrides."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(Defaults)
    app.config.from_prefixed_env("BROKER")
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "broker.db")
    if not app.config["KEY_VAULT_DIR"]:
        app.config["KEY_VAULT_DIR"] = os.path.join(app.instance_path, "vault")
    if not app.config["MASTER_KEY"] and not app.config["MASTER_KEY_FILE"]:
        app.config["MASTER_KEY_FILE"] = os.path.join(app.instance_path, "master.key")

    from broker import api, auditing, breaches, jobs, matching, officers, parties, review, rights
    from broker.app import bodies, cli, health, logging, metrics, runtime
    from broker.app.extensions import api as smorest_api
    from broker.app.extensions import db
    from broker.breaches.gauges import BreachCollector

    # The app: logs, bodies read whole, the database, the runtime (clock, keys, convenants), health.
    logging.configure_logging(app.config["LOG_LEVEL"], app.config.get("LOG_FILE"))
    bodies.init_app(app)
    db.init_app(app)
    runtime.init_app(app)
    smorest_api.init_app(app)
    logging.init_app(app)
    metrics.init_app(app, gauges=[BreachCollector])
    health.init_app(app)
    cli.init_app(app)
    # The capabilities: each registers its commands (and the parties their token endpoint).
    for capability in (auditing, parties, matching, breaches, rights, officers, jobs):
        capability.init_app(app)
    # The two front doors: the HTTP API for the parties, the review interface for the officers.
    api.init_app(app)
    review.init_app(app)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app
