"""The broker's exceptions. Each becomes one `application/problem+json` response."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class BrokerError(Exception):
    """Base of every error the API reports to a caller."""

    status = 500
    slug = "internal-error"
    title = "Interne fout"

    def __init__(
        self,
        detail: str,
        errors: Iterable[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        if self.errors:
            problem["errors"] = self.errors
        return problem


class BadRequest(BrokerError):
    status = 400
    slug = "bad-request"
    title = "Ongeldig verzoek"


class ValidationFailed(BrokerError):
    status = 422
    slug = "validation-failed"
    title = "Records voldoen niet aan het convenant"


class Unauthorized(BrokerError):
    status = 401
    slug = "unauthorized"
    title = "Niet geauthenticeerd"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, **extra)


class Forbidden(BrokerError):
    status = 403
    slug = "forbidden"
    title = "Niet toegestaan"


class NotFound(BrokerError):
    status = 404
    slug = "not-found"
    title = "Niet gevonden"


class Conflict(BrokerError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(BrokerError):
    status = 413
    slug = "payload-too-large"
    title = "Verzoek te groot"


class UnsupportedMediaType(BrokerError):
    status = 415
    slug = "unsupported-media-type"
    title = "Mediatype niet ondersteund"


# Seconds a client waits before retrying after a passing fault (database away, audit write refused).
RETRY_AFTER = "5"


class ServiceUnavailable(BrokerError):
    status = 503
    slug = "service-unavailable"
    title = "Dienst tijdelijk niet beschikbaar"


class OAuthError(BrokerError):
    """A token endpoint error; carries the RFC 6749 `error` code besides the problem fields."""

    def __init__(self, error: str, detail: str, status: int = 400) -> None:
        super().__init__(detail, error=error, error_description=detail)
        self.status = status
        self.slug = f"oauth-{error.replace('_', '-')}"
        self.title = "OAuth-fout"
