"""Done means: a real OAuth client (authlib's OAuth2Session with private_key_jwt) against the
running broker gets a token, submits JSON and CSV, and the SWV fetches exactly the records of its
gemeenten."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from fixtures.parties import register_client
from fixtures.records import CONVENANT, make_bsn, make_record, to_csv
from joserfc.jwk import ECKey, RSAKey

ASSERTION_LIFETIME = 300


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """authlib's PrivateKeyJWT signs `exp = iat + 3600`; the broker allows at most 5 minutes.

    Also never reuses a jti: when given `claims`, PrivateKeyJWT stores the jti it generates in that
    dict, so a second token request with the same instance would replay it.
    """

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            claims=dict(self.claims or {}),
            header=self.headers,
            expires_in=ASSERTION_LIFETIME,
        )


def oauth_session(
    live_server: str,
    client_id: str,
    key: ECKey | RSAKey,
    alg: str,
    method: type[PrivateKeyJWT] = ShortLivedPrivateKeyJWT,
) -> OAuth2Session:
    token_url = f"{live_server}/oauth/token"
    # The private key goes in as a joserfc key object; a PEM string works too but makes authlib
    # emit a deprecation warning ("use OctKey, RSAKey, ECKey ... directly").
    session = OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(method(token_url, alg=alg))
    return session


@pytest.fixture
def registered(runner: Any, tmp_path: Path) -> Any:
    """Register a party client with a fresh key; return (client_id, key)."""

    def register(party_id: str, alg: str) -> tuple[str, ECKey | RSAKey]:
        key: ECKey | RSAKey = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
        return register_client(runner, party_id, key.as_dict(private=False), tmp_path), key

    return register


def test_default_one_hour_assertion_is_refused(live_server: str, registered: Any) -> None:
    """authlib's stock PrivateKeyJWT (exp one hour ahead) is refused with invalid_client."""
    client_id, key = registered("rbl-midden-gelre", "RS256")
    session = oauth_session(live_server, client_id, key, "RS256", method=PrivateKeyJWT)
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(f"{live_server}/oauth/token", grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    assert "5 minuten" in (refused.value.description or "")


def test_short_lived_assertion_gets_a_token_again_and_again(live_server: str, registered: Any) -> None:
    """With a 5-minute assertion the real client gets a token, and a fresh one on each request."""
    client_id, key = registered("swv-de-liemers", "ES256")
    session = oauth_session(live_server, client_id, key, "ES256")
    first = session.fetch_token(f"{live_server}/oauth/token", grant_type="client_credentials")
    second = session.fetch_token(f"{live_server}/oauth/token", grant_type="client_credentials")
    for token in (first, second):
        assert token["token_type"] == "Bearer"
        assert 0 < token["expires_in"] <= 3600
    assert first["access_token"] != second["access_token"]


def test_assertion_for_another_host_is_refused(live_server: str, registered: Any) -> None:
    """An assertion whose aud names the token endpoint under another host is refused."""
    client_id, key = registered("rbl-midden-gelre", "ES256")
    session = OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(ShortLivedPrivateKeyJWT("https://broker.example.org/oauth/token", alg="ES256"))
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(f"{live_server}/oauth/token", grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


def test_real_client_exchange_end_to_end(live_server: str, registered: Any) -> None:
    """RBL submits JSON and CSV over HTTP; each SWV fetches exactly its gemeenten' BSNs, acks."""
    token_url = f"{live_server}/oauth/token"
    submit_url = f"{live_server}/api/v1/convenants/{CONVENANT}/submissions"

    rbl_id, rbl_key = registered("rbl-midden-gelre", "ES256")
    rbl = oauth_session(live_server, rbl_id, rbl_key, "ES256")
    rbl_token = rbl.fetch_token(token_url, grant_type="client_credentials")

    json_plan = {1: "Duiven", 2: "Arnhem", 3: "Zevenaar", 4: "Lingewaard", 5: "Rheden"}
    csv_plan = {6: "Westervoort", 7: "Renkum", 8: "Overbetuwe"}

    # JSON through plain requests with the token the OAuth client obtained
    response = requests.post(
        submit_url,
        json={
            "kind": "case",
            "records": [make_record(n, gemeente=g) for n, g in json_plan.items()],
        },
        headers={"Authorization": f"Bearer {rbl_token['access_token']}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 5
    assert response.headers["API-Version"]

    # CSV through the OAuth2Session itself (it adds the token)
    response = rbl.post(
        f"{submit_url}?kind=case",
        data=to_csv(delimiter=";", records=[make_record(n, gemeente=g) for n, g in csv_plan.items()]),
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 3

    # a bad CSV is refused over real HTTP as problem+json
    outside = make_record(9)
    outside["adres"]["gemeente"] = "Utrecht"
    bad = to_csv(delimiter=";", records=[outside])
    response = rbl.post(f"{submit_url}?kind=case", data=bad, headers={"Content-Type": "text/csv"}, timeout=10)
    assert response.status_code == 422
    assert response.headers["Content-Type"].startswith("application/problem+json")

    plan = {**json_plan, **csv_plan}
    swvs = {
        "swv-de-liemers": {"Duiven", "Westervoort", "Zevenaar"},
        "swv-passend-wijs": {"Arnhem", "Renkum", "Rheden", "Rozendaal"},
        "swv-de-verbinding": {"Lingewaard", "Overbetuwe"},
    }
    for party_id, gemeenten in swvs.items():
        client_id, key = registered(party_id, "RS256")
        swv = oauth_session(live_server, client_id, key, "RS256")
        swv.fetch_token(token_url, grant_type="client_credentials")

        listed = swv.get(f"{live_server}/api/v1/deliveries?status=open", timeout=10).json()["deliveries"]
        assert {d["sender"] for d in listed} == {"rbl-midden-gelre"}
        fetched: set[str] = set()
        csv_fetched: set[str] = set()
        for delivery in listed:
            url = f"{live_server}/api/v1/deliveries/{delivery['delivery_id']}"
            records = swv.get(url, timeout=10).json()["records"]
            fetched |= {r["bsn"] for r in records}
            as_csv = swv.get(url, headers={"Accept": "text/csv"}, timeout=10)
            assert as_csv.headers["Content-Type"].startswith("text/csv")
            csv_fetched |= {row["bsn"] for row in csv.DictReader(io.StringIO(as_csv.text, newline=""))}
            ack = swv.post(f"{url}/ack", timeout=10)
            assert ack.status_code == 200 and ack.json()["acked_at"]

        expected = {make_bsn(n) for n, g in plan.items() if g in gemeenten}
        assert fetched == expected, party_id
        assert csv_fetched == expected, party_id
        assert swv.get(f"{live_server}/api/v1/deliveries?status=open", timeout=10).json()["deliveries"] == []

    # the RBL itself received nothing, and a token never works from the query string
    assert rbl.get(f"{live_server}/api/v1/deliveries", timeout=10).json()["deliveries"] == []
    leaked = requests.get(
        f"{live_server}/api/v1/deliveries",
        params={"access_token": rbl_token["access_token"]},
        timeout=10,
    )
    assert leaked.status_code == 400
