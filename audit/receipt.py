"""Issue and check receipts: offline evidence that one entry is in the signed log.

A receipt is a JSON object

    {"index": 17, "leaf_hash": "<hex>", "tree_size": 42,
     "checkpoint": "<signed checkpoint note>", "inclusion_proof": ["<hex>", ...]}

that anyone holding the log's verifier key can check without the database: the note must carry a
valid signature, and the proof must lead from the leaf hash to the root the note signs
(RFC 9162 §2.1.3.2). Given the entry's canonical bytes, the leaf hash is checked against them too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from audit.checkpoint import NoteError, VerifierKey, open_note
from audit.proof import hash_leaf, verify_inclusion

__all__ = ["ReceiptError", "make_receipt", "verify_receipt"]

_HASH_HEX = re.compile(r"[0-9a-f]{64}")


class ReceiptError(ValueError):
    """A receipt that does not prove what it claims."""


def make_receipt(
    index: int, leaf_hash: bytes, checkpoint_note: str, proof: Sequence[bytes], tree_size: int
) -> dict[str, Any]:
    """Return the receipt for entry `index` under a signed checkpoint of `tree_size` entries."""
    return {
        "index": index,
        "leaf_hash": leaf_hash.hex(),
        "tree_size": tree_size,
        "checkpoint": checkpoint_note,
        "inclusion_proof": [node.hex() for node in proof],
    }


def _field(receipt: Mapping[str, Any], name: str, kind: type) -> Any:
    """Return receipt field `name`, refusing a missing one or one of another type."""
    value = receipt.get(name)
    if type(value) is not kind:
        raise ReceiptError(f"receipt field {name!r} is missing or not a {kind.__name__}")
    return value


def _hash(value: object, what: str) -> bytes:
    """Return a hash written as 64 lowercase hex digits, refusing anything else."""
    if not isinstance(value, str) or not _HASH_HEX.fullmatch(value):
        raise ReceiptError(f"{what} is not a SHA-256 hash in lowercase hex")
    return bytes.fromhex(value)


def verify_receipt(
    receipt: Mapping[str, Any],
    vkey: str | VerifierKey | Iterable[str | VerifierKey],
    entry: bytes | None = None,
    origin: str | None = None,
) -> None:
    """Check a receipt offline; raise ReceiptError saying what is wrong, return if it holds.

    `entry`, if given, is the canonical bytes the receipt is for; `origin`, if given, is the log
    the checkpoint must come from.
    """
    index = _field(receipt, "index", int)
    tree_size = _field(receipt, "tree_size", int)
    note = _field(receipt, "checkpoint", str)
    leaf_hash = _hash(receipt.get("leaf_hash"), "leaf_hash")
    path = _field(receipt, "inclusion_proof", list)
    proof = [_hash(node, f"inclusion_proof[{number}]") for number, node in enumerate(path)]
    try:
        checkpoint = open_note(note, vkey)
    except NoteError as exc:
        raise ReceiptError(f"the checkpoint is not validly signed: {exc}") from exc
    if origin is not None and checkpoint.origin != origin:
        raise ReceiptError(f"the checkpoint is from log {checkpoint.origin!r}, not {origin!r}")
    if checkpoint.size != tree_size:
        raise ReceiptError(
            f"the receipt claims tree size {tree_size} but its checkpoint signs {checkpoint.size}")
    if entry is not None and hash_leaf(entry) != leaf_hash:
        raise ReceiptError("the entry's bytes do not hash to the receipt's leaf_hash")
    if not 0 <= index < tree_size:
        raise ReceiptError(f"entry {index} is not in a log of {tree_size} entries")
    if not verify_inclusion(index, tree_size, leaf_hash, proof, checkpoint.root):
        raise ReceiptError(
            f"the inclusion proof does not lead from entry {index} to the signed root")
