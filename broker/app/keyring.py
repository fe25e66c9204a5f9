"""Keys the broker keeps in its database, wrapped by the master key.

Per convenant: a key-encryption key (KEK) that wraps the data keys of its submissions, and a
pseudonym key. For the broker itself: signing keys. Unwrapped keys are cached per process.

A data key is wrapped under its KEK together with a share kept in the key vault, outside the
database (keys/vault.py): destroying the share shreds the data key, also in old database copies.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.models import DataKey, KeyMaterial
from keys.envelope import generate_key, unwrap_key, wrap_key
from keys.pseudonym import Pseudonymiser
from keys.signing import PrivateKey, generate_signing_key, private_key_from_pem, private_key_to_pem
from keys.vault import KeyVault, ShareMissing, wrapping_key

KEK = "kek"
PSEUDONYM = "pseudonym"
BROKER_SCOPE = "broker"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey
    public_jwk: dict


class Keyring:
    """Create, unwrap and rotate the keys stored in the database."""

    def __init__(
        self, session: Session, master_key: bytes, cache: dict, now: dt.datetime, vault: KeyVault | None = None
    ) -> None:
        self.session = session
        self._master = master_key
        self._cache = cache
        self._now = now
        self.vault = vault

    # -- generic -----------------------------------------------------------------------------

    def _context(self, row: KeyMaterial) -> str:
        return f"{row.scope}/{row.purpose}/{row.version}/{row.kid}"

    def _active(self, scope: str, purpose: str) -> KeyMaterial | None:
        return self.session.scalars(
            select(KeyMaterial)
            .where(
                KeyMaterial.scope == scope,
                KeyMaterial.purpose == purpose,
                KeyMaterial.retired_at.is_(None),
            )
            .order_by(KeyMaterial.version.desc())
            .limit(1)
        ).first()

    def _create(
        self, scope: str, purpose: str, algorithm: str, secret: bytes, version: int, public_jwk: dict | None = None
    ) -> KeyMaterial:
        row = KeyMaterial(
            kid=f"{scope}:{purpose}:v{version}:{uuid.uuid4().hex[:8]}",
            scope=scope,
            purpose=purpose,
            version=version,
            algorithm=algorithm,
            public_jwk=public_jwk,
            created_at=self._now,
            retired_at=None,
        )
        row.wrapped = wrap_key(self._master, secret, self._context(row))
        self.session.add(row)
        return row

    def _ensure(self, scope: str, purpose: str, algorithm: str) -> KeyMaterial:
        row = self._active(scope, purpose)
        if row is not None:
            return row
        secret, public = self._new_secret(algorithm)
        try:
            with self.session.begin_nested():
                return self._create(scope, purpose, algorithm, secret, 1, public)
        except IntegrityError:
            # Another worker created it first; use theirs.
            row = self._active(scope, purpose)
            assert row is not None
            return row

    @staticmethod
    def _new_secret(algorithm: str) -> tuple[bytes, dict | None]:
        if algorithm in {"AES-256", "HMAC-SHA256"}:
            return generate_key(), None
        private = generate_signing_key(algorithm)
        return private_key_to_pem(private), _public_jwk(private)

    def _unwrap(self, row: KeyMaterial) -> bytes:
        secret = self._cache.get(row.kid)
        if secret is None:
            assert row.wrapped is not None, f"key {row.kid} is retired"
            secret = unwrap_key(self._master, row.wrapped, self._context(row))
            self._cache[row.kid] = secret
        return secret

    # -- per convenant -----------------------------------------------------------------------

    def ensure_convenant_keys(self, convenant_id: str) -> None:
        """Create the convenant's KEK and pseudonym key if it has none."""
        self._ensure(convenant_id, KEK, "AES-256")
        self._ensure(convenant_id, PSEUDONYM, "HMAC-SHA256")

    def pseudonymiser(self, convenant_id: str) -> Pseudonymiser:
        row = self._ensure(convenant_id, PSEUDONYM, "HMAC-SHA256")
        return Pseudonymiser(self._unwrap(row), convenant_id, row.kid)

    def new_data_key(self, convenant_id: str) -> tuple[DataKey, bytes]:
        """Create a data key for one submission, wrapped by the convenant's active KEK and a vault share."""
        kek = self._ensure(convenant_id, KEK, "AES-256")
        key = generate_key()
        row = DataKey(
            id=str(uuid.uuid4()),
            kek_kid=kek.kid,
            created_at=self._now,
            destroyed_at=None,
            vaulted=self.vault is not None,
        )
        row.wrapped = wrap_key(self._wrapping_key(row, self._unwrap(kek), create=True), key, f"data-key/{row.id}")
        self.session.add(row)
        return row, key

    def _wrapping_key(self, row: DataKey, kek: bytes, *, create: bool = False) -> bytes:
        if not row.vaulted:
            return kek  # a data key from before the vault: the KEK alone wraps it
        if self.vault is None:
            raise LookupError("this data key needs the key vault, and none is configured")
        share = self.vault.create(row.id) if create else self.vault.get(row.id)
        return wrapping_key(kek, share, row.id)

    def data_key(self, data_key_id: str) -> bytes:
        row = self.session.get(DataKey, data_key_id)
        if row is None or row.wrapped is None:
            raise LookupError(f"data key {data_key_id} is destroyed")
        kek = self.session.get(KeyMaterial, row.kek_kid)
        assert kek is not None
        try:
            wrapping = self._wrapping_key(row, self._unwrap(kek))
        except ShareMissing as e:
            raise LookupError(f"data key {data_key_id} is destroyed") from e
        return unwrap_key(wrapping, row.wrapped, f"data-key/{row.id}")

    def destroy_data_key(self, data_key_id: str) -> None:
        """Forget a data key: the wrapped key now, its vault share once this transaction committed
        (`sweep_vault`), so a rollback never leaves a row whose share is gone."""
        row = self.session.get(DataKey, data_key_id)
        if row is not None and row.destroyed_at is None:
            row.wrapped, row.destroyed_at = None, self._now

    def sweep_vault(self, orphan_age: dt.timedelta = dt.timedelta(days=1)) -> int:
        """Delete the shares of destroyed data keys, and shares no data key has claimed for a day
        (left by a transaction that rolled back). Call after commit; returns how many it deleted."""
        if self.vault is None:
            return 0
        ids = list(self.vault.key_ids())
        rows = {
            r.id: r
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500))
            for r in self.session.scalars(select(DataKey).where(DataKey.id.in_(chunk)))
        }
        deleted = 0
        for key_id in ids:
            row = rows.get(key_id)
            if row is None:
                if self._now - self.vault.created_at(key_id) < orphan_age:
                    continue  # perhaps a submission still being stored
            elif row.destroyed_at is None:
                continue
            deleted += self.vault.destroy(key_id)
        return deleted

    def rotate_kek(self, convenant_id: str) -> tuple[str, int]:
        """Replace the convenant's KEK and re-wrap every data key under the new one.

        The payloads stay as they are; only the small wrapped data keys change, so rotation loses
        nothing and takes one transaction. The old KEK's material is erased.
        """
        old_rows = self.session.scalars(
            select(KeyMaterial).where(
                KeyMaterial.scope == convenant_id, KeyMaterial.purpose == KEK, KeyMaterial.retired_at.is_(None)
            )
        ).all()
        version = 1 + max(
            (
                r.version
                for r in self.session.scalars(
                    select(KeyMaterial).where(KeyMaterial.scope == convenant_id, KeyMaterial.purpose == KEK)
                )
            ),
            default=0,
        )
        new_secret = generate_key()
        new = self._create(convenant_id, KEK, "AES-256", new_secret, version)
        rewrapped = 0
        for old in old_rows:
            old_secret = self._unwrap(old)
            for data_key in self.session.scalars(
                select(DataKey).where(DataKey.kek_kid == old.kid, DataKey.wrapped.is_not(None))
            ):
                context = f"data-key/{data_key.id}"
                assert data_key.wrapped is not None
                key = unwrap_key(self._wrapping_key(data_key, old_secret), data_key.wrapped, context)
                data_key.wrapped = wrap_key(self._wrapping_key(data_key, new_secret), key, context)
                data_key.kek_kid = new.kid
                rewrapped += 1
            self.session.flush()
            self.session.execute(
                update(KeyMaterial).where(KeyMaterial.kid == old.kid).values(retired_at=self._now, wrapped=None)
            )
            self._cache.pop(old.kid, None)
        return new.kid, rewrapped

    # -- broker signing keys -----------------------------------------------------------------

    def signing_key(self, purpose: str, algorithm: str) -> SigningKey:
        row = self._ensure(BROKER_SCOPE, purpose, algorithm)
        return self._signing_key(row)

    def signing_keys(self, purpose: str) -> list[SigningKey]:
        """Every unretired signing key for `purpose`, for verification across a rotation."""
        rows = self.session.scalars(
            select(KeyMaterial).where(
                KeyMaterial.scope == BROKER_SCOPE, KeyMaterial.purpose == purpose, KeyMaterial.retired_at.is_(None)
            )
        ).all()
        return [self._signing_key(r) for r in rows]

    def _signing_key(self, row: KeyMaterial) -> SigningKey:
        private = private_key_from_pem(self._unwrap(row))
        assert row.public_jwk is not None
        return SigningKey(row.kid, row.algorithm, private, row.public_jwk)


def _public_jwk(private: PrivateKey) -> dict:
    public = private.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ECKey.import_key(public).as_dict(private=False)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    return OKPKey.import_key(public).as_dict(private=False)
