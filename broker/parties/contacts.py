"""Where parties receive breach notifications by e-mail, and the `broker contacts` commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.app import runtime
from broker.app.extensions import db
from broker.auditing.step import audited_step, broker_activity, cli_actor
from broker.models import PartyContact
from broker.parties.mail import check_address


def party_addresses(session: Session, party_id: str) -> list[str]:
    """The e-mail addresses at which `party_id` receives breach notifications, sorted."""
    query = select(PartyContact.email).where(PartyContact.party_id == party_id).order_by(PartyContact.email)
    return list(session.scalars(query))


def set_party_addresses(session: Session, party_id: str, addresses: Iterable[str], now: dt.datetime) -> list[str]:
    """Replace a party's addresses (in the caller's transaction); return them checked and without repeats.

    Raises ValueError, before changing anything, if one of them is not an e-mail address.
    """
    wanted = list(dict.fromkeys(check_address(a) for a in addresses))
    existing = {c.email: c for c in session.scalars(select(PartyContact).where(PartyContact.party_id == party_id))}
    for email, contact in existing.items():
        if email not in wanted:
            session.delete(contact)
    for email in wanted:
        if email not in existing:  # a kept address keeps its created_at
            session.add(PartyContact(party_id=party_id, email=email, created_at=now))
    return wanted


# -- `broker contacts` ---------------------------------------------------------------------------


@click.group("contacts")
def contacts_group() -> None:
    """Manage the e-mail addresses at which parties receive breach notifications."""


@contacts_group.command("set")
@click.option("--party", "party_id", required=True, help="Party id as in the convenant file.")
@click.argument("addresses", metavar="EMAIL [EMAIL...]", nargs=-1, required=True)
@with_appcontext
def contacts_set_command(party_id: str, addresses: tuple[str, ...]) -> None:
    """Replace PARTY's e-mail addresses for breach notifications with the ones given."""
    if not any(c.party(party_id) for c in runtime.convenants().values()):
        raise click.ClickException(f"party {party_id!r} is in no convenant")
    try:
        with audited_step(db.session, cli_actor()) as step:
            wanted = set_party_addresses(step.session, party_id, addresses, step.now)
            # The count, not the addresses: the audit log is append-only, and an address names a person.
            step.record(
                "contacts.set",
                broker_activity("client"),
                root=True,
                parties=[party_id],
                attributes={"party": party_id, "addresses": len(wanted)},
            )
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{party_id}: {len(wanted)} address{'es' if len(wanted) != 1 else ''}")


@contacts_group.command("list")
@click.option("--party", "party_id", help="Only this party.")
@with_appcontext
def contacts_list_command(party_id: str | None) -> None:
    """List the parties' e-mail addresses for breach notifications."""
    query = select(PartyContact).order_by(PartyContact.party_id, PartyContact.email)
    if party_id:
        query = query.where(PartyContact.party_id == party_id)
    for contact in db.session.scalars(query):
        click.echo(f"{contact.party_id}  {contact.email}")
