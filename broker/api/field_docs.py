"""What the broker's own marshmallow fields look like in /openapi.json.

apispec knows marshmallow's fields; the broker's coded fields (schemas/fields.py and
broker/app/inputs.py) validate by themselves, so they say here what they take. A documented
rule is never stricter than the field's own check: what a field accepts always fits its
documentation, so schemathesis' invalid data is refused (tests/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_instance
from apispec.ext.marshmallow.openapi import OpenAPIConverter

from broker.app.inputs import Count, Flag, Identifier, Items, Moment
from schemas.fields import Bsn, Choice, Date, Gemeente, Postcode, Text


def coded_field2properties(self: Any, field: ma.fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An apispec attribute function (bound to its OpenAPIConverter) for the broker's fields."""
    if isinstance(field, Text):
        text: dict[str, Any] = {"type": "string", "minLength": 1}
        if field.max_length is not None:
            text["maxLength"] = field.max_length
        if field.pattern is not None:
            text["pattern"] = field.pattern.pattern
        return text
    if isinstance(field, Bsn):
        return {"type": "string", "pattern": "^[0-9]{9}$", "description": "A BSN (elfproef); never repeated."}
    if isinstance(field, Date):
        return {"type": "string", "format": "date"}
    if isinstance(field, Postcode):
        return {"type": "string", "description": "A Dutch postcode, `1234 AB`."}
    if isinstance(field, Gemeente):
        # No enum: the check takes any case and surrounding spaces, and answers the spelling below.
        names = ", ".join(sorted(field.convenant.werkgebied))
        return {"type": "string", "description": f"A gemeente in the werkgebied: {names}."}
    if isinstance(field, Choice):
        return {"type": "string", "enum": list(field.choices)}
    if isinstance(field, Moment):
        return {"type": "string", "description": "ISO 8601; without an offset it is read as Europe/Amsterdam time."}
    if isinstance(field, Identifier):
        return {"type": "string", "description": "An id the broker issued (a UUID)."}
    if isinstance(field, Flag):
        return {"type": "boolean"}
    if isinstance(field, Count):
        return {"type": "integer", "minimum": 0}
    if isinstance(field, Items):
        return {"maxItems": field.max_items}
    return {}


class Passed(ma.fields.Field):
    """A value taken as sent (null too) for a service to check, as it checks the same value read
    from a CSV. Documented with `metadata`; `service_required` marks it required in the document,
    which the service enforces (with its own status and message)."""

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        return value


class BrokerConverter(OpenAPIConverter):
    """apispec's converter with the broker's fields."""

    def init_attribute_functions(self) -> None:
        super().init_attribute_functions()
        self.add_attribute_function(coded_field2properties)

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().schema2jsonschema(schema)
        # apispec says what a schema does with other keys only when it has no Meta.description;
        # an answer keeps them (broker/app/answers.py), described or not.
        if resolve_schema_instance(schema).unknown == ma.INCLUDE:
            jsonschema.setdefault("additionalProperties", True)
        return jsonschema

    def fields2jsonschema(self, fields: Any, *, partial: Any = None) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().fields2jsonschema(fields, partial=partial)
        checked = [f.data_key or name for name, f in fields.items() if f.metadata.get("service_required")]
        if checked:
            jsonschema["required"] = sorted({*jsonschema.get("required", ()), *checked})
        return jsonschema


class BrokerMarshmallowPlugin(MarshmallowPlugin):
    Converter = BrokerConverter
