"""The versioned HTTP API for parties."""

from flask import Flask

from broker.api import audit, audit_entries, breaches, cases, convenants, deliveries, quarters, rights, submissions
from broker.api.record_schemas import document_records
from broker.app.extensions import api

BEARER: dict[str, list[str]] = {"bearerAuth": []}


def init_app(app: Flask) -> None:
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    # Before the blueprints: their bodies refer to the records of the convenants loaded (runtime).
    document_records(api.spec, api.ma_plugin, app.extensions["broker.validators"])
    for blueprint in (
        convenants.blp, submissions.blp, deliveries.blp, audit.blp, audit.register_blp, audit_entries.blp,
        quarters.blp, breaches.blp, rights.blp, cases.blp,
    ):
        api.register_blueprint(blueprint)
