"""flask-smorest's Api with problem+json errors and an API-Version header on every response."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from broker.errors import BrokerError

PROBLEM_JSON = "application/problem+json"


def problem_response(error: BrokerError) -> Response:
    response = jsonify(error.to_problem())
    response.status_code = error.status
    response.mimetype = PROBLEM_JSON
    response.headers.update(error.headers)
    return response


class ProblemApi(Api):
    """An Api whose every error, ours or werkzeug's, is an RFC 9457 problem document."""

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        app.register_error_handler(BrokerError, problem_response)
        app.after_request(self._add_version_header)

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
