"""Key shares kept outside the database, so that destroying one is crypto-shredding.

A data key is wrapped by a key derived from two parts: the convenant's KEK (in the database,
wrapped by the master key) and a random share stored here, one file per data key. Deleting the
share makes the data key unrecoverable, also from a copy of the database taken earlier: that copy
holds the wrapped key but not the share. Keep this directory out of the database's backups (or
back it up with a retention no longer than the data's).

Files are written atomically (temporary file, fsync, rename) with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SHARE_BYTES = 32
KEY_ID = re.compile(r"^[0-9a-f-]{36}$")


class ShareMissing(LookupError):
    """The share of a data key is gone: the key was destroyed (or the vault is not this broker's)."""


class KeyVault:
    """A directory of key shares, named by data key id."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key_id: str) -> Path:
        if not KEY_ID.match(key_id):
            raise ValueError("a data key id is a UUID")
        return self.directory / key_id[:2] / key_id

    def create(self, key_id: str) -> bytes:
        """Make and store a new share for `key_id`; durable before this returns."""
        path = self._path(key_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        share = secrets.token_bytes(SHARE_BYTES)
        temporary = path.with_name(f".{key_id}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, share)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        _fsync_directory(path.parent)
        return share

    def get(self, key_id: str) -> bytes:
        try:
            share = self._path(key_id).read_bytes()
        except FileNotFoundError:
            raise ShareMissing(f"the share of data key {key_id} is destroyed") from None
        if len(share) != SHARE_BYTES:
            raise ShareMissing(f"the share of data key {key_id} is damaged")
        return share

    def destroy(self, key_id: str) -> bool:
        """Delete the share (overwritten first); True if there was one."""
        path = self._path(key_id)
        try:
            with open(path, "r+b") as handle:
                handle.write(b"\0" * SHARE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_directory(path.parent)
        return True

    def created_at(self, key_id: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._path(key_id).stat().st_mtime, dt.UTC)

    def key_ids(self) -> Iterator[str]:
        """Every key id with a share (for sweeping shares whose key the database destroyed)."""
        if not self.directory.is_dir():
            return
        for sub in self.directory.iterdir():
            if sub.is_dir():
                for path in sub.iterdir():
                    if KEY_ID.match(path.name):
                        yield path.name


def wrapping_key(kek: bytes, share: bytes, key_id: str) -> bytes:
    """The key that wraps data key `key_id`: both the KEK and the share are needed to derive it."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"data-key/{key_id}".encode()).derive(kek + share)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
