"""The versioned HTTP API for parties."""

from flask import Flask

from broker.api import convenants, deliveries, submissions
from broker.extensions import api

BEARER = {"bearerAuth": []}


def init_app(app: Flask) -> None:
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for module in (convenants, submissions, deliveries):
        api.register_blueprint(module.blp)
