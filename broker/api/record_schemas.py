"""The records of each convenant in /openapi.json: one component per category, chosen by `category`.

The components are made from the very marshmallow schemas the convenant's `RecordValidator`
validates with (schemas/validation.py, built from the convenant file): a category documents exactly
the fields Bijlage 1 allows for it, with their types, lengths, patterns and choices, and each field's
description is its Bijlage 1 row: the kind of data and the reason it is exchanged. Nothing about a
convenant is written here; a second convenant file adds its own components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from schemas.convenant import Category, Convenant, FieldSpec
from schemas.fields import Object
from schemas.validation import RecordValidator


class Records(ma.fields.List):
    """The records of a submission or correction, taken as sent (required, checked by the service).

    The convenant's `RecordValidator` checks them in the service (per record and field, screened,
    against the sending party's categories), as it checks the records of a CSV, not this field;
    /openapi.json shows them as the convenant's record components (`records2properties`).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ma.fields.Raw(), metadata={"service_required": True}, **kwargs)

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        return value


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def component_name(convenant: Convenant, category: Category) -> str:
    """The component of a category's records: Record_<convenant>_<category>."""
    return f"Record_{convenant.id}_{category.id}"


def _object(converter: Any, schema: ma.Schema, specs: Mapping[str, FieldSpec]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in schema.fields.items():
        spec = specs.get(name)
        if isinstance(field, Object):
            inner = {sub.name: sub for sub in spec.fields} if spec else {}
            properties[name] = _object(converter, field.schema, inner)
        else:
            properties[name] = converter.field2property(field)
        if spec is not None:
            own = properties[name].get("description")
            properties[name]["description"] = f"{spec.label}. {own}" if own else f"{spec.label}."
        if field.required:
            required.append(name)
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def record_component(converter: Any, convenant: Convenant, category: Category, schema: ma.Schema) -> dict[str, Any]:
    """The OpenAPI schema of one category's records, from the schema that validates them."""
    component = _object(converter, schema, convenant.fields)
    component["description"] = f"{category.label} ({convenant.title}): {category.definition}"
    properties = component["properties"]
    properties["category"]["description"] = f"`{category.id}`: {category.label}."
    for item in category.items:
        for name in item.fields:
            label = properties[name].get("description", "")
            properties[name]["description"] = f"{label} Bijlage 1, {item.item}: {item.reason}".strip()
    return component


def document_records(spec: APISpec, plugin: MarshmallowPlugin, validators: Mapping[str, RecordValidator]) -> None:
    """Register every convenant's record components and show `Records` fields as one of them.

    The discriminator (`category`) is given when no two convenants share a category id.
    """
    converter = plugin.converter
    assert converter is not None
    mapping: dict[str, str] = {}
    refs: list[dict[str, str]] = []
    unique = True
    for validator in validators.values():
        convenant = validator.convenant
        for category_id, schema in validator.schemas.items():
            category = convenant.categories[category_id]
            name = component_name(convenant, category)
            spec.components.schema(name, record_component(converter, convenant, category, schema))
            refs.append(ref(name))
            unique = unique and category_id not in mapping
            mapping[category_id] = ref(name)["$ref"]
    items: dict[str, Any] = {"oneOf": refs}
    if unique:
        items["discriminator"] = {"propertyName": "category", "mapping": mapping}

    def records2properties(self: Any, field: ma.fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if isinstance(field, Records):
            return {"items": items, "description": "The records, each of a category of the convenant."}
        return {}

    converter.add_attribute_function(records2properties)
