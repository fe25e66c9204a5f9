"""Privacy officers: their accounts (`accounts`), their review sessions (`sessions`) and the
`broker users` commands (`cli`). The login pages are part of the review interface (broker/review/).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `broker users` commands."""
    from broker.officers.cli import users_group

    app.cli.add_command(users_group)
