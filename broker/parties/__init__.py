"""The parties' side of the broker: OAuth clients and tokens (`oauth`), sign-in limits (`limits`),
contacts (`contacts`), the outbox to their webhooks and mailboxes (`outbox`, `mail`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The token endpoint, the sign-in limits and the `broker clients|contacts|webhooks` commands."""
    from broker.app.extensions import api
    from broker.parties import limits, oauth
    from broker.parties.cli import clients_group, webhooks_group
    from broker.parties.contacts import contacts_group

    api.register_blueprint(oauth.blp)
    limits.init_app(app)
    for command in (clients_group, contacts_group, webhooks_group):
        app.cli.add_command(command)
