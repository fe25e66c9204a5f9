"""Serialise JSON values in the JSON Canonicalization Scheme (RFC 8785).

`rfc8785.dumps` is the reference serialiser, but it costs tens of microseconds per audit entry.
For the values audit entries actually hold (strings, safe integers, booleans, null, lists and
objects whose keys sort the same in UTF-16 and in code points) a direct serialiser built on the
standard library's C string escaper writes byte-for-byte the same output several times faster;
everything else (floats above all) goes to `rfc8785`.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "encode_canonical",
    "encode_canonical_text",
]

# RFC 8785 §3.2.2.3 writes numbers as IEEE 754 doubles; rfc8785 refuses integers that a double
# cannot hold exactly, and the fast path must refuse the same ones.
MAX_SAFE_INTEGER = 2**53 - 1

CanonicalizationError = rfc8785.CanonicalizationError

# The standard library escapes strings exactly as RFC 8785 §3.2.2.2 (ECMAScript JSON.stringify)
# does when ASCII escaping is off: \" \\ \b \f \n \r \t, the other controls as lowercase
# \u00xx, and every other character as itself (UTF-8 once encoded).
_quote = json.encoder.encode_basestring


def _sorts_as_utf16(key: str) -> bool:
    """Return whether sorting by code point orders `key` as RFC 8785 §3.2.3 (UTF-16) would.

    Code point and UTF-16 code unit order only disagree between a character above U+FFFF (a
    surrogate pair, D800-DBFF) and one in U+E000-U+FFFF; below U+D800 they always agree.
    """
    return key.isascii() or max(key) < "\ud800"


def _encode_plain(value: Any) -> str | None:
    """Return `value` as JCS text if it is plain JSON, or None to leave it to rfc8785.

    Plain means strings, safe integers, booleans, null, lists and string-keyed objects whose keys
    sort the same in code points and UTF-16. Floats are not: they need ECMAScript number
    formatting (RFC 8785 §3.2.2.3), which rfc8785 implements.
    """
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value) if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None
    if kind is dict:
        members = []
        for key, item in sorted(value.items()):
            text = _encode_plain(item)
            if type(key) is not str or not _sorts_as_utf16(key) or text is None:
                return None
            members.append(_quote(key) + ":" + text)
        return "{" + ",".join(members) + "}"
    if kind is list or kind is tuple:
        items = []
        for item in value:
            text = _encode_plain(item)
            if text is None:
                return None
            items.append(text)
        return "[" + ",".join(items) + "]"
    return None


def encode_canonical_text(value: Any) -> str:
    """Return `value` as RFC 8785 canonical JSON text (see `encode_canonical`)."""
    try:
        text = _encode_plain(value)
    except TypeError:  # keys of mixed types do not sort; rfc8785 says why that is wrong
        text = None
    return rfc8785.dumps(value).decode() if text is None else text


def encode_canonical(value: Any) -> bytes:
    """Serialise `value` as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises `CanonicalizationError` for values JCS cannot represent: NaN or infinite floats,
    integers beyond 2**53 - 1, lone surrogates, non-string keys, non-JSON types.
    """
    try:
        return encode_canonical_text(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates are not Unicode scalar values, so they have no UTF-8 form (RFC 8785
        # §3.2.2.2 requires valid Unicode); rfc8785 refuses them the same way.
        raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc
