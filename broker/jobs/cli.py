"""`broker jobs run-due`: one tick of the scheduler, for cron instead of (or beside) `broker serve`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from broker.jobs.scheduler import tick


@click.group("jobs")
def jobs_group() -> None:
    """Run the broker's scheduled jobs."""


@jobs_group.command("run-due")
@click.option("--no-deliver", is_flag=True, help="Queue reminders but do not send the outbox.")
@with_appcontext
def run_due_command(no_deliver: bool) -> None:
    """Run what is due (matches, reminders, breach deadlines, the outbox); safe to run often and concurrently."""
    result = tick(deliver=not no_deliver)
    click.echo(
        f"runs: {result.runs}; reminders queued: {result.reminders}; outbox delivered: {result.delivered}; "
        f"breaches updated: {result.breaches}"
    )
