"""Convenant definitions, as the parties' systems read them."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from broker.app import runtime
from broker.app.answers import Answer
from broker.app.problems import BEARER_PROBLEMS, SECURITY, VERSION, problems
from broker.parties.oauth import require_token

blp = Blueprint("convenants", __name__, url_prefix="/api/v1/convenants", description="Convenant definitions")

F = ma.fields


class ConvenantSummarySchema(Answer):
    id = F.String(required=True)
    version = F.String(required=True)
    title = F.String(required=True)
    digest = F.String(required=True, metadata={"description": "The digest of the definition file."})


class ConvenantListSchema(Answer):
    convenants = F.List(F.Nested(ConvenantSummarySchema), required=True)


class ConvenantPartySchema(Answer):
    id = F.String(required=True)
    name = F.String(required=True)
    role = F.String(required=True)
    werkgebied = F.List(F.String())
    provides = F.List(F.String())


class ConvenantSchema(Answer):
    """The definition file's own structure (`Convenant.to_dict`), with its digest."""

    class Meta(Answer.Meta):
        description = "The definition file's own structure, with its digest."

    id = F.String(required=True)
    # As the file has it: a TOML version may be a number (Raw: dumped as it is).
    version = F.Raw(required=True, metadata={"oneOf": [{"type": "string"}, {"type": "integer"}]})
    title = F.String(required=True)
    digest = F.String(required=True)
    parties = F.List(F.Nested(ConvenantPartySchema), required=True)
    # `fields` is the key; the attribute is named apart from marshmallow's `Schema.fields`.
    field_definitions = F.Dict(values=F.Dict(), required=True, data_key="fields", attribute="fields")
    categories = F.Dict(values=F.Dict(), required=True)


@blp.route("")
@blp.doc(security=SECURITY, responses=problems(*BEARER_PROBLEMS))
@blp.response(200, ConvenantListSchema, description="The convenants", headers=VERSION)
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
@blp.doc(security=SECURITY, responses=problems(*BEARER_PROBLEMS, 404))
@blp.response(200, ConvenantSchema, description="The convenant definition", headers=VERSION)
@require_token
def get_convenant(convenant_id: str) -> dict[str, Any]:
    """Return one convenant definition: parties, categories, fields and their reasons."""
    return runtime.get_convenant(convenant_id).to_dict()
