"""OAuth 2.0 client credentials with private_key_jwt, and the bearer-token checks of the API."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from fixtures.app import initialised_app
from fixtures.database import TEST_DATABASE_URL
from fixtures.parties import ASSERTION_TYPE, Party, register_client
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import select

from broker.app.extensions import db
from broker.models import AuditEntryRow

TOKEN_URL = "http://localhost/oauth/token"
DELIVERIES = "/api/v1/deliveries"


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def base_claims(party: Party, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": party.client_id,
        "sub": party.client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def assert_invalid_client(response: Any, problem: Any) -> dict[str, Any]:
    body = problem(response, 401)
    assert body["error"] == "invalid_client"
    assert "access_token" not in body
    return body


# -- token endpoint: success -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_client_gets_a_token(make_party: Any, alg: str) -> None:
    """ES256 and RS256 clients get a Bearer token of at most one hour, not to be cached."""
    party = make_party("swv-passend-wijs", alg=alg)
    response = party.request_token()
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 3600
    assert "no-store" in response.headers["Cache-Control"]
    claims = claims_of(body["access_token"])
    assert claims["exp"] - claims["iat"] <= 3600
    assert claims["sub"] == party.client_id
    assert claims["party"] == "swv-passend-wijs"
    assert claims["aud"] != TOKEN_URL  # the access token is for the API, not the token endpoint


def test_token_works_on_the_api(rbl: Party) -> None:
    """A fresh token opens the API."""
    assert rbl.get(DELIVERIES).status_code == 200


def test_assertion_with_aud_list_including_the_token_endpoint(rbl: Party) -> None:
    """An `aud` array that holds the token endpoint is accepted (RFC 7523 allows arrays)."""
    response = rbl.request_token(rbl.assertion(aud=[TOKEN_URL, "http://localhost/"]))
    assert response.status_code == 200, response.json


def test_assertion_exactly_five_minutes_ahead_is_accepted(rbl: Party) -> None:
    """An assertion whose exp is 5 minutes ahead is still within the limit."""
    now = int(time.time())
    assert rbl.request_token(rbl.assertion(iat=now, exp=now + 300)).status_code == 200


@pytest.mark.parametrize("configured", [7200, 86400])
def test_access_token_lifetime_is_capped_at_one_hour(
    app_config: dict[str, Any], tmp_path: Any, configured: int
) -> None:
    """Even when configured longer, an access token lives at most one hour."""
    with initialised_app(app_config | {"ACCESS_TOKEN_LIFETIME": configured}) as app:
        key = ECKey.generate_key("P-256")
        client_id = register_client(app.test_cli_runner(), "rbl-midden-gelre", key.as_dict(private=False), tmp_path)
        party = Party("rbl-midden-gelre", client_id, key, "ES256", app.test_client())
        response = party.request_token()
        assert response.status_code == 200
        assert response.json["expires_in"] <= 3600
        claims = claims_of(response.json["access_token"])
        assert claims["exp"] - claims["iat"] <= 3600


# -- token endpoint: refusals ----------------------------------------------------------------------


def _hs256(party: Party) -> str:
    secret = OctKey.import_key(b"k" * 32)
    return jwt.encode({"alg": "HS256"}, base_claims(party), secret, algorithms=["HS256"])


def _alg_none(party: Party) -> str:
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(base_claims(party))}."


def _other_key_same_alg(party: Party) -> str:
    other = ECKey.generate_key("P-256")
    return jwt.encode({"alg": "ES256"}, base_claims(party), other, algorithms=["ES256"])


def _other_key_other_alg(party: Party) -> str:
    other = RSAKey.generate_key(2048)
    return jwt.encode({"alg": "RS256"}, base_claims(party), other, algorithms=["RS256"])


def _unsigned_payload_swap(party: Party) -> str:
    """A genuine signature over other claims, with the payload swapped."""
    header, _payload, signature = party.assertion().split(".")
    return f"{header}.{b64url(base_claims(party))}.{signature}"


def _embedded_attacker_jwk(party: Party) -> str:
    """Signed by an attacker key that the assertion itself carries in its `jwk` header."""
    other = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "jwk": other.as_dict(private=False)}
    return jwt.encode(header, base_claims(party), other, algorithms=["ES256"])


REFUSED_ASSERTIONS = {
    "hs256": _hs256,
    "alg-none": _alg_none,
    "wrong-aud-api-url": lambda p: p.assertion(aud="http://localhost/api/v1/deliveries"),
    "wrong-aud-other-host": lambda p: p.assertion(aud="https://broker.example.org/oauth/token"),
    "no-aud": lambda p: p.assertion(aud=None),
    "exp-600s-ahead": lambda p: p.assertion(exp=int(time.time()) + 600),
    "exp-1h-ahead": lambda p: p.assertion(exp=int(time.time()) + 3600),
    "expired": lambda p: p.assertion(iat=int(time.time()) - 600, exp=int(time.time()) - 300),
    "no-exp": lambda p: p.assertion(exp=None),
    "iat-in-future": lambda p: p.assertion(iat=int(time.time()) + 240, exp=int(time.time()) + 280),
    "no-jti": lambda p: p.assertion(jti=None),
    "empty-jti": lambda p: p.assertion(jti=""),
    "nul-in-jti": lambda p: p.assertion(jti="a\x00b"),
    "iss-not-client": lambda p: p.assertion(iss="someone-else"),
    "other-key-same-alg": _other_key_same_alg,
    "other-key-other-alg": _other_key_other_alg,
    "payload-swapped": _unsigned_payload_swap,
    "embedded-attacker-jwk": _embedded_attacker_jwk,
    "not-a-jwt": lambda p: "dit-is-geen-jwt",
}


@pytest.mark.parametrize("make_assertion", REFUSED_ASSERTIONS.values(), ids=REFUSED_ASSERTIONS.keys())
def test_bad_assertion_is_refused(rbl: Party, problem: Any, make_assertion: Any) -> None:
    """Assertions that break a private_key_jwt rule are refused with 401 invalid_client."""
    assert_invalid_client(rbl.request_token(make_assertion(rbl)), problem)


def test_replayed_jti_is_refused(rbl: Party, problem: Any) -> None:
    """The same assertion (same jti) works once; its replay is refused."""
    assertion = rbl.assertion()
    assert rbl.request_token(assertion).status_code == 200
    assert_invalid_client(rbl.request_token(assertion), problem)


def test_jti_reused_in_a_new_assertion_is_refused(rbl: Party, problem: Any) -> None:
    """A new assertion reusing an earlier jti is refused too, even with other iat/exp."""
    assert rbl.request_token(rbl.assertion(jti="vaste-jti")).status_code == 200
    now = int(time.time())
    assert_invalid_client(rbl.request_token(rbl.assertion(jti="vaste-jti", iat=now + 1, exp=now + 200)), problem)


def test_unknown_client_and_bad_signature_look_the_same(rbl: Party, problem: Any) -> None:
    """An unknown client id and a bad signature get byte-identical answers (no enumeration)."""
    stranger_key = ECKey.generate_key("P-256")
    stranger = Party("rbl-midden-gelre", str(uuid.uuid4()), stranger_key, "ES256", rbl.http)
    unknown = stranger.request_token()
    bad_signature = rbl.request_token(_other_key_same_alg(rbl))
    assert_invalid_client(unknown, problem)
    assert_invalid_client(bad_signature, problem)
    assert unknown.get_data() == bad_signature.get_data()
    assert unknown.headers.get("WWW-Authenticate") == bad_signature.headers.get("WWW-Authenticate")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "unsupported_grant_type"),
        (
            {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
            401,
            "invalid_client",
        ),
        ({"client_assertion": None}, 401, "invalid_client"),
    ],
    ids=["authorization_code", "password", "no-grant-type", "saml-assertion-type", "no-assertion"],
)
def test_token_request_shape(rbl: Party, problem: Any, form: dict[str, Any], status: int, error: str) -> None:
    """Only grant_type=client_credentials with a jwt-bearer client assertion is served."""
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": rbl.assertion(),
    }
    data.update(form)
    response = rbl.http.post("/oauth/token", data={k: v for k, v in data.items() if v is not None})
    body = problem(response, status)
    assert body["error"] == error


# -- the assertion's aud comes from PUBLIC_URL, never from the Host header -------------------------


def _party_of(app: Any, tmp_path: Any) -> Party:
    key = ECKey.generate_key("P-256")
    client_id = register_client(app.test_cli_runner(), "rbl-midden-gelre", key.as_dict(private=False), tmp_path)
    return Party("rbl-midden-gelre", client_id, key, "ES256", app.test_client())


def _token_request(party: Party, aud: str, host: str) -> Any:
    return party.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
              "client_assertion": party.assertion(aud=aud)},
        headers={"Host": host},
    )


def test_aud_is_the_configured_public_url_whatever_the_host_header(
    app_config: dict[str, Any], tmp_path: Any, problem: Any
) -> None:
    """With PUBLIC_URL=https://broker.example, an assertion for evil.example sent with Host: evil.example
    is refused; one for https://broker.example/oauth/token gets a token, whichever Host it is sent with."""
    with initialised_app(app_config | {"PUBLIC_URL": "https://broker.example"}) as app:
        party = _party_of(app, tmp_path)
        evil = _token_request(party, "http://evil.example/oauth/token", "evil.example")
        assert assert_invalid_client(evil, problem)["detail"] == "aud moet het token-endpoint zijn."
        assert _token_request(party, "http://localhost/oauth/token", "localhost").status_code == 401
        for host in ("broker.example", "evil.example"):
            response = _token_request(party, "https://broker.example/oauth/token", host)
            assert response.status_code == 200, response.json


def test_without_a_public_url_no_token_is_issued(app_config: dict[str, Any], tmp_path: Any, problem: Any) -> None:
    """Unset, the broker does not fall back on the Host header: every token request is a 503, none is audited."""
    with initialised_app(app_config | {"PUBLIC_URL": None}) as app:
        party = _party_of(app, tmp_path)
        tries = (("http://evil.example/oauth/token", "evil.example"), ("http://localhost/oauth/token", "localhost"))
        for aud, host in tries:
            body = problem(_token_request(party, aud, host), 503)
            assert "BROKER_PUBLIC_URL" in body["detail"] and "access_token" not in body
        with app.app_context():
            names = db.session.scalars(select(AuditEntryRow.name)).all()
        assert not [n for n in names if n.startswith("token.")]


# -- the API's bearer-token checks -----------------------------------------------------------------


def test_no_token_is_401(client: Any, problem: Any) -> None:
    """An API call without a token is 401 problem+json with a Bearer challenge."""
    response = client.get(DELIVERIES)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer ", "bearer"],
)
def test_garbage_token_is_401(client: Any, problem: Any, authorization: str) -> None:
    """A malformed or non-bearer Authorization header is 401."""
    problem(client.get(DELIVERIES, headers={"Authorization": authorization}), 401)


def test_token_in_query_string_is_refused(rbl: Party, client: Any, problem: Any) -> None:
    """A token in the query string is refused with 400, alone or next to a header."""
    token = rbl.headers["Authorization"].split(" ", 1)[1]
    problem(client.get(f"{DELIVERIES}?access_token={token}"), 400)
    problem(rbl.get(f"{DELIVERIES}?access_token={token}"), 400)


def test_token_in_form_body_is_refused(rbl: Party, client: Any, problem: Any) -> None:
    """A token in a form body (RFC 6750 section 2.2) is refused too."""
    token = rbl.headers["Authorization"].split(" ", 1)[1]
    problem(client.post("/api/v1/deliveries/x/ack", data={"access_token": token}), 400)


def test_token_expires(rbl: Party, clock: Any, problem: Any) -> None:
    """A token still works after 59 minutes and is refused once its hour is over."""
    assert rbl.get(DELIVERIES).status_code == 200
    clock.advance(minutes=59)
    assert rbl.get(DELIVERIES).status_code == 200
    clock.advance(hours=1)
    problem(rbl.get(DELIVERIES), 401)


def test_revoked_client_loses_access(rbl: Party, runner: Any, problem: Any) -> None:
    """After `broker clients revoke` the client's token stops working and it gets no new one."""
    assert rbl.get(DELIVERIES).status_code == 200
    result = runner.invoke(args=["clients", "revoke", rbl.client_id])
    assert result.exit_code == 0, result.output
    problem(rbl.get(DELIVERIES), 401)
    assert_invalid_client(rbl.request_token(), problem)


def test_revoked_client_looks_like_an_unknown_one(rbl: Party, runner: Any, problem: Any) -> None:
    """A revoked client's token request is answered exactly like an unknown client's."""
    assert runner.invoke(args=["clients", "revoke", rbl.client_id]).exit_code == 0
    stranger = Party("rbl-midden-gelre", str(uuid.uuid4()), ECKey.generate_key("P-256"), "ES256", rbl.http)
    assert rbl.request_token().get_data() == stranger.request_token().get_data()


def test_token_of_one_client_is_not_another_party(rbl: Party, liemers: Party) -> None:
    """Each token acts as the party of its own client."""
    assert rbl.get(DELIVERIES).status_code == 200
    claims = claims_of(liemers.headers["Authorization"].split(" ", 1)[1])
    assert claims["party"] == "swv-de-liemers"


def _broker_signed(app: Any, **claims: Any) -> str:
    """Sign an access token with the broker's own key, as a forger holding it would."""
    from broker.app import runtime
    from broker.parties.oauth import TOKEN_ALGORITHM, TOKEN_PURPOSE

    with app.app_context():
        key = runtime.keyring().signing_key(TOKEN_PURPOSE, TOKEN_ALGORITHM)
        return jwt.encode(
            {"alg": TOKEN_ALGORITHM, "kid": key.kid, "typ": "at+jwt"},
            claims,
            ECKey.import_key(key.private_key),
            algorithms=[TOKEN_ALGORITHM],
        )


def _token_claims(app: Any, who: Party, **overrides: Any) -> dict[str, Any]:
    # The app's clock stands still during a test; date the token by it, not by the wall clock.
    now = int(app.config["CLOCK"].now.timestamp())
    claims = {
        "iss": app.config["TOKEN_ISSUER"],
        "sub": who.client_id,
        "aud": app.config["API_AUDIENCE"],
        "party": who.party_id,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_hand_signed_token_with_right_claims_is_accepted(app: Any, rbl: Party, client: Any) -> None:
    """Control for the next test: a broker-signed token with the right claims is accepted."""
    token = _broker_signed(app, **_token_claims(app, rbl))
    assert client.get(DELIVERIES, headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "http://localhost/oauth/token"},
        {"aud": "een-andere-api"},
        {"aud": None},
        {"iss": "iemand-anders"},
        {"exp": None},
        {"exp": int(time.time()) - 60},
        {"party": "swv-de-liemers"},
        {"party": None},
        {"sub": "onbekende-client"},
    ],
    ids=[
        "aud-token-endpoint",
        "aud-other",
        "no-aud",
        "wrong-iss",
        "no-exp",
        "expired",
        "party-mismatch",
        "no-party",
        "unknown-sub",
    ],
)
def test_access_token_claims_are_checked(
    app: Any, rbl: Party, client: Any, problem: Any, overrides: dict[str, Any]
) -> None:
    """The API checks aud, iss, exp, sub and party of a correctly signed token."""
    token = _broker_signed(app, **_token_claims(app, rbl, **overrides))
    problem(client.get(DELIVERIES, headers={"Authorization": f"Bearer {token}"}), 401)


def test_self_signed_access_token_is_refused(rbl: Party, client: Any, problem: Any) -> None:
    """A client cannot mint its own access token with its own key."""
    now = int(time.time())
    claims = {
        "iss": "convenant-broker",
        "sub": rbl.client_id,
        "aud": "convenant-broker-api",
        "party": rbl.party_id,
        "iat": now,
        "exp": now + 600,
    }
    token = jwt.encode({"alg": "ES256"}, claims, rbl.key, algorithms=["ES256"])
    problem(client.get(DELIVERIES, headers={"Authorization": f"Bearer {token}"}), 401)


def test_client_assertion_is_not_an_access_token(rbl: Party, client: Any, problem: Any) -> None:
    """A client's own assertion presented as a bearer token is refused."""
    problem(client.get(DELIVERIES, headers={"Authorization": f"Bearer {rbl.assertion()}"}), 401)


IS_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [10**12, -(10**12)], ids=["far-future", "far-past"])
def test_out_of_range_timestamps_are_refused_cleanly(rbl: Party, problem: Any, claim: str, value: int) -> None:
    """A signed assertion with an absurd exp, iat or nbf is 401 invalid_client, not a 500."""
    assert_invalid_client(rbl.request_token(rbl.assertion(**{claim: value})), problem)


def test_client_id_with_nul_byte_is_refused(client: Any, problem: Any) -> None:
    """An assertion naming a client id with a NUL byte is refused like any unknown client."""
    stranger = Party("rbl-midden-gelre", "abc\x00def", ECKey.generate_key("P-256"), "ES256", client)
    assert_invalid_client(stranger.request_token(), problem)


# -- registering clients (`broker clients add`) ----------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_client_registered_with_a_pem_key_gets_a_token(runner: Any, client: Any, tmp_path: Any, alg: str) -> None:
    """`broker clients add --public-key FILE.pem` registers a working client and prints its id."""
    key: ECKey | RSAKey = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
    path = tmp_path / "public.pem"
    path.write_bytes(key.as_pem(private=False))
    result = runner.invoke(args=["clients", "add", "--party", "swv-de-verbinding", "--public-key", str(path)])
    assert result.exit_code == 0, result.output
    client_id = result.output.strip()
    uuid.UUID(client_id)
    party = Party("swv-de-verbinding", client_id, key, alg, client)
    assert party.request_token().status_code == 200


def _write(tmp_path: Any, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize(
    ("party", "make_file"),
    [
        (
            "rbl-midden-gelre",
            lambda t: _write(t, "private.jwk", json.dumps(ECKey.generate_key("P-256").as_dict(private=True))),
        ),
        (
            "rbl-midden-gelre",
            lambda t: _write(t, "p384.jwk", json.dumps(ECKey.generate_key("P-384").as_dict(private=False))),
        ),
        (
            "rbl-midden-gelre",
            lambda t: _write(t, "oct.jwk", json.dumps(OctKey.generate_key(256).as_dict(private=True))),
        ),
        (
            "rbl-midden-gelre",
            lambda t: _write(t, "garbage.pem", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n"),
        ),
        (
            "gemeente-utrecht",
            lambda t: _write(t, "public.jwk", json.dumps(ECKey.generate_key("P-256").as_dict(private=False))),
        ),
    ],
    ids=["private-jwk", "p-384", "symmetric", "garbage", "party-in-no-convenant"],
)
def test_clients_add_refuses(runner: Any, tmp_path: Any, party: str, make_file: Any) -> None:
    """Private keys, other curves, symmetric keys, garbage and unknown parties are refused."""
    from broker.app.extensions import db
    from broker.models import Client

    result = runner.invoke(args=["clients", "add", "--party", party, "--public-key", make_file(tmp_path)])
    assert result.exit_code != 0, result.output
    with runner.app.app_context():
        assert db.session.query(Client).count() == 0


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_clients_add_refuses_a_private_pem(runner: Any, tmp_path: Any, alg: str) -> None:
    """A private key in PEM form is refused like a private JWK: the broker never takes one."""
    key: ECKey | RSAKey = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
    path = _write(tmp_path, "private.pem", key.as_pem(private=True))
    result = runner.invoke(args=["clients", "add", "--party", "rbl-midden-gelre", "--public-key", path])
    assert result.exit_code != 0, result.output
