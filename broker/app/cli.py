"""The `broker` commands that set up the broker, manage clients and rotate keys (see broker/__main__.py)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from broker.app import runtime, secret
from broker.app.extensions import db
from broker.app.migrate import upgrade
from broker.auditing.step import CHECKPOINT_PURPOSE, audited_step, broker_activity, cli_actor, sync_register
from broker.parties.oauth import TOKEN_ALGORITHM, TOKEN_PURPOSE
from keys.master import create_master_key_file


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create the master key file if needed, migrate the database and create missing keys."""
    cfg = current_app.config
    if not cfg.get("MASTER_KEY") and cfg.get("MASTER_KEY_FILE"):
        if create_master_key_file(cfg["MASTER_KEY_FILE"]):
            click.echo(f"Created master key {cfg['MASTER_KEY_FILE']} (keep it out of git and backups).")
    if created := secret.ensure_secret_key():
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
    """The app's own commands: init, keys, demo."""
    from broker.app.demo import demo_group

    for command in (init_command, keys_group, demo_group):
        app.cli.add_command(command)
