"""The `broker users` commands: add, list, disable, passwd and set-email for privacy officers."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from broker.app.extensions import db
from broker.auditing.step import audited_step, broker_activity, cli_actor
from broker.models import User
from broker.officers.accounts import (
    MIN_PASSWORD_LENGTH,
    PARTY_OFFICER,
    ROLES,
    UserError,
    audit_password_changed,
    change_password,
    checked_email,
    create_user,
    end_sessions,
    normalise_username,
)


def _existing(username: str) -> User:
    """The account named `username`, or the command fails."""
    user = db.session.get(User, normalise_username(username))
    if user is None:
        raise click.ClickException("no such user")
    return user


@click.group("users")
def users_group() -> None:
    """Manage the privacy officers who use the review interface."""


@users_group.command("add")
@click.argument("username_arg", metavar="[USERNAME]", required=False)
@click.option("--username", "username_opt", help="The login name (or give it as the argument).")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--party", "party_id", help=f"The officer's party; required for {PARTY_OFFICER}.")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True,
    help=f"At least {MIN_PASSWORD_LENGTH} characters; asked (hidden, twice) when left out.",
)
@click.option("--email", help="Where the officer receives breach alerts by e-mail (optional).")
@with_appcontext
def users_add_command(
    username_arg: str | None,
    username_opt: str | None,
    role: str,
    party_id: str | None,
    password: str,
    email: str | None,
) -> None:
    """Add a privacy officer who can log in to the review interface."""
    if username_arg and username_opt and username_arg != username_opt:
        raise click.UsageError("give the username once: as argument or as --username")
    username = username_arg or username_opt
    if not username:
        raise click.UsageError("give a USERNAME (argument or --username)")
    try:
        with audited_step(db.session, cli_actor()) as step:
            user = create_user(step.session, username, role, party_id, password, step.now, email=email)
            step.record(
                "user.added", broker_activity("user"), root=True, parties=[party_id] if party_id else [],
                attributes={"username": user.username, "role": role, "party": party_id},
            )
    except UserError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"added {role} {user.username}" + (f" of {party_id}" if party_id else ""))


@users_group.command("list")
@with_appcontext
def users_list_command() -> None:
    """List the review interface's users."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        state = f"disabled {user.disabled_at:%Y-%m-%d}" if user.disabled_at else "active"
        # The address last, and only when set, so the first four columns stay as they were.
        email = f"  {user.email}" if user.email else ""
        click.echo(f"{user.username}  {user.role}  {user.party_id or '-'}  {state}{email}")


@users_group.command("disable")
@click.argument("username")
@with_appcontext
def users_disable_command(username: str) -> None:
    """Disable a user: their sessions stop working at once; the account stays for the log."""
    session = db.session
    user = _existing(username)
    with audited_step(session, cli_actor()) as step:
        user.disabled_at = user.disabled_at or step.now
        end_sessions(session, user.username, step.now)
        step.record(
            "user.disabled", broker_activity("user"), root=True, parties=[user.party_id] if user.party_id else [],
            attributes={"username": user.username, "role": user.role, "party": user.party_id},
        )
    click.echo(f"disabled {user.username}")


@users_group.command("passwd")
@click.argument("username")
@click.option(
    "--password", prompt="New password", hide_input=True, confirmation_prompt=True,
    help=f"At least {MIN_PASSWORD_LENGTH} characters; asked (hidden, twice) when left out.",
)
@with_appcontext
def users_passwd_command(username: str, password: str) -> None:
    """Set a user's password; every session of the user ends at once."""
    session = db.session
    user = _existing(username)
    try:
        with audited_step(session, cli_actor()) as step:
            ended = change_password(session, user, password, step.now)
            audit_password_changed(step, user, ended, by="cli")
    except UserError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"changed the password of {user.username}; {ended} session(s) ended")


@users_group.command("set-email")
@click.argument("username")
@click.argument("address")
@with_appcontext
def users_set_email_command(username: str, address: str) -> None:
    """Set the address at which a user receives breach alerts by e-mail."""
    session = db.session
    user = _existing(username)
    try:
        with audited_step(session, cli_actor()) as step:
            user.email = checked_email(address)
            # Who changed, not the address itself: the audit log is append-only, and the address names a person.
            step.record(
                "user.email_set",
                broker_activity("user"),
                root=True,
                parties=[user.party_id] if user.party_id else [],
                attributes={"username": user.username, "role": user.role, "party": user.party_id},
            )
    except UserError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"set the e-mail address of {user.username}")
