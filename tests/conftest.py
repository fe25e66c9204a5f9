"""Fixtures: a fresh migrated database per test (SQLite or PostgreSQL), an app with a clock the
test controls, and party clients that sign their own client assertions."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from broker import create_app
from broker.db import make_engine
from broker.migrate import upgrade

CONVENANT = "thuiszitters-midden-gelre"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TEST_DATABASE_URL = os.environ.get("BROKER_DATABASE_URL", "")


# -- clock ---------------------------------------------------------------------------------------


@dataclass
class Clock:
    """A clock tests move by hand; it starts at the real time so real clients' assertions fit."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- database ------------------------------------------------------------------------------------


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate one template database per test session; tests get copies of it."""
    if _is_postgres(TEST_DATABASE_URL):
        url = make_url(TEST_DATABASE_URL)
        admin = make_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        template = f"broker_template_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}"'))
            conn.execute(text(f'CREATE DATABASE "{template}"'))
        admin.dispose()
        upgrade(url.set(database=template).render_as_string(hide_password=False))
        return template
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(template_database: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if _is_postgres(TEST_DATABASE_URL):
        url = make_url(TEST_DATABASE_URL)
        admin = make_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        name = f"broker_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path / "broker.db"
        shutil.copyfile(template_database, path)
        yield f"sqlite:///{path}"


# -- app -----------------------------------------------------------------------------------------


@pytest.fixture
def app_config(database_url: str, clock: Clock, tmp_path: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "CLOCK": clock,
        "LOG_FILE": str(tmp_path / "broker.log"),
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Any]:
    app = create_app(app_config)
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    yield app
    with app.app_context():
        from broker.extensions import db

        db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


# -- parties -------------------------------------------------------------------------------------


@dataclass
class Party:
    """A party's own client: it holds its private key and signs its own assertions."""

    party_id: str
    client_id: str
    key: ECKey | RSAKey
    alg: str
    http: Any
    token_url: str = "http://localhost/oauth/token"
    _token: str | None = None

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": self.alg}, claims, self.key, algorithms=[self.alg])

    def request_token(self, assertion: str | None = None) -> Any:
        return self.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion or self.assertion(),
            },
        )

    @property
    def headers(self) -> dict[str, str]:
        if self._token is None:
            response = self.request_token()
            assert response.status_code == 200, response.json
            self._token = response.json["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def submit(self, records: list[dict[str, Any]], kind: str = "case", quarter: str | None = None,
               convenant: str = CONVENANT) -> Any:
        body: dict[str, Any] = {"kind": kind, "records": records}
        if quarter:
            body["quarter"] = quarter
        return self.http.post(f"/api/v1/convenants/{convenant}/submissions", json=body, headers=self.headers)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.http.post(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def register_client(runner: Any, party_id: str, public_jwk: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.jwk"
    path.write_text(json.dumps(public_jwk))
    result = runner.invoke(args=["clients", "add", "--party", party_id, "--public-key", str(path)])
    assert result.exit_code == 0, result.output
    return result.output.strip()


@pytest.fixture
def make_party(client: Any, runner: Any, tmp_path: Path) -> Any:
    """Return a factory: make_party("swv-de-liemers", alg="RS256") registers a new client."""

    def factory(party_id: str, alg: str = "ES256") -> Party:
        key: ECKey | RSAKey = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
        client_id = register_client(runner, party_id, key.as_dict(private=False), tmp_path)
        return Party(party_id, client_id, key, alg, client)

    return factory


@pytest.fixture
def rbl(make_party: Any) -> Party:
    return make_party("rbl-midden-gelre")


@pytest.fixture
def liemers(make_party: Any) -> Party:
    return make_party("swv-de-liemers")


@pytest.fixture
def passend_wijs(make_party: Any) -> Party:
    return make_party("swv-passend-wijs")


# -- records -------------------------------------------------------------------------------------


def make_bsn(n: int) -> str:
    """Return the n-th valid BSN (elfproef) of a deterministic, collision-free test series."""
    for prefix in (10_000_000 + 2 * n, 10_000_000 + 2 * n + 1):
        digits = str(prefix)
        check = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return digits + str(check)
    raise AssertionError("unreachable: the two prefixes differ by 2 in the weighted sum")


GEMEENTE_POSTCODE = {
    "Arnhem": "6811 AB", "Renkum": "6871 AA", "Rheden": "6991 AA", "Rozendaal": "6891 AA",
    "Lingewaard": "6851 AA", "Overbetuwe": "6661 AA", "Duiven": "6921 AA", "Westervoort": "6931 AA",
    "Zevenaar": "6901 AA",
}


def make_record(n: int = 0, category: str = "langdurig_verzuim", gemeente: str = "Arnhem", **overrides: Any) -> dict[str, Any]:
    """Return a valid record of `category` about test pupil `n` living in `gemeente`."""
    record: dict[str, Any] = {
        "category": category,
        "bsn": make_bsn(n),
        "voornaam": "Sam",
        "achternaam": f"Jansen-{n}",
        "geboortedatum": "2012-05-17",
        "adres": {
            "straat": "Dorpsstraat",
            "huisnummer": str(1 + n % 200),
            "postcode": GEMEENTE_POSTCODE[gemeente],
            "woonplaats": gemeente,
            "gemeente": gemeente,
        },
        "laatst_bekende_school": "Het Westeraam College",
    }
    if category in ("absoluut_verzuim", "langdurig_verzuim"):
        record.update(startdatum_verzuim="2026-09-01", betrokkenheid="beide")
    if category == "langdurig_verzuim":
        record["reden_verzuim"] = "wacht op plaatsing"
    if category == "vrijstelling_5a":
        record.update(datum_toekenning_vrijstelling="2026-02-01", einddatum_vrijstelling="2027-08-01")
    record.update(overrides)
    return record


@pytest.fixture
def record_factory() -> Any:
    return make_record


# -- a real server for real HTTP clients -----------------------------------------------------------


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """Serve the app on a free loopback port in a thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


# -- helpers added for the exchange-path suite (new fixtures only) ---------------------------------

PROBLEM_JSON = "application/problem+json"
COUNTED_TABLES = ("submissions", "records", "deliveries", "delivery_records", "data_keys")


@pytest.fixture
def count_rows(app: Any) -> Any:
    """Return a function giving the row count of every table a submission writes to."""

    def counts() -> dict[str, int]:
        with app.app_context():
            from broker.extensions import db

            with db.engine.connect() as conn:
                return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in COUNTED_TABLES}

    return counts


@pytest.fixture
def problem() -> Any:
    """Return a checker: assert `response` is an RFC 9457 problem with `status`; return its body."""

    def check(response: Any, status: int) -> dict[str, Any]:
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:2000])
        assert response.mimetype == PROBLEM_JSON, response.mimetype
        body = json.loads(response.get_data(as_text=True))
        assert body["status"] == status
        assert body["type"] and body["title"] and "detail" in body
        return body

    return check


SECOND_CONVENANT = "vsv-rijk-van-nijmegen"

# A second, different convenant: municipalities <-> RMC about early school leavers. Other parties,
# roles, categories, field names (the subject field is not called `bsn`, the address is `woonadres`)
# and age bounds than the demo convenant, so nothing in the code can lean on the demo's names.
SECOND_CONVENANT_TOML = '''
id = "vsv-rijk-van-nijmegen"
version = "7"
title = "Convenant voortijdig schoolverlaten Rijk van Nijmegen (testconvenant)"
purposes = ["Het terugleiden van voortijdig schoolverlaters naar onderwijs of werk."]
subject_id_field = "burgerservicenummer"
gemeente_field = "woonadres.gemeente"

[legal_basis]
article = "AVG art. 6 lid 1 sub c"

[leerplicht]
birth_date_field = "geboortedatum"
min_age = 16
max_age = 23

[[parties]]
id = "gemeente-nijmegen"
name = "Gemeente Nijmegen"
role = "gemeente"
werkgebied = ["Nijmegen"]
provides = ["voortijdig_schoolverlaten"]

[[parties]]
id = "gemeente-wijchen"
name = "Gemeente Wijchen"
role = "gemeente"
werkgebied = ["Wijchen", "Beuningen"]
provides = ["voortijdig_schoolverlaten"]

[[parties]]
id = "rmc-rijk-van-nijmegen"
name = "RMC Rijk van Nijmegen"
role = "rmc"
werkgebied = ["Nijmegen", "Wijchen", "Beuningen"]
provides = ["voortijdig_schoolverlaten", "startkwalificatie_behaald"]

[[routing]]
from_role = "gemeente"
to_role = "rmc"

[[routing]]
from_role = "rmc"
to_role = "gemeente"

[fields.burgerservicenummer]
type = "bsn"
label = "BSN"

[fields.naam]
type = "string"
label = "Naam"
max_length = 120
screen = "bsn"

[fields.geboortedatum]
type = "date"
label = "Geboortedatum"
not_future = true

[fields.woonadres]
type = "object"
label = "Woonadres"

[fields.woonadres.fields.postcode]
type = "postcode"
label = "Postcode"

[fields.woonadres.fields.gemeente]
type = "gemeente"
label = "Gemeente"

[fields.uitschrijfdatum]
type = "date"
label = "Datum uitschrijving"
not_future = true

[fields.toelichting]
type = "text"
label = "Toelichting"
max_length = 100
screen = "full"

[fields.niveau]
type = "enum"
label = "Behaald niveau"
choices = ["mbo2", "havo", "vwo"]

[fields.diplomadatum]
type = "date"
label = "Diplomadatum"
not_future = true

[categories.voortijdig_schoolverlaten]
label = "Voortijdig schoolverlaten"
definition = "Jongeren tot 23 jaar die zonder startkwalificatie het onderwijs verlaten."
age_reference = "uitschrijfdatum"
optional = ["toelichting"]

[[categories.voortijdig_schoolverlaten.items]]
item = "BSN"
fields = ["burgerservicenummer"]
reason = "Om de jongere eenduidig te identificeren."

[[categories.voortijdig_schoolverlaten.items]]
item = "Naam, geboortedatum en woonadres"
fields = ["naam", "geboortedatum", "woonadres"]
reason = "Om de jongere te kunnen benaderen."

[[categories.voortijdig_schoolverlaten.items]]
item = "Uitschrijving"
fields = ["uitschrijfdatum", "toelichting"]
reason = "Om te weten sinds wanneer de jongere geen onderwijs volgt."

[categories.startkwalificatie_behaald]
label = "Startkwalificatie behaald"
definition = "Jongeren die na uitval alsnog een startkwalificatie behaalden."
age_reference = "diplomadatum"

[[categories.startkwalificatie_behaald.items]]
item = "BSN"
fields = ["burgerservicenummer"]
reason = "Om de jongere eenduidig te identificeren."

[[categories.startkwalificatie_behaald.items]]
item = "Geboortedatum en woonadres"
fields = ["geboortedatum", "woonadres"]
reason = "Om de gemeente vast te stellen."

[[categories.startkwalificatie_behaald.items]]
item = "Diploma"
fields = ["niveau", "diplomadatum"]
reason = "Om de registratie als voortijdig schoolverlater te beeindigen."

[[ending_reasons]]
id = "startkwalificatie"
code = "1"
text = "De jongere heeft een startkwalificatie behaald."
'''


@pytest.fixture
def multi_convenant_dir(tmp_path: Path) -> Path:
    """A convenant directory holding the demo convenant and the second test convenant."""
    from schemas.convenant import DEFAULT_DIR

    directory = tmp_path / "convenants"
    directory.mkdir()
    shutil.copyfile(DEFAULT_DIR / f"{CONVENANT}.toml", directory / f"{CONVENANT}.toml")
    (directory / f"{SECOND_CONVENANT}.toml").write_text(SECOND_CONVENANT_TOML, encoding="utf-8")
    return directory


@pytest.fixture
def multi_app(app_config: dict[str, Any], multi_convenant_dir: Path) -> Iterator[Any]:
    """An app serving both convenants, built exactly like `app` but with CONVENANT_DIR set."""
    app = create_app(app_config | {"CONVENANT_DIR": str(multi_convenant_dir)})
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    yield app
    with app.app_context():
        from broker.extensions import db

        db.engine.dispose()


@pytest.fixture
def make_multi_party(multi_app: Any, tmp_path: Path) -> Any:
    """Like `make_party`, for the app that serves both convenants."""
    http = multi_app.test_client()
    runner = multi_app.test_cli_runner()

    def factory(party_id: str, alg: str = "ES256") -> Party:
        key: ECKey | RSAKey = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
        client_id = register_client(runner, party_id, key.as_dict(private=False), tmp_path)
        return Party(party_id, client_id, key, alg, http)

    return factory


def make_vsv_record(n: int = 0, category: str = "voortijdig_schoolverlaten", gemeente: str = "Nijmegen",
                    **overrides: Any) -> dict[str, Any]:
    """Return a valid record of the second convenant about young person `n` in `gemeente`."""
    record: dict[str, Any] = {
        "category": category,
        "burgerservicenummer": make_bsn(n),
        "geboortedatum": "2008-03-01",
        "woonadres": {"postcode": "6511 AA", "gemeente": gemeente},
    }
    if category == "voortijdig_schoolverlaten":
        record.update(naam=f"Noa de Vries-{n}", uitschrijfdatum="2026-10-01")
    else:
        record.update(niveau="mbo2", diplomadatum="2026-07-01")
    record.update(overrides)
    return record
