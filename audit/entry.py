"""Seal audit entries into the log: canonical form, chain hash, leaf hash.

Sealing gives an entry (`audit.logboek.AuditEntry`) its place in the log: its `index` and
`prev_hash`, the chain hash of the entry before it. The canonical form is the RFC 8785 (JCS)
serialisation of that whole record, and two hashes are taken of it:

    chain_hash = SHA-256(previous chain_hash || canonical)   (64 zero hex digits before index 0)
    leaf_hash  = SHA-256(0x00 || canonical)                   (the RFC 6962 Merkle leaf)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from audit.jcs import (
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    encode_canonical,
    encode_canonical_text,
)
from audit.logboek import (
    ACTOR_TYPES,
    STATUSES,
    Actor,
    AuditEntry,
    ForeignOperation,
    format_time,
    new_span_id,
    new_trace_id,
)
from audit.proof import HASH_SIZE, hash_leaf

__all__ = [
    "ACTOR_TYPES",
    "GENESIS_HASH",
    "STATUSES",
    "Actor",
    "AuditEntry",
    "ForeignOperation",
    "SealedEntry",
    "canonicalize_entry",
    "chain_next",
    "decode_record",
    "format_time",
    "hash_leaf",
    "new_span_id",
    "new_trace_id",
    "seal_entries",
]

GENESIS_HASH = bytes(HASH_SIZE)
"""The chain hash "before" entry 0: its prev_hash is 64 zero hex digits."""

_HASH_HEX = re.compile(r"[0-9a-f]{64}")
# The same string escaping as RFC 8785 §3.2.2.2 (see audit.jcs), for the template below.
_quote = json.encoder.encode_basestring


def _check(ok: bool, message: str) -> None:
    """Raise ValueError with `message` unless `ok`."""
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """An entry with its place in the log: the row the database stores and verify_log reads.

    The field order is verify_log's row order, so `astuple`-style rows feed it directly.
    """

    index: int
    canonical: bytes
    chain_hash: bytes
    leaf_hash: bytes


def _quote_optional(value: str | None) -> str:
    """Return `value` as a JSON string, or null."""
    return "null" if value is None else _quote(value)


def _encode_entry(entry: AuditEntry, index: int, prev_hex: str) -> bytes:
    """Return the canonical bytes of `entry` at `index`: canonicalize_entry(entry.to_record()).

    The keys are written in RFC 8785 §3.2.3 order (all ASCII, so UTF-16 order is byte order).
    Ids, times, status, actor type, index and prev_hash were validated to need no escaping.
    """
    actor, foreign = entry.actor, entry.foreign_operation
    foreign_json = "null" if foreign is None else (
        f'{{"party":{_quote(foreign.party)},"span_id":"{foreign.span_id}",'
        f'"trace_id":"{foreign.trace_id}"}}')
    parent = "null" if entry.parent_span_id is None else f'"{entry.parent_span_id}"'
    attributes = encode_canonical_text(entry.attributes) if entry.attributes else "{}"
    parties = ",".join(map(_quote, entry.parties))
    text = (
        f'{{"actor":{{"id":{_quote(actor.id)},"party":{_quote_optional(actor.party)},'
        f'"type":"{actor.type}"}},"attributes":{attributes},'
        f'"convenant_id":{_quote_optional(entry.convenant_id)},'
        f'"data_subject_id":{_quote_optional(entry.data_subject_id)},'
        f'"data_subject_id_type":{_quote_optional(entry.data_subject_id_type)},'
        f'"end_time":"{entry.end_time}","foreign_operation":{foreign_json},"index":{index},'
        f'"name":{_quote(entry.name)},"parent_span_id":{parent},"parties":[{parties}],'
        f'"prev_hash":"{prev_hex}",'
        f'"processing_activity_id":{_quote(entry.processing_activity_id)},'
        f'"span_id":"{entry.span_id}","start_time":"{entry.start_time}",'
        f'"status":"{entry.status}","trace_id":"{entry.trace_id}"}}'
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc


def canonicalize_entry(record: Mapping[str, Any]) -> bytes:
    """Return the RFC 8785 canonical bytes of a record that has its `index` and `prev_hash`."""
    index, prev_hash = record.get("index"), record.get("prev_hash")
    _check(type(index) is int and index >= 0, "record needs a non-negative integer index")
    _check(isinstance(prev_hash, str) and _HASH_HEX.fullmatch(prev_hash) is not None,
           "record needs prev_hash as 64 lowercase hex digits")
    return encode_canonical(dict(record))


def decode_record(canonical: bytes) -> dict[str, Any]:
    """Parse canonical entry bytes back into a record; raise ValueError unless truly canonical."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        """Build an object, refusing duplicate keys (JCS output never has them)."""
        keys = [key for key, _ in pairs]
        _check(len(set(keys)) == len(keys), "duplicate key in entry")
        return dict(pairs)

    def no_constant(name: str) -> Any:
        """Refuse NaN and Infinity, which Python's parser would otherwise accept."""
        raise ValueError(f"{name} is not JSON")

    def number(text: str) -> int | float:
        """Parse an integer literal the way a JCS (double-based) reader does."""
        # JCS numbers are doubles (RFC 8785 §3.2.2.3): 2**53 and beyond are written without a
        # fraction but can only be floats.
        value = int(text)
        return value if abs(value) <= MAX_SAFE_INTEGER else float(text)

    record = json.loads(canonical, object_pairs_hook=unique, parse_constant=no_constant,
                        parse_int=number)
    _check(isinstance(record, dict), "entry is not a JSON object")
    _check(encode_canonical(record) == canonical, "entry bytes are not in RFC 8785 canonical form")
    return dict(record)


def chain_next(prev: bytes, canonical: bytes) -> bytes:
    """Return the chain hash SHA-256(prev || canonical) of the entry after chain hash `prev`."""
    _check(len(prev) == HASH_SIZE, "a chain hash is 32 bytes")
    return hashlib.sha256(prev + canonical).digest()


def seal_entries(
    entries: Iterable[AuditEntry], start_index: int, prev_chain_hash: bytes
) -> list[SealedEntry]:
    """Give entries consecutive indices from `start_index` and chain them after `prev_chain_hash`.

    `prev_chain_hash` is the chain hash of entry `start_index - 1` (GENESIS_HASH for index 0).
    """
    _check(type(start_index) is int and start_index >= 0, "start_index must be >= 0")
    _check(len(prev_chain_hash) == HASH_SIZE, "a chain hash is 32 bytes")
    _check(start_index > 0 or prev_chain_hash == GENESIS_HASH,
           "entry 0 must follow GENESIS_HASH")
    sha256 = hashlib.sha256
    prev = bytes(prev_chain_hash)
    sealed: list[SealedEntry] = []
    for index, entry in enumerate(entries, start_index):
        _check(isinstance(entry, AuditEntry), "seal_entries takes AuditEntry objects")
        canonical = _encode_entry(entry, index, prev.hex())
        chain = sha256(prev + canonical).digest()
        sealed.append(SealedEntry(index, canonical, chain, sha256(b"\x00" + canonical).digest()))
        prev = chain
    return sealed
