"""Envelope encryption with AES-256-GCM: data keys wrapped by key-encryption keys."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class DecryptionError(Exception):
    """Ciphertext could not be authenticated: wrong key, wrong context or tampered data."""


def generate_key() -> bytes:
    """Return a fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext`, bound to `aad`; returns nonce || ciphertext."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt what `seal` produced with the same key and `aad`."""
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as e:
        raise DecryptionError("payload cannot be authenticated") from e


class Sealer:
    """Seal many payloads with one data key, reusing the cipher object (hot path of ingest)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as e:
            raise DecryptionError("payload cannot be authenticated") from e


def wrap_key(kek: bytes, key: bytes, context: str) -> bytes:
    """Wrap `key` under `kek`; `context` names what the key is for and is authenticated."""
    return seal(kek, key, context.encode())


def unwrap_key(kek: bytes, wrapped: bytes, context: str) -> bytes:
    """Unwrap a key wrapped by `wrap_key` with the same `context`."""
    return open_sealed(kek, wrapped, context.encode())
