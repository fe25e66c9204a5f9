"""The base of the API's response schemas, used through `@blp.response`.

A view builds its answer from the services as JSON-ready values (times already ISO 8601 text);
the schema documents it in /openapi.json and dumps it. A key the schema does not declare is kept
as the view built it, so documenting an answer never drops a part of it.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma


class Answer(ma.Schema):
    """A response body: dumped through its fields, with any other key of the view's answer kept."""

    class Meta:
        unknown = ma.INCLUDE

    @ma.post_dump(pass_original=True)
    def _keep_the_rest(self, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(original, dict):
            return {**original, **data}
        return data


def moment(**kwargs: Any) -> ma.fields.String:
    """A time the broker answers, as ISO 8601 text."""
    return ma.fields.String(metadata={"format": "date-time", **kwargs.pop("metadata", {})}, **kwargs)


def uuid(**kwargs: Any) -> ma.fields.String:
    """An id the broker issued."""
    return ma.fields.String(metadata={"format": "uuid", **kwargs.pop("metadata", {})}, **kwargs)


def count(**kwargs: Any) -> ma.fields.Integer:
    """A number of things, 0 or more."""
    return ma.fields.Integer(metadata={"minimum": 0, **kwargs.pop("metadata", {})}, **kwargs)


def day(**kwargs: Any) -> ma.fields.String:
    """A calendar date the broker answers, as ISO 8601 text."""
    return ma.fields.String(metadata={"format": "date", **kwargs.pop("metadata", {})}, **kwargs)
