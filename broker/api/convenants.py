"""Convenant definitions, as the parties' systems read them."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from broker import runtime
from broker.auth import require_token

blp = Blueprint("convenants", __name__, url_prefix="/api/v1/convenants", description="Convenant definitions")


@blp.route("")
@blp.doc(security=[{"bearerAuth": []}])
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
@blp.doc(security=[{"bearerAuth": []}])
@require_token
def get_convenant(convenant_id: str) -> dict[str, Any]:
    """Return one convenant definition: parties, categories, fields and their reasons."""
    return runtime.get_convenant(convenant_id).to_dict()
