"""Per-app services reached from views and commands: clock, convenants, keyring, validators."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Flask, current_app

from broker.app.errors import NotFound
from broker.app.extensions import db
from broker.app.keyring import Keyring
from broker.app.timefmt import AMSTERDAM
from keys.master import load_master_key
from keys.vault import KeyVault
from schemas.convenant import Convenant
from schemas.convenant_file import load_convenants
from schemas.register import Register, build_register
from schemas.validation import RecordValidator

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def init_app(app: Flask) -> None:
    clock = app.config.get("CLOCK") or system_clock
    convenants = load_convenants(app.config["CONVENANT_DIR"])
    app.extensions["broker.clock"] = clock
    app.extensions["broker.convenants"] = convenants
    app.extensions["broker.validators"] = {cid: RecordValidator(c) for cid, c in convenants.items()}
    app.extensions["broker.key_cache"] = {}
    app.extensions["broker.register"] = Register(build_register(convenants.values()))


def now() -> dt.datetime:
    """The current time in UTC, from the app's clock (tests pass their own)."""
    value: dt.datetime = current_app.extensions["broker.clock"]()
    return value.astimezone(dt.UTC)


def today() -> dt.date:
    """Today's date in the Netherlands."""
    return now().astimezone(AMSTERDAM).date()


def convenants() -> dict[str, Convenant]:
    result: dict[str, Convenant] = current_app.extensions["broker.convenants"]
    return result


def get_convenant(convenant_id: str) -> Convenant:
    convenant = convenants().get(convenant_id)
    if convenant is None:
        raise NotFound("Dit convenant bestaat niet.")
    return convenant


def validator(convenant: Convenant) -> RecordValidator:
    result: RecordValidator = current_app.extensions["broker.validators"][convenant.id]
    return result


def master_key() -> bytes:
    """The master key, read once per process (every request needs it; the file does not change)."""
    cached: bytes | None = current_app.extensions.get("broker.master_key")
    if cached is None:
        cfg = current_app.config
        cached = load_master_key(cfg.get("MASTER_KEY"), cfg.get("MASTER_KEY_FILE"))
        current_app.extensions["broker.master_key"] = cached
    return cached


def keyring() -> Keyring:
    """The keyring bound to this request's database session."""
    return Keyring(db.session, master_key(), current_app.extensions["broker.key_cache"], now(), key_vault())


def key_vault() -> KeyVault:
    return KeyVault(current_app.config["KEY_VAULT_DIR"])
