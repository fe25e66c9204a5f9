"""Convenant definitions, as the parties' systems read them."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from broker.app import runtime
from broker.app.problems import BEARER_PROBLEMS, SECURITY, component, json_response, responses
from broker.parties.oauth import require_token

blp = Blueprint("convenants", __name__, url_prefix="/api/v1/convenants", description="Convenant definitions")

CONVENANT_SUMMARY = component(
    "ConvenantSummary",
    {
        "type": "object",
        "required": ["id", "version", "title", "digest"],
        "properties": {
            "id": {"type": "string"},
            "version": {"type": "string"},
            "title": {"type": "string"},
            "digest": {"type": "string", "description": "The digest of the definition file."},
        },
    },
)
CONVENANT_LIST = component(
    "ConvenantList",
    {
        "type": "object",
        "required": ["convenants"],
        "properties": {"convenants": {"type": "array", "items": CONVENANT_SUMMARY}},
    },
)
CONVENANT = component(
    "Convenant",
    {
        "type": "object",
        "description": "The definition file's own structure, with its digest.",
        "required": ["id", "version", "title", "digest", "parties", "fields", "categories"],
        "properties": {
            "id": {"type": "string"},
            "version": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "title": {"type": "string"},
            "digest": {"type": "string"},
            "parties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "role"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "role": {"type": "string"},
                        "werkgebied": {"type": "array", "items": {"type": "string"}},
                        "provides": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "fields": {"type": "object", "additionalProperties": {"type": "object"}},
            "categories": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    },
)


@blp.route("")
@blp.doc(
    security=SECURITY,
    responses=responses({200: json_response(CONVENANT_LIST, "The convenants")}, *BEARER_PROBLEMS),
)
@require_token
def list_convenants() -> dict[str, Any]:
    """List the convenants this broker serves."""
    return {
        "convenants": [
            {"id": c.id, "version": c.version, "title": c.title, "digest": c.digest}
            for c in runtime.convenants().values()
        ]
    }


@blp.route("/<convenant_id>")
@blp.doc(
    security=SECURITY,
    responses=responses({200: json_response(CONVENANT, "The convenant definition")}, *BEARER_PROBLEMS, 404),
)
@require_token
def get_convenant(convenant_id: str) -> dict[str, Any]:
    """Return one convenant definition: parties, categories, fields and their reasons."""
    return runtime.get_convenant(convenant_id).to_dict()
