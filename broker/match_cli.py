"""`broker match` and `broker webhooks`: run due quarterly matches, register party webhooks."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from broker import mail, runtime
from broker.auditing import audited_step, broker_activity, cli_actor
from broker.extensions import db
from broker.scheduler import tick
from broker.services import outbox


@click.group("match")
def match_group() -> None:
    """Match the parties' quarterly lists."""


@match_group.command("run-due")
@click.option("--no-deliver", is_flag=True, help="Queue reminders but do not send the outbox.")
@with_appcontext
def run_due_command(no_deliver: bool) -> None:
    """Run every due match, queue reminders and send the outbox; safe to run often and concurrently."""
    result = tick(deliver=not no_deliver)
    click.echo(
        f"runs: {result.runs}; reminders queued: {result.reminders}; outbox delivered: {result.delivered}; "
        f"breaches updated: {result.breaches}"
    )


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
