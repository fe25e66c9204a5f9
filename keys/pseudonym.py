"""Keyed, domain-separated pseudonyms for burgerservicenummers."""

from __future__ import annotations

import hashlib
import hmac

DOMAIN = b"convenant-broker/bsn-pseudonym/v1"
FINGERPRINT_DOMAIN = b"convenant-broker/record-fingerprint/v1"


class Pseudonymiser:
    """Derive the pseudonym of a BSN within one convenant.

    HMAC-SHA256 under the convenant's own key, over a message that also names the convenant, so
    pseudonyms of two convenants never link even if keys were ever shared. The BSN itself is
    never kept.
    """

    def __init__(self, key: bytes, convenant_id: str, kid: str) -> None:
        self.kid = kid
        self._key = key
        self._prefix = DOMAIN + b"\x00" + convenant_id.encode() + b"\x00"
        self._fingerprint_prefix = FINGERPRINT_DOMAIN + b"\x00" + convenant_id.encode() + b"\x00"

    def pseudonymise_bsn(self, bsn: str) -> str:
        """Return the hex pseudonym of `bsn`."""
        return hmac.digest(self._key, self._prefix + bsn.encode(), hashlib.sha256).hex()

    def fingerprint(self, canonical: bytes) -> str:
        """Return the hex fingerprint of a record's canonical bytes: equal records, equal fingerprints.

        Keyed and domain-separated like the pseudonyms (a record's fields are guessable), so the
        fingerprint tells nothing to whoever lacks the key; it only says "unchanged".
        """
        return hmac.digest(self._key, self._fingerprint_prefix + canonical, hashlib.sha256).hex()
