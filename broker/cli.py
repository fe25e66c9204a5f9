"""The `broker` commands that set up the broker, manage clients and rotate keys (see broker/__main__.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from broker import review, runtime
from broker.auditing import CHECKPOINT_PURPOSE, audited_step, broker_activity, cli_actor, sync_register
from broker.auth import TOKEN_ALGORITHM, TOKEN_PURPOSE, import_public_key
from broker.extensions import db
from broker.migrate import upgrade
from broker.models import Client
from keys.master import create_master_key_file


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create the master key file if needed, migrate the database and create missing keys."""
    cfg = current_app.config
    if not cfg.get("MASTER_KEY") and cfg.get("MASTER_KEY_FILE"):
        if create_master_key_file(cfg["MASTER_KEY_FILE"]):
            click.echo(f"Created master key {cfg['MASTER_KEY_FILE']} (keep it out of git and backups).")
    if created := review.ensure_secret_key():
        click.echo(f"Created session secret {created} (for the review interface; keep it out of git).")
    upgrade(cfg["DATABASE_URL"])
    runtime.key_vault().directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    keyring = runtime.keyring()
    for convenant_id in runtime.convenants():
        keyring.ensure_convenant_keys(convenant_id)
    keyring.signing_key(TOKEN_PURPOSE, TOKEN_ALGORITHM)
    keyring.signing_key(CHECKPOINT_PURPOSE, "Ed25519")
    try:
        added = sync_register(db.session)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e
    with audited_step(db.session, cli_actor()) as step:
        for uri in added:
            step.record("register.activity_added", broker_activity("key"), root=True, attributes={"activity": uri})
    click.echo(f"Database ready; convenants: {', '.join(runtime.convenants())}.")


@click.group("clients")
def clients_group() -> None:
    """Manage the OAuth clients of the parties."""


def _read_public_jwk(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if "PRIVATE KEY" in text:
        raise click.ClickException(f"{path}: a private key was given; register the public key only")
    try:
        from joserfc.jwk import ECKey, RSAKey

        if text.lstrip().startswith("{"):
            jwk = json.loads(text)
        else:
            pem_key: Any = None
            for cls in (RSAKey, ECKey):
                try:
                    pem_key = cls.import_key(text)
                    break
                except Exception:  # noqa: S112 - try the next key type
                    continue
            if pem_key is None:
                raise ValueError("not an RSA or EC public key in PEM")
            jwk = pem_key.as_dict(private=False)
        return import_public_key(jwk).as_dict(private=False)
    except ValueError as e:
        raise click.ClickException(f"{path}: {e}") from e


@clients_group.command("add")
@click.option("--party", "party_id", required=True, help="Party id as in the convenant file.")
@click.option("--public-key", "public_key", required=True, type=click.Path(exists=True, path_type=Path))
@with_appcontext
def clients_add_command(party_id: str, public_key: Path) -> None:
    """Register a client of PARTY with its public key (PEM or JWK); prints the client_id."""
    if not any(c.party(party_id) for c in runtime.convenants().values()):
        raise click.ClickException(f"party {party_id!r} is in no convenant")
    jwk = _read_public_jwk(public_key)
    with audited_step(db.session, cli_actor()) as step:
        client = Client(
            client_id=str(uuid.uuid4()), party_id=party_id, public_jwk=jwk, created_at=step.now, revoked_at=None
        )
        step.session.add(client)
        step.record(
            "client.added", broker_activity("client"), root=True, parties=[party_id],
            attributes={"client_id": client.client_id, "party": party_id},
        )
    click.echo(client.client_id)


@clients_group.command("list")
@with_appcontext
def clients_list_command() -> None:
    """List registered clients."""
    for client in db.session.query(Client).order_by(Client.party_id, Client.created_at):
        state = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "active"
        click.echo(f"{client.client_id}  {client.party_id}  {state}")


@clients_group.command("revoke")
@click.argument("client_id")
@with_appcontext
def clients_revoke_command(client_id: str) -> None:
    """Revoke a client: its tokens stop working at once."""
    client = db.session.get(Client, client_id)
    if client is None:
        raise click.ClickException("no such client")
    with audited_step(db.session, cli_actor()) as step:
        client.revoked_at = client.revoked_at or step.now
        step.record(
            "client.revoked", broker_activity("client"), root=True, parties=[client.party_id],
            attributes={"client_id": client.client_id, "party": client.party_id},
        )
    click.echo(f"revoked {client_id}")


@click.group("keys")
def keys_group() -> None:
    """Manage key material."""


@keys_group.command("rotate")
@click.option("--convenant", "convenant_id", required=True)
@with_appcontext
def keys_rotate_command(convenant_id: str) -> None:
    """Rotate a convenant's key-encryption key, re-wrapping every data key under the new one."""
    if convenant_id not in runtime.convenants():
        raise click.ClickException(f"unknown convenant {convenant_id!r}")
    with audited_step(db.session, cli_actor()) as step:
        kid, count = runtime.keyring().rotate_kek(convenant_id)
        step.record(
            "key.rotated", broker_activity("key"), root=True, convenant_id=convenant_id,
            attributes={"convenant": convenant_id, "new_kid": kid, "rewrapped": count},
        )
    click.echo(f"new key {kid}; re-wrapped {count} data keys")


def init_app(app: Flask) -> None:
    from broker.audit_cli import audit_group
    from broker.breach_cli import breaches_group
    from broker.contacts import contacts_group
    from broker.demo import demo_group
    from broker.match_cli import match_group, webhooks_group
    from broker.officers.cli import users_group
    from broker.retention_cli import retention_group

    for command in (
        init_command, clients_group, keys_group, demo_group, audit_group, users_group, match_group, webhooks_group
    ):
        app.cli.add_command(command)
    app.cli.add_command(contacts_group)
    app.cli.add_command(breaches_group)
    app.cli.add_command(retention_group)
