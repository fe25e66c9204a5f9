"""Request bodies (broker/app/bodies.py): read whole within MAX_CONTENT_LENGTH or refused, whatever the
transfer encoding; a body that was not read whole is never parsed.

A chunked body has no Content-Length; the server de-chunks it and sets `wsgi.input_terminated`
(gunicorn, werkzeug's server). The test client is told the same with an environ override; two tests
send a real chunked request to a real server (werkzeug's, and `broker serve`, gunicorn).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fixtures.exchange import PROBLEM_JSON
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_record, to_csv
from serverproc import BrokerEnv, BrokerServer, Registrar, close_parties
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from broker.app.db import make_engine
from broker.app.extensions import db

SUBMISSIONS = f"/api/v1/convenants/{CONVENANT}/submissions"
TERMINATED = {"wsgi.input_terminated": True}


def list_csv(count: int) -> tuple[bytes, list[int]]:
    """A quarterly list of `count` records as CSV, and the byte offset at which each line ends."""
    body = to_csv([make_record(n, gemeente="Arnhem") for n in range(1, count + 1)]).encode()
    ends = [i + 1 for i, byte in enumerate(body) if byte == ord("\n")]
    return body, ends


def chunked(http: Any, path: str, body: bytes, headers: dict[str, str], **kwargs: Any) -> Any:
    """POST `body` as a de-chunked stream without Content-Length, as gunicorn hands it to the app."""
    return http.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={**TERMINATED, **kwargs.pop("environ_overrides", {})},
        **kwargs,
    )


def audit_names(app: Any) -> list[str]:
    with app.app_context():
        return list(db.session.execute(text("SELECT name FROM audit_entries ORDER BY idx")).scalars())


@pytest.fixture
def small_limit(app: Any) -> Iterator[int]:
    """MAX_CONTENT_LENGTH of 20,000 bytes for the test (werkzeug reads it per request)."""
    app.config["MAX_CONTENT_LENGTH"] = 20_000
    yield 20_000


def test_chunked_list_over_the_limit_is_413_and_nothing_is_stored(
    app: Any, client: Any, rbl: Party, open_quarter: str, small_limit: int, count_rows: Any, problem: Any
) -> None:
    """A chunked quarterly list longer than MAX_CONTENT_LENGTH, cut by the limit exactly at a row end, is
    a 413 problem+json: no partial list is stored with a 201."""
    body, ends = list_csv(200)
    cut = max(end for end in ends if end <= small_limit)  # what werkzeug would have stopped at
    assert cut < len(body)
    app.config["MAX_CONTENT_LENGTH"] = cut
    headers = {**rbl.headers, "Content-Type": "text/csv"}
    before = count_rows()
    response = chunked(client, f"{SUBMISSIONS}?kind=quarterly_list&quarter={open_quarter}", body, headers)
    refusal = problem(response, 413)
    assert str(cut) in refusal["detail"]
    assert count_rows() == before
    assert "submission.accepted" not in audit_names(app)


def test_chunked_list_of_exactly_the_limit_is_stored_whole(
    app: Any, client: Any, rbl: Party, open_quarter: str, small_limit: int
) -> None:
    """A chunked body of exactly MAX_CONTENT_LENGTH bytes is read whole: every record is stored."""
    body, _ends = list_csv(60)
    assert len(body) <= small_limit
    app.config["MAX_CONTENT_LENGTH"] = len(body)
    headers = {**rbl.headers, "Content-Type": "text/csv"}
    response = chunked(client, f"{SUBMISSIONS}?kind=quarterly_list&quarter={open_quarter}", body, headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["accepted"] == 60


def test_chunked_json_over_the_limit_is_413_not_a_json_error(
    client: Any, rbl: Party, small_limit: int, problem: Any
) -> None:
    """A chunked JSON body over the limit is a 413, not parsed cut short (which was a 400 'no JSON')."""
    body = json.dumps({"kind": "case", "records": [make_record(n) for n in range(1, 80)]}).encode()
    assert len(body) > small_limit
    headers = {**rbl.headers, "Content-Type": "application/json"}
    problem(chunked(client, SUBMISSIONS, body, headers), 413)


def test_chunked_form_over_the_limit_is_413(client: Any, rbl: Party, small_limit: int, problem: Any) -> None:
    """A form body (the token endpoint's) over the limit is a 413 too: request.form reads the same stream."""
    form = (
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type"
        f"%3Ajwt-bearer&client_assertion={rbl.assertion()}&padding={'x' * small_limit}"
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    problem(chunked(client, "/oauth/token", form, headers), 413)


def test_content_length_over_the_limit_is_the_same_413(
    client: Any, rbl: Party, small_limit: int, problem: Any
) -> None:
    """With a Content-Length over the limit the answer is the same 413 problem, before the body is read."""
    body, _ends = list_csv(200)
    headers = {**rbl.headers, "Content-Type": "text/csv"}
    refusal = problem(client.post(f"{SUBMISSIONS}?kind=case", data=body, headers=headers), 413)
    assert str(small_limit) in refusal["detail"]


def test_body_shorter_than_its_content_length_is_400_and_not_parsed(
    client: Any, rbl: Party, count_rows: Any, problem: Any
) -> None:
    """A terminated stream that ends before its Content-Length (the client went away) is a 400: the part
    that came is not stored as if it were the whole list."""
    body, ends = list_csv(30)
    part = body[: ends[10]]  # the header and ten whole records
    headers = {**rbl.headers, "Content-Type": "text/csv"}
    before = count_rows()
    response = client.post(
        f"{SUBMISSIONS}?kind=case",
        input_stream=io.BytesIO(part),
        headers=headers,
        environ_overrides={**TERMINATED, "CONTENT_LENGTH": str(len(body))},
    )
    problem(response, 400)
    assert count_rows() == before


def test_chunked_body_broken_off_is_400(client: Any, rbl: Party, count_rows: Any, problem: Any) -> None:
    """A chunked body whose stream breaks (a bad chunk, a lost connection) is a 400 and nothing is stored."""

    class Broken(io.BytesIO):
        """A stream that fails where its data ends, as a reset connection does."""

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            if not data:
                raise OSError("connection reset by peer")
            return data

        def readinto(self, buffer: Any) -> int:
            got = super().readinto(buffer)
            if not got:
                raise OSError("connection reset by peer")
            return got

    body, ends = list_csv(30)
    headers = {**rbl.headers, "Content-Type": "text/csv", "Transfer-Encoding": "chunked"}
    before = count_rows()
    response = client.post(
        f"{SUBMISSIONS}?kind=case",
        input_stream=Broken(body[: ends[10]]),
        headers=headers,
        environ_overrides=TERMINATED,
    )
    problem(response, 400)
    assert count_rows() == before


# -- real servers, real chunked requests -----------------------------------------------------------


def pieces(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body as a generator: requests sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_real_chunked_request_to_the_werkzeug_server(
    app: Any, live_server: str, rbl: Party, open_quarter: str, small_limit: int, count_rows: Any
) -> None:
    """Over real HTTP (werkzeug's server de-chunks): a chunked list over the limit is a 413 problem, one
    within it is stored whole."""
    url = f"{live_server}{SUBMISSIONS}?kind=quarterly_list&quarter={open_quarter}"
    headers = {**rbl.headers, "Content-Type": "text/csv"}
    too_big, _ends = list_csv(200)
    before = count_rows()
    with requests.Session() as http:
        refused = http.post(url, data=pieces(too_big), headers=headers, timeout=30)
        assert refused.request.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in refused.request.headers
        assert refused.status_code == 413 and refused.headers["Content-Type"] == PROBLEM_JSON, refused.text[:500]
        assert count_rows() == before
    whole, _ends = list_csv(40)
    assert len(whole) <= small_limit
    with requests.Session() as http:
        accepted = http.post(url, data=pieces(whole), headers=headers, timeout=30)
        assert accepted.status_code == 201, accepted.text[:500]
        assert accepted.json()["accepted"] == 40


def test_real_chunked_request_to_broker_serve(database_url: str, tmp_path: Path) -> None:
    """`broker serve` (gunicorn) with BROKER_MAX_CONTENT_LENGTH=20000: a real chunked list over it is a
    413 problem+json and no submission is stored; a chunked case within it is stored whole."""
    env = BrokerEnv(database_url, tmp_path / "broker", extra_env={"BROKER_MAX_CONTENT_LENGTH": "20000"})
    env.cli("init")
    registrar = Registrar(env)
    try:
        party = registrar.add("rbl-midden-gelre")
    finally:
        registrar.close()
    server = BrokerServer(env, workers=1, name="bodies")
    try:
        server.start()
        url = f"{env.base_url}{SUBMISSIONS}?kind=case"
        headers = {**party.headers, "Content-Type": "text/csv"}
        too_big, _ends = list_csv(200)
        refused = party.http.post(url, data=pieces(too_big), headers=headers, timeout=60)
        assert refused.status_code == 413, (refused.status_code, refused.text[:500], server.log_tail())
        assert refused.headers["Content-Type"] == PROBLEM_JSON
        whole, _ends = list_csv(40)
        accepted = party.http.post(url, data=pieces(whole), headers=headers, timeout=60)
        assert accepted.status_code == 201, (accepted.text[:500], server.log_tail())
        assert accepted.json()["accepted"] == 40
    finally:
        server.stop()
        close_parties()
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            counts = conn.execute(text("SELECT COUNT(*) FROM submissions")).scalar_one()
    finally:
        engine.dispose()
    assert counts == 1
