"""Request bodies: read whole within MAX_CONTENT_LENGTH, or refused; never parsed cut short.

werkzeug refuses a Content-Length over MAX_CONTENT_LENGTH up front. A chunked body has no
Content-Length: the server (gunicorn, werkzeug's own) de-chunks it and sets
`wsgi.input_terminated`, and werkzeug then reads it through a LimitedStream that just stops at
the limit. The rest was cut off without an error, so a 72 MB list was read as the records of its
first 64 MB. Here every body the server terminates is read by the broker itself, to one byte past
the limit: over it is a 413, shorter than its Content-Length is a 400, and only a body read whole
reaches `get_data`, `request.form` or a JSON parser. The body is held in memory once, as before
(every endpoint that takes one reads it whole).
"""

from __future__ import annotations

import io
from functools import cached_property
from typing import IO

from flask import Flask, Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

READ_SIZE = 64 * 1024


def too_large(limit: int) -> RequestEntityTooLarge:
    # werkzeug's own exception, as for a Content-Length over the limit: a 413 problem+json
    # (ProblemApi), and no step of the endpoint (nor its audit entry) has begun.
    return RequestEntityTooLarge(f"De body is groter dan {limit} bytes; er is niets van verwerkt.")


def read_whole(stream: IO[bytes], limit: int, length: int | None) -> IO[bytes]:
    """The body in `stream` (which the server ends where the body ends), read whole.

    Raises RequestEntityTooLarge past `limit` bytes, and ClientDisconnected (400) when the body ends
    before its Content-Length `length` or the connection breaks off.
    """
    cap = (length if length is not None else limit) + 1
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        try:
            chunk = stream.read(min(cap - size, READ_SIZE))
        except (OSError, ValueError) as e:  # a broken chunk or a closed connection
            raise ClientDisconnected() from e
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if length is None and size > limit:
        raise too_large(limit)
    if length is not None and size != length:
        raise ClientDisconnected()
    # A BytesIO over bytes shares them, and get_data's read() returns them without a copy.
    return io.BytesIO(b"".join(chunks))


class WholeBodyRequest(Request):
    """A request whose `stream` (and so get_data, form, json) holds the whole body or raises."""

    @cached_property
    def stream(self) -> IO[bytes]:
        if self.shallow:
            raise RuntimeError("This request was created with 'shallow=True'; its body cannot be read.")
        limit = self.max_content_length
        length = self.content_length
        if limit is not None and length is not None and length > limit:
            raise too_large(limit)
        if limit is None or "wsgi.input_terminated" not in self.environ:
            # With a Content-Length, werkzeug's stream raises on a short body; without one and
            # without a server that ends the stream, werkzeug reads nothing (never a part).
            return get_input_stream(self.environ, max_content_length=limit)
        return read_whole(self.environ["wsgi.input"], limit, length)


def init_app(app: Flask) -> None:
    app.request_class = WholeBodyRequest
