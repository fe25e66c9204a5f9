"""Request bodies through `@blp.arguments`: one marshmallow schema validates a body and documents it.

webargs reads the body as the broker has always read it (strict JSON, 415 for another media type)
and turns marshmallow's errors into the broker's problem+json: `errors[]` of
`{record, field, code, message}`, a nested field dotted, a key the caller made up named as
`reported_name` says. How a refusal is worded and which status it has is the schema's
(`BodySchema`, `EnvelopeSchema`).

`@blp.arguments(Schema)` parses before the view runs. A view that must first check who asks, or
must read the body inside its audited step (so that a refused body is audited as a refusal), takes
`@blp.arguments(Schema, deferred=True)`: it gets a `Body` and calls `body.load()` where it read the
body before. Either way the schema is the one definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import marshmallow as ma
from flask import Request
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser

from broker.app.errors import UnsupportedMediaType
from broker.app.inputs import BodySchema, EnvelopeSchema, violations
from broker.app.problems import json_body, problem_response_name


def _policy(schema: ma.Schema) -> type[BodySchema]:
    return type(schema) if isinstance(schema, BodySchema) else BodySchema


class Body:
    """A request body the view loads when it is ready for it (`load`), with the documented schema."""

    def __init__(self, parser: BodyParser, schema: ma.Schema, location: str = "json") -> None:
        self.parser = parser
        self.schema = schema
        self.location = location

    def load(self) -> dict[str, Any]:
        """The body, validated; raises the schema's refusal (problem+json) when it does not fit."""
        loaded: dict[str, Any] = self.parser.parse(self.schema, location=self.location)
        return loaded


class BodyParser(FlaskParser):
    """webargs' parser with the broker's JSON reading and problem+json errors."""

    def load_json(self, req: Request, schema: ma.Schema) -> Any:
        policy = _policy(schema)
        if policy.EMPTY_IS_OBJECT and not req.get_data(cache=True):
            return {}
        if not req.is_json:
            raise UnsupportedMediaType(policy.UNSUPPORTED)
        body = json_body()
        if not isinstance(body, dict):
            raise policy.not_an_object()
        return body

    def handle_error(
        self,
        error: ma.ValidationError,
        req: Request,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        policy = _policy(schema)
        messages: Any = error.messages
        if isinstance(messages, dict):  # webargs files the errors under the body's location
            messages = next((messages[where] for where in ("json", "form") if where in messages), messages)
        raise policy.refusal(list(violations(messages, error.data, unknown_message=policy.UNKNOWN_MESSAGE)))

    def use_args(self, argmap: Any, req: Any = None, *, deferred: bool = False, **kwargs: Any) -> Callable[..., Any]:
        """As webargs' `use_args`; with `deferred` the view gets a `Body` to load itself."""
        if not deferred:
            return super().use_args(argmap, req, **kwargs)
        schema = argmap() if isinstance(argmap, type) else argmap

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **view_args: Any) -> Any:
                return func(*args, Body(self, schema, kwargs.get("location", "json")), **view_args)

            wrapper.__dict__.update(func.__dict__)
            wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = func.__name__, func.__doc__, func  # type: ignore[attr-defined]
            return wrapper

        return decorator


class ApiBlueprint(Blueprint):
    """A Blueprint whose `@arguments` read bodies with `BodyParser` and document their refusals as
    the broker's shared problem responses."""

    ARGUMENTS_PARSER = BodyParser()

    def arguments(self, schema: Any, **kwargs: Any) -> Callable[..., Any]:
        if isinstance(schema, type):
            schema = schema()
        decorate = super().arguments(schema, **kwargs)
        refused = 400 if isinstance(schema, EnvelopeSchema) else 422
        # flask-smorest names the refusal by its HTTPStatus name; here it is the Problem response,
        # unless the schema names its own (the token request's are OAuth problems).
        documented = getattr(schema, "REFUSED_AS", None) or {refused: problem_response_name(refused)}

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            view = decorate(func)
            view._apidoc["arguments"]["responses"] = dict(documented)
            return view

        return decorator
