"""The scheduler: one tick runs what is due (quarterly matches, reminders, breach deadlines, the
outbox, retention), by whichever process holds the lease (`scheduler`, `leases`, `cli`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `broker jobs` commands."""
    from broker.jobs.cli import jobs_group

    app.cli.add_command(jobs_group)
