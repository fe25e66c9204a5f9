"""`broker retention`: purge what is past its retention, and the auditor's report of what is held."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from broker.app import runtime
from broker.app.extensions import db
from broker.app.timefmt import local_short
from broker.auditing.step import cli_actor
from broker.rights import retention


@click.group("retention")
def retention_group() -> None:
    """Purge personal data past its retention period; report what the broker holds."""


@retention_group.command("run")
@click.option("--batch", default=retention.BATCH, show_default=True, help="Records per audited transaction.")
@with_appcontext
def run_command(batch: int) -> None:
    """Purge every record past its retention (crypto-shredding); safe to run often."""
    actor = cli_actor()
    with click.progressbar(length=0, label="Purging", show_pos=True, file=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        result = retention.run_retention(
            db.session,
            runtime.keyring(),
            runtime.convenants(),
            runtime.now(),
            actor=actor,
            progress=progress,
            batch=batch,
        )
    for reason, count in sorted(result.purged.items()):
        click.echo(f"{reason}: {count} records purged")
    click.echo(
        f"purged: {result.total}; data keys destroyed: {result.keys_destroyed}; "
        f"vault shares deleted: {result.shares_deleted}"
    )


@retention_group.command("report")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@with_appcontext
def report_command(as_json: bool) -> None:
    """What the broker holds per convenant and kind, how old it is, and what is past retention."""
    lines = retention.report(db.session, runtime.convenants(), runtime.now())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "convenant_id": line.convenant_id,
                        "kind": line.kind,
                        "rule": line.reason,
                        "records": line.records,
                        "oldest": line.oldest.isoformat(),
                        "next_due": line.next_due.isoformat() if line.next_due else None,
                        "past_retention": line.overdue,
                        "past_retention_since": line.overdue_since.isoformat() if line.overdue_since else None,
                    }
                    for line in lines
                ],
                indent=2,
            )
        )
        return
    if not lines:
        click.echo("De broker houdt geen persoonsgegevens vast.")
        return
    for line in lines:
        flag = (
            f"  !! {line.overdue} over de bewaartermijn sinds {local_short(line.overdue_since)}"
            if line.overdue_since
            else ""
        )
        due = local_short(line.next_due) if line.next_due else "na de volgende kwartaalvergelijking"
        click.echo(
            f"{line.convenant_id}  {line.kind:<15} {line.records:>7} records  oudste {local_short(line.oldest)}  "
            f"eerstvolgende wissing {due}  ({retention.REASONS[line.reason]}){flag}"
        )
    overdue = sum(line.overdue for line in lines)
    click.echo(f"totaal over de bewaartermijn: {overdue}")
