"""`broker clients` and `broker webhooks`: the parties' OAuth clients and where they receive messages."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from broker.app import runtime
from broker.app.extensions import db
from broker.auditing.step import audited_step, broker_activity, cli_actor
from broker.models import Client
from broker.parties import mail, outbox
from broker.parties.oauth import import_public_key


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


@click.group("webhooks")
def webhooks_group() -> None:
    """Manage where parties receive the broker's messages (reminders, notices)."""


@webhooks_group.command("set")
@click.option("--party", "party_id", required=True, help="Party id as in the convenant file.")
@click.option("--url", required=True, help="The party's https endpoint.")
@with_appcontext
def webhooks_set_command(party_id: str, url: str) -> None:
    """Register PARTY's webhook URL with a new signing secret; prints the secret once."""
    if not any(c.party(party_id) for c in runtime.convenants().values()):
        raise click.ClickException(f"party {party_id!r} is in no convenant")
    try:
        with audited_step(db.session, cli_actor()) as step:
            secret = outbox.set_webhook(step.session, runtime.master_key(), party_id, url, step.now)
            step.record(
                "webhook.set", broker_activity("client"), root=True, parties=[party_id],
                attributes={"party": party_id, "url": url},
            )
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    click.echo(secret)


@webhooks_group.command("deliver")
@with_appcontext
def webhooks_deliver_command() -> None:
    """Send every due outbox message once."""
    delivered = outbox.deliver_due(
        db.session,
        runtime.master_key(),
        runtime.now(),
        mailer=mail.smtp_mailer(current_app.config),
        sender=current_app.config["SMTP_FROM"],
    )
    click.echo(f"delivered: {delivered}")
