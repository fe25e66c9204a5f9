"""The quarterly match: the parties' lists per quarter (`quarters`) compared pair by pair, and
each party told which children the other knows and it does not (`match`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `broker match` commands (`match run-due` is `jobs run-due`)."""
    from broker.matching.cli import match_group

    app.cli.add_command(match_group)
