#!/usr/bin/env python3
"""A party's client for the convenant broker: copy it, point it at your key, and go.

It signs its own client assertion (private_key_jwt, RFC 7523), gets an access token, submits a
CSV or JSON file, and downloads and acknowledges what the broker routed to the party.

    python examples/party_client.py --broker http://127.0.0.1:8000 \
        --client-id CLIENT_ID --key rbl.pem submit --kind case cases.csv
    python examples/party_client.py ... submit --kind quarterly_list --quarter 2026-Q4 list.csv
    python examples/party_client.py ... fetch --out downloads/ --ack

Needs: pip install authlib requests cryptography
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, RSAKey

CONVENANT = "thuiszitters-midden-gelre"


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """private_key_jwt whose assertion lives 5 minutes (the broker refuses longer ones).

    authlib signs assertions valid for an hour by default.
    """

    def sign(self, auth, token_endpoint):  # type: ignore[no-untyped-def]
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            expires_in=300,
        )


def connect(broker: str, client_id: str, key_file: Path) -> OAuth2Session:
    """Return an authenticated session: signs an assertion and fetches an access token."""
    token_url = broker.rstrip("/") + "/oauth/token"
    pem = key_file.read_bytes()
    key, alg = (ECKey.import_key(pem), "ES256") if _is_ec(pem) else (RSAKey.import_key(pem), "RS256")
    session = OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(ShortLivedPrivateKeyJWT(token_url, alg=alg))
    session.fetch_token(token_url, grant_type="client_credentials")
    return session


def _is_ec(pem: bytes) -> bool:
    return isinstance(load_pem_private_key(pem, password=None), ec.EllipticCurvePrivateKey)


def submit(session: OAuth2Session, broker: str, args: argparse.Namespace) -> int:
    url = f"{broker}/api/v1/convenants/{args.convenant}/submissions"
    data = Path(args.file).read_bytes()
    if args.file.endswith(".json"):
        body = json.loads(data)
        body.setdefault("kind", args.kind)
        if args.quarter:
            body.setdefault("quarter", args.quarter)
        response = session.post(url, json=body)
    else:
        params = {"kind": args.kind, **({"quarter": args.quarter} if args.quarter else {})}
        response = session.post(url, params=params, data=data, headers={"Content-Type": "text/csv"})
    print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    return 0 if response.status_code == 201 else 1


def fetch(session: OAuth2Session, broker: str, args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    listing = session.get(f"{broker}/api/v1/deliveries", params={"status": "open"})
    listing.raise_for_status()
    for delivery in listing.json()["deliveries"]:
        response = session.get(f"{broker}/api/v1/deliveries/{delivery['delivery_id']}", headers={"Accept": "text/csv"})
        response.raise_for_status()
        target = out / f"levering-{delivery['delivery_id']}.csv"
        target.write_bytes(response.content)
        print(f"{target}: {delivery['records']} records from {delivery['sender']}")
        if args.ack:
            session.post(f"{broker}/api/v1/deliveries/{delivery['delivery_id']}/ack").raise_for_status()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="http://127.0.0.1:8000")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--key", required=True, type=Path, help="the party's private key (PEM)")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("submit", help="submit a CSV or JSON file")
    sub.add_argument("file")
    sub.add_argument("--kind", choices=["case", "quarterly_list"], default="case")
    sub.add_argument("--quarter", help="for a quarterly list, e.g. 2026-Q4")
    sub.add_argument("--convenant", default=CONVENANT)
    get = commands.add_parser("fetch", help="download open deliveries as CSV")
    get.add_argument("--out", default="deliveries")
    get.add_argument("--ack", action="store_true", help="acknowledge each delivery after saving it")
    args = parser.parse_args(argv)
    broker = args.broker.rstrip("/")
    session = connect(broker, args.client_id, args.key)
    return submit(session, broker, args) if args.command == "submit" else fetch(session, broker, args)


if __name__ == "__main__":
    sys.exit(main())
