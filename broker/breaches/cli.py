"""`broker breaches`: the breach register and containment for the broker's administrator.

Parties report and answer through the API, privacy officers through the review UI; these commands
are for the operator who must act from a shell (for example, suspend a party at night).
"""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from broker.app import runtime
from broker.app.csvio import csv_text, dict_rows
from broker.app.errors import BrokerError
from broker.app.extensions import db
from broker.app.timefmt import duration_text, local_short
from broker.auditing.step import audited_step, cli_actor
from broker.breaches import containment, views
from broker.breaches import state as breach_state


@click.group("breaches")
def breaches_group() -> None:
    """List breaches, export the breach register, suspend or reinstate a party."""


@breaches_group.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only breaches that are not closed.")
@with_appcontext
def list_command(open_only: bool) -> None:
    """Show every breach with its state and deadline (Europe/Amsterdam)."""
    session = db.session
    now = runtime.now()
    for breach in breach_state.all_breaches(session):
        parties = breach_state.parties_of(session, breach)
        state = breach_state.derive_state(breach, parties, now)
        if open_only and state == breach_state.GESLOTEN:
            continue
        left = (breach.notify_deadline - now).total_seconds()
        clock = f"nog {duration_text(left)}" if left > 0 else f"{duration_text(left)} over de termijn"
        acked = sum(1 for p in parties if p.role == breach_state.AFFECTED and p.acknowledged_at is not None)
        affected = sum(1 for p in parties if p.role == breach_state.AFFECTED)
        click.echo(
            f"#{breach.number}  {state:<13} vastgesteld {local_short(breach.detected_at)}  "
            f"termijn {local_short(breach.notify_deadline)} ({clock})  bevestigd {acked}/{affected}  {breach.id}"
        )


@breaches_group.command("register")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write the CSV here (default stdout).")
@with_appcontext
def register_command(output: str | None) -> None:
    """Export the breach register (AVG art. 33 lid 5) as CSV: every breach, reported to the AP or not."""
    session = db.session
    with audited_step(session, cli_actor()) as step:
        rows = views.register_rows(session, breach_state.all_breaches(session), runtime.convenants(), step.now)
        step.record("breach.register_exported", breach_state.breach_activity(), root=True)
    stream = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        stream.writelines(csv_text(views.REGISTER_COLUMNS, dict_rows(rows, views.REGISTER_COLUMNS), delimiter=";"))
    finally:
        if output:
            stream.close()


def _containment(breach_id: str, party_id: str, suspend: bool) -> None:
    session = db.session
    try:
        with audited_step(session, cli_actor()) as step:
            breach = breach_state.get_breach(session, breach_id, lock=True)
            convenant = runtime.get_convenant(breach.convenant_id)
            if suspend:
                containment.contain(session, breach, convenant, party_id, step.recorder, step.now)
            else:
                containment.lift(session, breach, party_id, step.recorder, step.now)
    except BrokerError as e:
        raise click.ClickException(e.detail) from e


@breaches_group.command("suspend")
@click.argument("breach_id")
@click.option("--party", "party_id", required=True, help="The party whose clients are suspended.")
@with_appcontext
def suspend_command(breach_id: str, party_id: str) -> None:
    """Suspend PARTY's clients while BREACH_ID is open: its tokens are revoked, its deliveries wait."""
    _containment(breach_id, party_id, suspend=True)
    click.echo(f"{party_id} is opgeschort")


@breaches_group.command("reinstate")
@click.argument("breach_id")
@click.option("--party", "party_id", required=True)
@with_appcontext
def reinstate_command(breach_id: str, party_id: str) -> None:
    """Lift PARTY's suspension for BREACH_ID; it needs new tokens (the old ones stay revoked)."""
    _containment(breach_id, party_id, suspend=False)
    click.echo(f"{party_id} is weer toegelaten")
