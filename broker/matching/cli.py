"""`broker match run-due`: the scheduler's tick under its first name (it is `broker jobs run-due`)."""

from __future__ import annotations

import click

from broker.jobs.cli import run_due_command


@click.group("match")
def match_group() -> None:
    """Match the parties' quarterly lists."""


match_group.add_command(run_due_command)
