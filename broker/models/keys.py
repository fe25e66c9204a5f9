"""Key material: wrapped keys per purpose and the data keys of submissions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


class KeyMaterial(Base):
    """A key wrapped by the master key: per-convenant KEKs and pseudonym keys, broker signing keys."""

    __tablename__ = "key_material"
    __table_args__ = (UniqueConstraint("scope", "purpose", "version"),)
    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(20))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


class DataKey(Base):
    """The key that encrypts one submission's records, wrapped by its convenant's KEK."""

    __tablename__ = "data_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kek_kid: Mapped[str] = mapped_column(ForeignKey("key_material.kid"), index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]
    destroyed_at: Mapped[dt.datetime | None]
    # Wrapped together with a share in the key vault (keys/vault.py); False for older keys.
    vaulted: Mapped[bool] = mapped_column(default=False)
