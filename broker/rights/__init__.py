"""The data subject's rights and a case's end: subject requests, restrictions and erasures
(`subjects`), the access report (`access_report`, `access_table`), endings and corrections
(`endings`, `corrections`), retention (`retention`) and crypto-shredding (`purge`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `broker retention` commands."""
    from broker.rights.cli import retention_group

    app.cli.add_command(retention_group)
