"""The audit trail of the broker's processing.

- `step`: the unit of work. `with audited_step(session, actor) as step:` records entries while the
  step works and commits them with its changes and a signed checkpoint, or neither;
- `store`: appending to the log and the Merkle tree in the database, checkpoints, proofs, verify;
- `entries`: reading entries for an officer or a party (the log's scoping rule);
- `cli`: `broker audit verify|export|...`.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `broker audit` commands."""
    from broker.auditing.cli import audit_group

    app.cli.add_command(audit_group)
