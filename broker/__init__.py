"""The convenant broker: a Flask app that validates, pseudonymises, seals and routes records."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from broker.config import Defaults


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

    from broker import api, auth, bodies, cli, limits, logging, metrics, ops, review, runtime
    from broker.breaches.gauges import BreachCollector
    from broker.extensions import api as smorest_api
    from broker.extensions import db

    logging.configure_logging(app.config["LOG_LEVEL"], app.config.get("LOG_FILE"))
    bodies.init_app(app)
    db.init_app(app)
    runtime.init_app(app)
    smorest_api.init_app(app)
    smorest_api.register_blueprint(auth.blp)
    api.init_app(app)
    logging.init_app(app)
    metrics.init_app(app, gauges=[BreachCollector])
    ops.init_app(app)
    limits.init_app(app)
    cli.init_app(app)
    review.init_app(app)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app
