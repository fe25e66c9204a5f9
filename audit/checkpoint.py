"""Sign and open checkpoints: the log's size and root hash in an Ed25519 signed note.

Checkpoint text (C2SP tlog-checkpoint, https://c2sp.org/tlog-checkpoint):

    <origin>\\n<tree size, decimal>\\n<base64 root hash>\\n[<extension line>\\n ...]

Signed note (C2SP signed-note, https://c2sp.org/signed-note): the text, a blank line, then one
line per signature, "\\u2014 <key name> <base64(4-byte key ID || signature)>\\n". For Ed25519 the
key ID is SHA-256(key name || 0x0A || 0x01 || public key)[:4] and a verifier key is written
"<key name>+<8 hex digits key ID>+<base64(0x01 || public key)>", as golang.org/x/mod/sumdb/note
does, so Go tooling and witnesses can check these checkpoints too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "SIGNATURE_TYPE_ED25519",
    "BadSignatureError",
    "Checkpoint",
    "MalformedNoteError",
    "NoteError",
    "UnknownKeyError",
    "VerifierKey",
    "compute_key_id",
    "format_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_note",
]

SIGNATURE_TYPE_ED25519 = 0x01  # signed-note, "Signature types"
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# signed-note: verifiers SHOULD cap the number of signatures and MUST accept 16; Go caps at 100.
_MAX_SIGNATURES = 100
_SIZE = re.compile(r"0|[1-9][0-9]*")  # tlog-checkpoint: decimal, no leading zeroes
_MAX_SIZE = 2**64 - 1
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A signed note or checkpoint that must not be trusted."""


class MalformedNoteError(NoteError):
    """The text is not a well-formed signed note, checkpoint or verifier key."""


class UnknownKeyError(NoteError):
    """No signature on the note comes from a key the verifier knows."""


class BadSignatureError(NoteError):
    """A signature from a known key does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: the log `origin` had `size` entries with Merkle root `root`."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """An Ed25519 note verifier: key name, 4-byte key ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether `signature` is this key's Ed25519 signature of `message` (RFC 8032)."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def _is_key_name(name: str) -> bool:
    """Return whether `name` is a note key name: non-empty, no Unicode spaces, no '+'."""
    return bool(name) and "+" not in name and not any(char.isspace() for char in name)


def _is_note_text(text: str) -> bool:
    """Return whether `text` is valid UTF-8 without ASCII controls other than newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(char < " " and char != "\n" for char in text)


def _decode_base64(text: str) -> bytes | None:
    """Decode standard base64 (RFC 4648 §4) strictly; return None if it is not."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _raw_public_key(public_key: Ed25519PublicKey | bytes) -> bytes:
    """Return the 32-byte RFC 8032 encoding of an Ed25519 public key."""
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return bytes(public_key)


def compute_key_id(name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """Return the key ID SHA-256(name || 0x0A || 0x01 || public key)[:4] (signed-note)."""
    raw = _raw_public_key(public_key)
    material = name.encode() + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + raw
    return hashlib.sha256(material).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """Return the verifier key text "<name>+<hex key ID>+<base64(0x01 || public key)>"."""
    if not _is_key_name(name):
        raise ValueError(f"invalid note key name: {name!r}")
    raw = _raw_public_key(public_key)
    encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + raw).decode()
    return f"{name}+{compute_key_id(name, raw).hex()}+{encoded}"


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse a verifier key, checking its key ID against its name and public key."""
    name, _, rest = vkey.partition("+")
    key_id_hex, _, key_text = rest.partition("+")
    key = _decode_base64(key_text)
    if not _is_key_name(name) or not _KEY_ID_HEX.fullmatch(key_id_hex) or not key:
        raise MalformedNoteError(f"malformed verifier key: {vkey!r}")
    if key[0] != SIGNATURE_TYPE_ED25519 or len(key) != 33:
        raise MalformedNoteError(f"verifier key {name} is not an Ed25519 key")
    key_id = bytes.fromhex(key_id_hex)
    if compute_key_id(name, key[1:]) != key_id:
        raise MalformedNoteError(f"verifier key {name}: key ID does not match the key")
    return VerifierKey(name, key_id, key[1:])


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """Return the checkpoint note text for a tree of `size` leaves with root hash `root`."""
    if not origin or "\n" in origin or not _is_note_text(origin):
        raise ValueError(f"invalid checkpoint origin: {origin!r}")
    if not 0 <= size <= _MAX_SIZE or len(root) != 32:
        raise ValueError("a checkpoint needs a size in [0, 2**64) and a 32-byte root hash")
    if any(not line or "\n" in line or not _is_note_text(line) for line in extensions):
        raise ValueError("extension lines must be non-empty single lines")
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (without signatures) into a Checkpoint."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise MalformedNoteError("a checkpoint is three or more non-empty lines ending in \\n")
    origin, size_text, root_text, *extensions = lines[:-1]
    root = _decode_base64(root_text)
    if not _SIZE.fullmatch(size_text) or int(size_text) > _MAX_SIZE:
        raise MalformedNoteError(f"malformed checkpoint tree size: {size_text!r}")
    if root is None or len(root) != 32 or base64.b64encode(root).decode() != root_text:
        raise MalformedNoteError(f"malformed checkpoint root hash: {root_text!r}")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return `body` as a signed note with one Ed25519 signature by key `name`."""
    if not body.endswith("\n") or not _is_note_text(body):
        raise ValueError("note text must end in a newline and hold no control characters")
    if not _is_key_name(name):
        raise ValueError(f"invalid note key name: {name!r}")
    key_id = compute_key_id(name, private_key.public_key())
    signature = private_key.sign(body.encode())
    encoded = base64.b64encode(key_id + signature).decode()
    return f"{body}\n{_SIGNATURE_PREFIX}{name} {encoded}\n"


def _coerce_verifiers(vkeys: str | VerifierKey | Iterable[str | VerifierKey]) -> list[VerifierKey]:
    """Return verifier keys from one key or several, text or parsed."""
    items = [vkeys] if isinstance(vkeys, str | VerifierKey) else list(vkeys)
    return [item if isinstance(item, VerifierKey) else parse_verifier_key(item) for item in items]


def verify_note(text: str, vkeys: str | VerifierKey | Iterable[str | VerifierKey]) -> str:
    """Check a signed note against trusted verifier keys and return its text (body).

    As signed-note requires, signatures from unknown keys are ignored, a known key's signature
    that fails rejects the note, and so does a note no known key signed.
    """
    known = {(key.name, key.key_id): key for key in _coerce_verifiers(vkeys)}
    if not _is_note_text(text):
        raise MalformedNoteError("note is not UTF-8 text without control characters")
    split = text.rfind("\n\n")
    body, signatures = text[: split + 1], text[split + 2 :]
    if split < 0 or not signatures.endswith("\n"):
        raise MalformedNoteError("note has no signature block after a blank line")
    lines = signatures[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {_MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        name, _, encoded = line.removeprefix(_SIGNATURE_PREFIX).partition(" ")
        blob = _decode_base64(encoded)
        if not line.startswith(_SIGNATURE_PREFIX) or not _is_key_name(name) or not blob \
                or len(blob) < 5:
            raise MalformedNoteError(f"malformed signature line: {line!r}")
        key = known.get((name, blob[:4]))
        if key is None:
            continue
        if not key.verify(body.encode(), blob[4:]):
            raise BadSignatureError(f"invalid signature for key {name}+{blob[:4].hex()}")
        verified = True
    if not verified:
        raise UnknownKeyError("note has no signature from a known key")
    return body


def open_note(text: str, vkey: str | VerifierKey | Iterable[str | VerifierKey]) -> Checkpoint:
    """Verify a signed checkpoint note and return the checkpoint it carries."""
    return parse_checkpoint(verify_note(text, vkey))
