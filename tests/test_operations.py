"""Operating the broker: health, metrics, refusing unsafe configuration, the scheduler's lease,
sign-in rate limits and lockouts, and a 503 while the database is away."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fixtures.app import Clock, initialised_app
from fixtures.officers import OFFICER_PASSWORD, csrf_from
from fixtures.records import make_record
from sqlalchemy import select

from broker import create_app
from broker.app import production
from broker.app.extensions import db
from broker.jobs import leases
from broker.models import AuditEntryRow, Lease, MatchRun

BIN = Path(sys.executable).parent


def entry_names(app: Any) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntryRow.name).order_by(AuditEntryRow.idx)))


def metric(body: str, name: str, /, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, label_text = sample.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if metric_name == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


# -- health ----------------------------------------------------------------------------------------


def test_liveness_and_readiness(client: Any) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "checks": {"database": "ok", "keys": "ok", "vault": "ok"}}


def test_readiness_fails_without_the_key_vault_and_with_another_master_key(app_config: dict[str, Any]) -> None:
    with initialised_app(app_config) as app:
        os.rmdir(app.config["KEY_VAULT_DIR"])  # `broker init` made it; nothing is in it yet
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert response.json["checks"] == {"database": "ok", "keys": "ok", "vault": "failed"}
        assert response.headers["Retry-After"]
    other = create_app({**app_config, "MASTER_KEY": "A" * 43 + "="})
    response = other.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["keys"] == "failed"
    assert other.test_client().get("/healthz").status_code == 200  # alive, just not ready


def test_readiness_fails_on_an_unmigrated_database(app_config: dict[str, Any], tmp_path: Path) -> None:
    app = create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "failed"


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_count_requests_submissions_and_audit_appends(client: Any, rbl: Any, problem: Any) -> None:
    before = client.get("/metrics").get_data(as_text=True)
    accepted = rbl.submit([make_record(1), make_record(2)])
    assert accepted.status_code == 201
    refused = rbl.submit([{**make_record(3), "diagnose": "ADHD"}])
    problem(refused, 422)
    after = client.get("/metrics")
    assert after.mimetype == "text/plain"
    body = after.get_data(as_text=True)
    convenant = accepted.json["convenant_id"]

    def grew(name: str, /, **labels: str) -> float:
        return metric(body, name, **labels) - metric(before, name, **labels)

    assert grew("broker_submissions_total", convenant=convenant, kind="case", outcome="accepted") == 1
    assert grew("broker_submissions_total", convenant=convenant, kind="case", outcome="rejected") == 1
    assert grew("broker_submitted_records_total", convenant=convenant, kind="case") == 2
    assert grew("broker_audit_appends_total", name="record.received") == 2
    assert grew("broker_audit_appends_total", name="submission.rejected") == 1
    route = "/api/v1/convenants/<convenant_id>/submissions"
    assert grew("broker_http_requests_total", method="POST", route=route, status="201") == 1
    assert grew("broker_http_requests_total", method="POST", route=route, status="422") == 1
    assert grew("broker_http_request_duration_seconds_count", method="POST", route=route) == 2
    assert make_record(1)["bsn"] not in body


def test_metrics_show_open_breaches_with_the_time_to_their_deadlines(
    client: Any, rbl: Any, liemers: Any, clock: Clock
) -> None:
    delivery = rbl.submit([make_record(1)]).json["deliveries"][0]["delivery_id"]
    detected = clock.now - dt.timedelta(hours=2)
    report = {
        "detected_at": detected.isoformat(),
        "description": "Een levering is naar het verkeerde adres gemaild.",
        "suspected_cause": "Menselijke fout",
        "scope": {"deliveries": [delivery]},
    }
    created = rbl.post("/api/v1/breaches", json=report)
    assert created.status_code == 201, created.json
    body = client.get("/metrics").get_data(as_text=True)
    number = str(created.json["number"])
    assert sum(metric(body, "broker_breaches_open", state=s) for s in ("gemeld", "genotificeerd")) == 1
    notify = metric(body, "broker_breach_notify_deadline_seconds", breach=number)
    assert notify == pytest.approx(22 * 3600, abs=5)
    assert metric(body, "broker_breach_ap_deadline_seconds", breach=number) == pytest.approx(70 * 3600, abs=5)
    clock.advance(hours=23)
    body = client.get("/metrics").get_data(as_text=True)
    assert metric(body, "broker_breach_notify_deadline_seconds", breach=number) == pytest.approx(-3600, abs=5)
    assert metric(body, "broker_breaches_open", state="te laat") == 1


def test_metrics_ask_for_the_configured_token(app_config: dict[str, Any]) -> None:
    with initialised_app({**app_config, "METRICS_TOKEN": "s3cret-metrics-token"}) as app:
        http = app.test_client()
        refused = http.get("/metrics")
        assert refused.status_code == 401
        assert refused.mimetype == "application/problem+json"
        assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"}).status_code == 200


# -- configuration safety --------------------------------------------------------------------------


@pytest.fixture
def production_config(tmp_path: Path) -> dict[str, Any]:
    from keys.master import create_master_key_file

    create_master_key_file(tmp_path / "master.key")
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
        "MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "SECRET_KEY": "k4Gq9-xV2mT8pLw3ZsR7nYb1HcJ6eFdA0uQ5oKiN",
        "KEY_VAULT_DIR": str(tmp_path / "vault"),
        "PUBLIC_URL": "https://broker.example.nl",
    }


@pytest.mark.parametrize("public_url", ["https://broker.example.nl", "http://127.0.0.1:8000"])
def test_a_sound_production_configuration_passes(production_config: dict[str, Any], public_url: str) -> None:
    """https, or plain http on a loopback address as `make run` serves the demo."""
    config = {**production_config, "PUBLIC_URL": public_url}
    assert production.problems(create_app(config), workers=1) == []


@pytest.mark.parametrize(
    ("change", "workers", "expected"),
    [
        ({"MASTER_KEY_FILE": "/nonexistent/master.key"}, 1, "master key file /nonexistent/master.key does not exist"),
        ({"SECRET_KEY": "changeme"}, 1, "secret key must be at least 32 characters"),
        ({"SECRET_KEY": "development-" + "x" * 30}, 1, "well-known or guessable"),
        ({"SECRET_KEY": "a" * 40}, 1, "well-known or guessable"),
        ({}, 4, "SQLite serves one worker only (4 asked)"),
        ({"DEBUG": True}, 1, "debug mode is on"),
        ({"PUBLIC_URL": None}, 1, "no public URL: set BROKER_PUBLIC_URL"),
        ({"PUBLIC_URL": "broker.example.nl"}, 1, "is not a base URL"),
        ({"PUBLIC_URL": "http://broker.example.nl"}, 1, "is plain http"),
    ],
)
def test_production_refuses_an_unsafe_configuration(
    production_config: dict[str, Any], change: dict[str, Any], workers: int, expected: str
) -> None:
    found = production.problems(create_app({**production_config, **change}), workers=workers)
    assert len(found) == 1
    assert expected in found[0]


def test_broker_serve_refuses_sqlite_with_several_workers_and_says_why(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BROKER_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
        "BROKER_MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "BROKER_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
        "BROKER_KEY_VAULT_DIR": str(tmp_path / "vault"),
    }
    env.pop("BROKER_DATABASE_URL_TEST", None)
    subprocess.run([BIN / "broker", "init"], env=env, check=True, capture_output=True, timeout=120)
    result = subprocess.run(
        [BIN / "broker", "serve", "--workers", "3", "--port", "0"],
        env={**env, "BROKER_DEBUG": "true"}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3
    assert "Refusing to start:" in result.stderr
    assert "SQLite serves one worker only (3 asked)" in result.stderr
    assert "debug mode is on" in result.stderr


def test_broker_serve_refuses_to_start_without_a_public_url(tmp_path: Path) -> None:
    """Without BROKER_PUBLIC_URL the assertion aud would have nothing to be checked against: no start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(
        BROKER_DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}", BROKER_MASTER_KEY_FILE=str(tmp_path / "master.key"),
        BROKER_SECRET_KEY_FILE=str(tmp_path / "secret.key"), BROKER_KEY_VAULT_DIR=str(tmp_path / "vault"),
    )
    subprocess.run([BIN / "broker", "init"], env=env, check=True, capture_output=True, timeout=120)
    result = subprocess.run(
        [BIN / "broker", "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert result.stderr.count("\n  - ") == 1, result.stderr
    assert "  - no public URL: set BROKER_PUBLIC_URL to the address parties use" in result.stderr


def test_make_run_serves_the_demo_with_its_own_address_as_public_url() -> None:
    """The demo's clients are told http://127.0.0.1:$PORT, and that is the aud the broker checks."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        ["make", "-n", "run", "PORT=8123"], cwd=root, capture_output=True, text=True, timeout=60, check=True
    )
    serve = [line for line in result.stdout.splitlines() if "broker serve" in line]
    setup = [line for line in result.stdout.splitlines() if "broker demo setup" in line]
    assert serve and "BROKER_PUBLIC_URL=http://127.0.0.1:8123 " in serve[0] and "--port 8123" in serve[0]
    assert setup and "BROKER_PUBLIC_URL=http://127.0.0.1:8123 " in setup[0]


# -- the database away -----------------------------------------------------------------------------


def test_an_unreachable_database_is_a_503_problem_not_a_500(app_config: dict[str, Any]) -> None:
    # Nothing listens on port 1: connecting fails at once, as when PostgreSQL is down.
    config = {**app_config, "DATABASE_URL": "postgresql+psycopg://broker@127.0.0.1:1/broker"}
    http = create_app(config).test_client()
    for response in (
        http.post("/oauth/token", data={"grant_type": "client_credentials"}),
        http.get("/api/v1/deliveries", headers={"Authorization": "Bearer x.y.z"}),
        http.get("/readyz"),
    ):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
        assert response.json["type"] == "/problems/service-unavailable"
        assert int(response.headers["Retry-After"]) >= 5
    page = http.post("/review/login", data={"username": "ann", "password": "x"})
    assert page.status_code in (400, 503)  # CSRF refuses first, or the database is found away
    assert http.get("/healthz").status_code == 200


# -- the scheduler's lease -------------------------------------------------------------------------


def test_one_lease_holder_at_a_time_and_it_passes_on_when_it_expires(app: Any, clock: Clock) -> None:
    ttl = dt.timedelta(minutes=3)
    with app.app_context():
        session = db.session
        assert leases.acquire(session, "scheduler", "a", clock.now, ttl)
        assert not leases.acquire(session, "scheduler", "b", clock.now, ttl)
        assert leases.acquire(session, "scheduler", "a", clock.now + dt.timedelta(minutes=1), ttl)  # renewal
        assert not leases.acquire(session, "scheduler", "b", clock.now + dt.timedelta(minutes=3), ttl)
        assert leases.acquire(session, "scheduler", "b", clock.now + dt.timedelta(minutes=5), ttl)  # a died
        leases.release(session, "scheduler", "b")
        assert leases.acquire(session, "scheduler", "a", clock.now + dt.timedelta(minutes=5), ttl)
        assert session.get(Lease, "scheduler").holder == "a"


def test_rival_schedulers_run_a_due_match_once(app: Any, clock: Clock, monkeypatch: Any) -> None:
    """Eight schedulers (as in eight workers) tick at the same moment: one runs the jobs."""
    from broker.jobs import scheduler

    ran: list[str] = []
    real_tick = scheduler.tick

    def counting_tick(**kwargs: Any) -> Any:
        ran.append(threading.current_thread().name)
        return real_tick(**kwargs)

    monkeypatch.setattr(scheduler, "tick", counting_tick)
    rivals = [scheduler.Scheduler(lambda: app, interval=60) for _ in range(8)]
    barrier = threading.Barrier(len(rivals))
    errors: list[BaseException] = []

    def run(rival: scheduler.Scheduler) -> None:
        try:
            barrier.wait()
            with app.app_context():
                rival._tick_if_leader()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(r,), name=f"worker-{i}") for i, r in enumerate(rivals)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(ran) == 1
    with app.app_context():
        holder = db.session.get(Lease, "scheduler").holder
        assert holder in {r.holder for r in rivals}
        assert db.session.scalars(select(MatchRun)).all() == []  # nothing was due, but only one looked


# -- sign-in abuse ---------------------------------------------------------------------------------


@pytest.fixture
def strict_app(app_config: dict[str, Any]) -> Any:
    config = {**app_config, "LOCKOUT_FAILURES": 3, "LOCKOUT_WINDOW": 600, "LOCKOUT_SECONDS": 900}
    with initialised_app(config) as app:
        yield app


def _strict_party(strict_app: Any, tmp_path: Path) -> Any:
    from fixtures.parties import Party, register_client
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    client_id = register_client(strict_app.test_cli_runner(), "rbl-midden-gelre", key.as_dict(private=False), tmp_path)
    return Party("rbl-midden-gelre", client_id, key, "ES256", strict_app.test_client())


def test_repeated_failed_token_requests_lock_the_client_out_from_that_address(
    strict_app: Any, tmp_path: Path, clock: Clock
) -> None:
    from joserfc.jwk import ECKey

    party = _strict_party(strict_app, tmp_path)
    # A stranger who knows the client_id signs in the party's name with a key of its own.
    stranger = replace(party, key=ECKey.generate_key("P-256"))
    statuses = [stranger.request_token().status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    locked = party.request_token()  # the real key, but locked out for now
    assert locked.status_code == 429
    assert locked.mimetype == "application/problem+json"
    assert 0 < int(locked.headers["Retry-After"]) <= 901
    # The party's own system elsewhere is not locked out by a stranger's attempts.
    elsewhere = party.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials",
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
              "client_assertion": party.assertion()},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert elsewhere.status_code == 200
    clock.advance(minutes=16)
    now = int(clock.now.timestamp())
    assert party.request_token(party.assertion(iat=now, exp=now + 120)).status_code == 200
    names = entry_names(strict_app)
    assert names.count("token.refused") == 4  # three forged, one while locked
    assert names.count("token.locked_out") == 1
    assert names.count("token.issued") == 2


def test_repeated_failed_logins_lock_the_username_out(strict_app: Any, clock: Clock) -> None:
    result = strict_app.test_cli_runner().invoke(
        args=["users", "add", "ann", "--role", "broker-officer", "--password", OFFICER_PASSWORD]
    )
    assert result.exit_code == 0, result.output
    http = strict_app.test_client()

    def attempt(password: str) -> Any:
        token = csrf_from(http.get("/review/login").get_data(as_text=True))
        return http.post("/review/login", data={"username": "ann", "password": password, "csrf_token": token})

    assert [attempt("wrong").status_code for _ in range(3)] == [200, 200, 429]
    locked = attempt(OFFICER_PASSWORD)
    assert locked.status_code == 429
    assert "Te veel mislukte pogingen" in locked.get_data(as_text=True)
    clock.advance(minutes=16)
    assert attempt(OFFICER_PASSWORD).status_code == 302
    names = entry_names(strict_app)
    assert names.count("login.refused") == 4
    assert names.count("login.locked_out") == 1
    assert names.count("user.logged_in") == 1


def test_an_unknown_username_is_locked_out_like_a_known_one(strict_app: Any) -> None:
    http = strict_app.test_client()
    statuses = []
    for _ in range(3):
        token = csrf_from(http.get("/review/login").get_data(as_text=True))
        statuses.append(
            http.post("/review/login", data={"username": "nobody", "password": "x", "csrf_token": token}).status_code
        )
    assert statuses == [200, 200, 429]


def test_the_token_endpoint_is_rate_limited_per_address(app_config: dict[str, Any], tmp_path: Path) -> None:
    with initialised_app({**app_config, "RATELIMIT_TOKEN": "3 per minute"}) as app:
        party = _strict_party(app, tmp_path)
        statuses = [party.request_token().status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = party.request_token()
        assert limited.mimetype == "application/problem+json"
        assert int(limited.headers["Retry-After"]) > 0


def test_the_login_form_is_rate_limited_per_address(app_config: dict[str, Any]) -> None:
    with initialised_app({**app_config, "RATELIMIT_LOGIN": "2 per minute"}) as app:
        http = app.test_client()
        token = csrf_from(http.get("/review/login").get_data(as_text=True))
        statuses = [
            http.post("/review/login", data={"username": f"u{i}", "password": "x", "csrf_token": token}).status_code
            for i in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert http.get("/review/login").status_code == 200  # only posting is limited


# -- headers and limits ----------------------------------------------------------------------------


def test_api_answers_carry_security_headers(client: Any, rbl: Any) -> None:
    for response in (rbl.get("/api/v1/deliveries"), client.get("/api/v1/deliveries"), client.get("/openapi.json")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    secure = client.get("/healthz", base_url="https://broker.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    page = client.get("/review/login")
    assert "script-src" not in page.headers["Content-Security-Policy"] or "'unsafe-inline'" not in page.headers[
        "Content-Security-Policy"
    ]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(app_config: dict[str, Any], tmp_path: Path) -> None:
    with initialised_app({**app_config, "MAX_CONTENT_LENGTH": 10_000}) as app:
        party = _strict_party(app, tmp_path)
        records = [make_record(i) for i in range(1, 200)]
        response = party.submit(records)
        assert response.status_code == 413
        assert response.mimetype == "application/problem+json"
        with app.app_context():
            assert "submission.accepted" not in entry_names(app)


def test_two_breaches_reported_at_the_same_moment_get_distinct_numbers(
    app: Any, rbl: Any, liemers: Any, clock: Clock
) -> None:
    delivery = rbl.submit([make_record(1)]).json["deliveries"][0]["delivery_id"]
    report = {
        "detected_at": clock.now.isoformat(),
        "description": "Een levering is naar het verkeerde adres gemaild.",
        "suspected_cause": "Menselijke fout",
        "scope": {"deliveries": [delivery]},
    }
    headers = rbl.headers
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def report_one() -> None:
        http = app.test_client()
        barrier.wait()
        answers.append(http.post("/api/v1/breaches", json=report, headers=headers))

    threads = [threading.Thread(target=report_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [201] * 4, [a.get_json() for a in answers]
    assert sorted(a.json["number"] for a in answers) == [1, 2, 3, 4]
