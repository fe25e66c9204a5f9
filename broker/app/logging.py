"""Structured JSON logs that never carry a burgerservicenummer."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog
from flask import Flask, Response, g, request
from stdnum.nl import bsn as stdnum_bsn
from structlog.typing import Processor

# Nine digits, also written in the groups people use (1234.56.782, 123 45 6782, 123-456-782).
BSN_LIKE = re.compile(
    r"(?<!\d)\d{9}(?!\d)"
    r"|(?<!\d)(?<!\d[ .\-])"
    r"(?:\d{4}([ .\-])\d{2}\1\d{3}|\d{3}([ .\-])\d{2}\2\d{4}|\d{3}([ .\-])\d{3}\3\d{3})"
    r"(?!\d)(?![ .\-]\d)"
)
HAS_DIGITS = re.compile(r"\d{2}")
REDACTED = "[bsn-verwijderd]"


def _replace(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return REDACTED if stdnum_bsn.is_valid(digits) else match.group()


def _redact_text(text: str) -> str:
    return BSN_LIKE.sub(_replace, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _redact_text(value) if HAS_DIGITS.search(value) else value
    if isinstance(value, int) and not isinstance(value, bool) and 10**8 <= value < 10**9:
        return REDACTED if stdnum_bsn.is_valid(str(value)) else value
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_bsn(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace anything that passes the elfproef by a marker, wherever it sits in the event."""
    for key, value in event_dict.items():
        event_dict[key] = _redact(value)
    return event_dict


def configure_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Route structlog and stdlib logging through one JSON renderer with BSN redaction."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        # Redaction runs last, after exceptions are rendered into text, so nothing escapes it.
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_bsn,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    for handler in handlers:
        handler._broker_handler = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in root.handlers:
        # Close what an earlier create_app opened; leave handlers others (pytest) own alone.
        if getattr(old, "_broker_handler", False):
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def init_app(app: Flask) -> None:
    log = structlog.get_logger("broker.http")

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _log_request(response: Response) -> Response:
        caller = g.get("caller")
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 2),
            party=getattr(caller, "party_id", None),
            client=getattr(caller, "client_id", None),
        )
        return response
