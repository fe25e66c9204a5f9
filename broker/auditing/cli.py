"""`broker audit verify` and `broker audit verify-receipt`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from audit.receipt import ReceiptError, verify_receipt
from broker.app.extensions import db
from broker.auditing import step as auditing
from broker.auditing.store import log_size, verify_stored_log


@click.group("audit")
def audit_group() -> None:
    """Verify the tamper-evident audit log."""


@audit_group.command("verify")
@with_appcontext
def verify_command() -> None:
    """Recompute the chain, the Merkle root and every search column; check them against every signed checkpoint."""
    session = db.session
    total = log_size(session)
    vkey = auditing.checkpoint_signer().verifier_key
    with click.progressbar(length=total, label="Logboek controleren", file=sys.stderr) as bar:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            bar.update(n - done)
            done = n

        result = verify_stored_log(session, vkey, progress, progress_every=10_000)
        bar.update(total - done)
    if result.problem is not None:
        problem = result.problem
        click.echo(f"FOUT bij entry {problem.index}: {problem.kind} — {problem.detail}", err=True)
        sys.exit(1)
    click.echo(f"OK: {result.entries} entries, root {result.root.hex()}, {result.checkpoints} checkpoints kloppen.")
    if result.unrecorded:
        click.echo(f"{result.unrecorded} entries zijn verzegeld voordat de entry zelf partijen en convenant noemde: "
                   "hun kolommen parties en convenant_id zijn niet te controleren.")


@audit_group.command("verify-receipt")
@click.argument("receipt_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "vkey", help="The broker's verifier key (GET /api/v1/audit/key).")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_receipt_command(receipt_file: Path, vkey: str | None, key_file: Path | None) -> None:
    """Check a submission receipt offline against the broker's public key (no database)."""
    if key_file is not None:
        vkey = key_file.read_text().strip()
    if not vkey:
        raise click.UsageError("give the broker's verifier key with --key or --key-file")
    data = json.loads(receipt_file.read_text())
    receipt = data.get("receipt", data) if isinstance(data, dict) else data
    try:
        verify_receipt(receipt, vkey)
    except ReceiptError as e:
        click.echo(f"ONGELDIG: {e}", err=True)
        sys.exit(1)
    click.echo(f"OK: entry {receipt['index']} zit in het logboek van {receipt['tree_size']} entries.")
