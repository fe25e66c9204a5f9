"""`broker demo setup`: demo party keys, their clients and an example file, for `make run`."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from flask.cli import with_appcontext
from joserfc.jwk import ECKey
from sqlalchemy import select

from broker.app import runtime
from broker.app.csvio import columns, csv_text, dict_rows
from broker.app.extensions import db
from broker.auditing.step import audited_step, broker_activity, cli_actor
from broker.models import Client, User
from broker.officers.accounts import create_user
from keys.signing import private_key_to_pem

EXAMPLE_ROWS = [
    # Test BSNs (elfproef-valid, not issued to real people in this demo).
    {
        "category": "langdurig_verzuim",
        "bsn": "111222333",
        "voornaam": "Noah",
        "achternaam": "de Vries",
        "geboortedatum": "2012-04-02",
        "adres_straat": "Steenstraat",
        "adres_huisnummer": "12",
        "adres_postcode": "6828 CA",
        "adres_woonplaats": "Arnhem",
        "adres_gemeente": "Arnhem",
        "laatst_bekende_school": "Stedelijk Gymnasium Arnhem",
        "startdatum_verzuim": "2026-09-08",
        "reden_verzuim": "wacht op plaatsing",
        "betrokkenheid": "beide",
    },
    {
        "category": "absoluut_verzuim",
        "bsn": "123456782",
        "voornaam": "Emma",
        "achternaam": "Bakker",
        "geboortedatum": "2013-11-20",
        "adres_straat": "Kerkstraat",
        "adres_huisnummer": "3",
        "adres_postcode": "6921 AB",
        "adres_woonplaats": "Duiven",
        "adres_gemeente": "Duiven",
        "startdatum_verzuim": "2026-10-01",
        "betrokkenheid": "rbl",
    },
]


def _party_key(directory: Path, party_id: str) -> ECKey:
    path = directory / f"{party_id}.pem"
    if not path.exists():
        pem = private_key_to_pem(ec.generate_private_key(ec.SECP256R1()))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    return ECKey.import_key(path.read_bytes())


@click.group("demo")
def demo_group() -> None:
    """Demo set-up for trying the broker locally."""


@demo_group.command("setup")
@with_appcontext
def demo_setup_command() -> None:
    """Create a key and a client per demo party (idempotent) and print how to connect."""
    directory = Path(current_app.instance_path) / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    session = db.session
    clients: dict[str, str] = {}
    for convenant in runtime.convenants().values():
        for party in convenant.parties:
            public = _party_key(directory, party.id).as_dict(private=False)
            existing = session.scalars(
                select(Client).where(Client.party_id == party.id, Client.revoked_at.is_(None))
            ).all()
            match = next((c for c in existing if c.public_jwk == public), None)
            if match is None:
                match = Client(
                    client_id=str(uuid.uuid4()),
                    party_id=party.id,
                    public_jwk=public,
                    created_at=runtime.now(),
                    revoked_at=None,
                )
                session.add(match)
            clients[party.id] = match.client_id
    with audited_step(session, cli_actor()) as step:  # with the demo clients and officer added above
        officer_line = _demo_officer(session, directory)
        step.record("demo.setup", broker_activity("client"), root=True, attributes={"clients": len(clients)})
    (directory / "clients.json").write_text(json.dumps(clients, indent=2) + "\n")
    example = directory / "voorbeeld-casussen.csv"
    convenant = next(iter(runtime.convenants().values()))
    header = columns(convenant)
    example.write_text("".join(csv_text(header, dict_rows(EXAMPLE_ROWS, header))), newline="")

    # The address clients are told is the one the broker checks their assertions' aud against.
    base = str(current_app.config.get("PUBLIC_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}").rstrip("/")
    rel = os.path.relpath(directory)
    click.echo("\nDemo parties (private keys stay in " + rel + "):")
    for party_id, client_id in clients.items():
        click.echo(f"  {party_id:22} client_id {client_id}")
    rbl = next(iter(clients))
    click.echo(
        f"""
A party's client signs a client assertion with its key and asks {base}/oauth/token for a token
(client_credentials, private_key_jwt). examples/party_client.py does it all, e.g.:

  .venv/bin/python examples/party_client.py --broker {base} \\
      --client-id {clients[rbl]} --key {rel}/{rbl}.pem \\
      submit --kind case {rel}/{example.name}

  .venv/bin/python examples/party_client.py --broker {base} \\
      --client-id {clients.get("swv-passend-wijs", "<client_id>")} --key {rel}/swv-passend-wijs.pem \\
      fetch --out deliveries --ack

API description: {base}/openapi.json

Review interface for privacy officers: {base}/review/
  {officer_line}
"""
    )


DEMO_OFFICER = "demo-officer"


def _demo_officer(session: Any, directory: Path) -> str:
    """Create a broker-wide demo privacy officer once; its password goes to a 0600 file."""
    password_file = directory / "demo-officer.password"
    if session.get(User, DEMO_OFFICER) is None:
        password = secrets.token_urlsafe(16)
        create_user(session, DEMO_OFFICER, "broker-officer", None, password, runtime.now())
        password_file.unlink(missing_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
    rel = os.path.relpath(password_file)
    return f"log in as {DEMO_OFFICER}, password in {rel}; add officers with `broker users add`."
