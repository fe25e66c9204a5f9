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

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NoReturn

import marshmallow as ma
from flask import Request
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser

from broker.api_base import json_body, problem_response_name
from broker.errors import BadRequest, BrokerError, UnsupportedMediaType, ValidationFailed
from schemas.validation import MESSAGES, key_position, reported_name

UNKNOWN = ["Unknown field."]  # marshmallow's message for a key the schema does not have


class BodySchema(ma.Schema):
    """A JSON request body: unknown keys refused, every error a 422 naming field and rule.

    No body at all is read as `{}` (its required fields then say what is missing).
    """

    class Meta:
        unknown = ma.RAISE

    EMPTY_IS_OBJECT: ClassVar[bool] = True
    UNSUPPORTED: ClassVar[str] = "Stuur het verzoek als application/json."
    UNKNOWN_MESSAGE: ClassVar[str] = "Dit veld is niet toegestaan."

    @classmethod
    def refusal(cls, errors: list[dict[str, Any]]) -> BrokerError:
        """The error for a body that does not fit."""
        return ValidationFailed("Het verzoek voldoet niet.", errors)

    @classmethod
    def not_an_object(cls) -> BrokerError:
        """The error for JSON that is no object."""
        return ValidationFailed(
            "Stuur een JSON-object.",
            [{"record": None, "field": None, "code": "invalid_type", "message": "Verwacht een JSON-object."}],
        )


class EnvelopeSchema(BodySchema):
    """The envelope of records (a submission, a correction, an ending) whose contents a service
    checks in its audited step: here only its keys are, and a wrong body is a 400."""

    EMPTY_IS_OBJECT = False
    UNKNOWN_MESSAGE = "Onbekend veld."
    UNKNOWN_DETAIL: ClassVar[str] = "Onbekende velden in het verzoek."

    @classmethod
    def refusal(cls, errors: list[dict[str, Any]]) -> BrokerError:
        return BadRequest(cls.UNKNOWN_DETAIL, errors)

    @classmethod
    def not_an_object(cls) -> BrokerError:
        return BadRequest("De body is geen geldig JSON-object.")


def _child(data: Any, key: Any) -> Any:
    if isinstance(data, Mapping):
        return data.get(key)
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return None


def violations(
    messages: Any, data: Any = None, prefix: str = "", unknown_message: str = BodySchema.UNKNOWN_MESSAGE
) -> Iterable[dict[str, Any]]:
    """The errors in marshmallow's `messages` about the body (part) `data`; a key the caller made up
    is named by its position unless it is a plain identifier (`reported_name`)."""
    if isinstance(messages, Mapping):
        # In the order of the body: marshmallow collects unknown keys in a set.
        for key, value in sorted(messages.items(), key=lambda item: key_position(data, item[0])):
            if key == "_schema":
                yield from violations(value, data, prefix, unknown_message)
                continue
            name = "from" if key == "from_" else str(key)
            if value == UNKNOWN:
                name = reported_name(key, key_position(data, key))
            yield from violations(value, _child(data, key), f"{prefix}.{name}" if prefix else name, unknown_message)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from violations(message, data, prefix, unknown_message)
    else:
        code = getattr(messages, "code", None)
        text = str(messages)
        if code is None:
            code, text = ("not_allowed", unknown_message) if text == UNKNOWN[0] else ("invalid", MESSAGES["invalid"])
        yield {"record": None, "field": prefix or None, "code": code, "message": text}


def _policy(schema: ma.Schema) -> type[BodySchema]:
    return type(schema) if isinstance(schema, BodySchema) else BodySchema


class Body:
    """A request body the view loads when it is ready for it (`load`), with the documented schema."""

    def __init__(self, parser: BodyParser, schema: ma.Schema) -> None:
        self.parser = parser
        self.schema = schema

    def load(self) -> dict[str, Any]:
        """The body, validated; raises the schema's refusal (problem+json) when it does not fit."""
        loaded: dict[str, Any] = self.parser.parse(self.schema, location="json")
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
        messages = error.messages.get("json", error.messages) if isinstance(error.messages, dict) else error.messages
        raise policy.refusal(list(violations(messages, error.data, unknown_message=policy.UNKNOWN_MESSAGE)))

    def use_args(self, argmap: Any, req: Any = None, *, deferred: bool = False, **kwargs: Any) -> Callable[..., Any]:
        """As webargs' `use_args`; with `deferred` the view gets a `Body` to load itself."""
        if not deferred:
            return super().use_args(argmap, req, **kwargs)
        schema = argmap() if isinstance(argmap, type) else argmap

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **view_args: Any) -> Any:
                return func(*args, Body(self, schema), **view_args)

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

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            view = decorate(func)
            # flask-smorest names the refusal by its HTTPStatus name; here it is the Problem response.
            view._apidoc["arguments"]["responses"] = {refused: problem_response_name(refused)}
            return view

        return decorator
