"""Load the master key that wraps every other key. It never lives in the database or in git."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from keys.envelope import KEY_BYTES, generate_key


class MasterKeyError(Exception):
    """The master key is missing or malformed."""


def decode_master_key(text: str) -> bytes:
    """Decode a base64 master key and check its length."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MasterKeyError("the master key is not valid base64") from e
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"the master key must be {KEY_BYTES} bytes, base64-encoded")
    return key


def load_master_key(value: str | None, path: str | os.PathLike[str] | None) -> bytes:
    """Return the master key from a base64 value or from a key file, the value winning."""
    if value:
        return decode_master_key(value)
    if path:
        try:
            return decode_master_key(Path(path).read_text())
        except FileNotFoundError as e:
            raise MasterKeyError(f"master key file {path} does not exist") from e
    raise MasterKeyError("no master key: set BROKER_MASTER_KEY or BROKER_MASTER_KEY_FILE")


def create_master_key_file(path: str | os.PathLike[str]) -> bool:
    """Write a new random master key to `path` (mode 0600) unless one exists; True if written."""
    target = Path(path)
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(generate_key()).decode() + "\n")
    return True
