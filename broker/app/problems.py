"""flask-smorest's Api with problem+json errors and an API-Version header on every response.

The OpenAPI document says exactly what a caller gets back. Every operation documents its success
responses with `@blp.response` (a marshmallow schema that also dumps the body, broker/app/answers.py)
and, through `problems(...)`, the problem+json answers it can give; each of those is a reference to
one shared response component per status code (Problem404 and so on, with the `Problem` schema and
the API-Version header). There is no catch-all `default` response: a status code an operation does
not list is a bug in the operation or in its documentation, and the schemathesis run in
tests/test_fuzz.py finds both.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from broker.app.errors import BadRequest, BrokerError

PROBLEM_JSON = "application/problem+json"
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]

# What every operation behind `require_token` can answer: 400 (a token in the URL or the form),
# 401 (no, a bad or an expired token), 403 (the caller's party is suspended after a breach) and
# 503 (the database, which every token check reads, is unreachable: broker/app/health.py).
BEARER_PROBLEMS = (400, 401, 403, 503)
# The same for the breach endpoints, which a suspended party may still use.
BEARER_PROBLEMS_SUSPENDED_TOO = (400, 401, 503)
# What every operation that reads a request body can answer besides: 413 (over MAX_CONTENT_LENGTH)
# and 415 (a body in a media type the operation does not take).
BODY_PROBLEMS = (413, 415)
# What every operation that writes to the audit log can answer: 503 when that write fails.
AUDITED_PROBLEMS = (503,)


class ProblemErrorSchema(ma.Schema):
    """One broken rule of a problem document (documentation: `problem_response` writes it)."""

    class Meta:
        description = "One broken rule. Never repeats a BSN."
        unknown = ma.INCLUDE

    record = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "Index of the record (0-based), if any."}
    )
    field = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "The field, dotted for nested fields."}
    )
    code = ma.fields.String(required=True, metadata={"description": "The rule, e.g. `required`, `invalid_bsn`."})
    message = ma.fields.String(required=True, metadata={"description": "The rule in Dutch, for people."})
    line = ma.fields.Integer(metadata={"description": "The CSV line the record starts on (CSV only)."})


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem document, as `BrokerError.to_problem` builds it."""

    class Meta:
        description = "An RFC 9457 problem document."
        # Some problems add members (the token endpoint's RFC 6749 `error` and `error_description`).
        unknown = ma.INCLUDE

    type = ma.fields.String(
        required=True, metadata={"description": "A URI reference naming the problem, e.g. `/problems/not-found`."}
    )
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True, metadata={"minimum": 400, "maximum": 599})
    detail = ma.fields.String(required=True)
    errors = ma.fields.List(ma.fields.Nested(ProblemErrorSchema))


class OAuthProblemSchema(ProblemSchema):
    """The token endpoint's problems: the RFC 6749 error besides (not when werkzeug refused the request)."""

    class Meta(ProblemSchema.Meta):
        description = "An RFC 9457 problem document with the RFC 6749 error of the token endpoint."

    error = ma.fields.String(metadata={"description": "The RFC 6749 error code, e.g. `invalid_client`."})
    error_description = ma.fields.String()


API_VERSION_HEADER: dict[str, Any] = {
    "description": "The version of the API that answered.",
    "required": True,
    "schema": {"type": "string"},
}

# The problem schemas, registered with every spec under these names (auth.py's responses name them).
_PROBLEM_SCHEMAS: dict[str, type[ma.Schema]] = {
    "ProblemError": ProblemErrorSchema,
    "Problem": ProblemSchema,
    "OAuthProblem": OAuthProblemSchema,
}


def problem_response_name(status: int) -> str:
    """The response component of the problem documents with `status`: Problem404 and so on."""
    return f"Problem{HTTPStatus(status).value}"


# The headers of every success response (`@blp.response(..., headers=VERSION)`).
VERSION: dict[str, Any] = {"API-Version": "ApiVersion"}
# The other media type of an answer `Accept: text/csv` asks for (broker/app/csvio.py writes it).
CSV_ANSWER: dict[str, Any] = {"content": {"text/csv": {"schema": {"type": "string"}}}}
# The other media type of an audit answer a C2SP client reads as text (`Accept` chooses JSON).
TEXT_ANSWER: dict[str, Any] = {"content": {"text/plain": {"schema": {"type": "string"}}}}


def problems(*statuses: int) -> dict[int, Any]:
    """The problem+json responses of an operation (for `@blp.doc(responses=...)`), one per status.

    Keyed by int, as flask-smorest keys the success responses it merges them with."""
    return {status: problem_response_name(status) for status in sorted(set(statuses))}


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number beyond the range of a double")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _well_formed(value: Any) -> bool:
    """Whether every string in a parsed JSON document is well-formed Unicode (no lone surrogate,
    which a `\\ud800` escape can smuggle in and which no database, encoder or canonicaliser takes)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def json_body() -> Any:
    """The request body parsed as strict JSON (RFC 8259): refused with 400 when it is not JSON, has
    NaN or Infinity or a number beyond a double, or a string that is not well-formed Unicode."""
    try:
        body = json.loads(request.get_data(cache=True), parse_float=_finite, parse_constant=_constant)
    except (ValueError, RecursionError):
        raise BadRequest("De body is geen geldige JSON.") from None
    if not _well_formed(body):
        raise BadRequest("De body bevat een tekst die geen geldige Unicode is (een losse surrogaat).")
    return body


def problem_response(error: BrokerError) -> Response:
    response = jsonify(error.to_problem())
    response.status_code = error.status
    response.mimetype = PROBLEM_JSON
    response.headers.update(error.headers)
    return response


class ProblemApi(Api):
    """An Api whose every error, ours or werkzeug's, is an RFC 9457 problem document."""

    # No catch-all `default` response: each operation lists what it answers (see `problems`).
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _init_spec(self, *, marshmallow_plugin: Any = None, **kwargs: Any) -> None:
        # The broker's fields document themselves (broker/api/field_docs.py).
        from broker.api.field_docs import BrokerMarshmallowPlugin

        super()._init_spec(marshmallow_plugin=marshmallow_plugin or BrokerMarshmallowPlugin(), **kwargs)

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        app.register_error_handler(BrokerError, problem_response)
        app.after_request(self._add_version_header)

    def _register_responses(self) -> None:
        """Register the shared components: the problem schemas, the API-Version header, and one
        problem+json response per error status (lazily: only those an operation names appear)."""
        for name, schema in _PROBLEM_SCHEMAS.items():
            self.spec.components.schema(name, schema=schema)
        self.spec.components.header("ApiVersion", API_VERSION_HEADER)
        for status in HTTPStatus:
            if status < 400:
                continue
            response = {
                "description": status.phrase,
                "headers": {"API-Version": "ApiVersion"},
                "content": {PROBLEM_JSON: {"schema": ProblemSchema}},
            }
            self.spec.components.response(problem_response_name(status), response, lazy=True)
            oauth = {**response, "content": {PROBLEM_JSON: {"schema": OAuthProblemSchema}}}
            self.spec.components.response(f"OAuthProblem{status.value}", oauth, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        problem = BrokerError(error.description or error.name)
        problem.status = error.code or 500
        problem.title = error.name
        problem.slug = error.name.lower().replace(" ", "-")
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if messages:
            problem.errors = [
                {"record": None, "field": field, "code": "invalid", "message": "; ".join(map(str, msgs))}
                for location in messages.values()
                for field, msgs in location.items()
            ]
        if problem.status >= 500:
            problem.detail = "Er ging iets mis in de broker; de fout is gelogd."
        response = problem_response(problem)
        if error.response is None and hasattr(error, "get_headers"):
            for key, value in error.get_headers():
                if key.lower() != "content-type":
                    response.headers[key] = value
        return response

    @staticmethod
    def _add_version_header(response: Response) -> Response:
        response.headers["API-Version"] = current_app.config["API_VERSION"]
        return response
