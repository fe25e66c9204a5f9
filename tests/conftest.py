"""Fixtures: a fresh migrated database per test (SQLite or PostgreSQL), an app with a clock the
test controls, and party clients that sign their own client assertions."""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import gc
import io
import json
import os
import shutil
import threading
import time
import uuid
import warnings
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
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate one template database per test session; tests get copies of it."""
    if _is_postgres(TEST_DATABASE_URL):
        url = make_url(TEST_DATABASE_URL)
        admin = make_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        template = f"broker_template_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}"'))
            conn.execute(text(f'CREATE DATABASE "{template}"'))
        upgrade(url.set(database=template).render_as_string(hide_password=False))
        yield template
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
        admin.dispose()
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    yield str(path)


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
        # Finalise connections a test left for the garbage collector (a test client's response
        # not read to its end keeps its request's connection) now, while their database still
        # exists: finalised after the DROP they log a traceback, and formatting it can hit CPython
        # 3.11.7's nested ast.parse bug (gh-106905) in a later test. Their ResourceWarning says
        # only that the harness left them; the DROP ... WITH (FORCE) below ends them either way.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
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
        "KEY_VAULT_DIR": str(tmp_path / "vault"),
        # The test client's own address; assertions name http://localhost/oauth/token as aud.
        "PUBLIC_URL": "http://localhost",
    }


@contextlib.contextmanager
def initialised_app(config: dict[str, Any]) -> Iterator[Any]:
    """Create an app, run `broker init` on its database, and dispose of its engine afterwards."""
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    yield app
    with app.app_context():
        from broker.extensions import db

        db.engine.dispose()


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Any]:
    with initialised_app(app_config) as app:
        yield app


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
    _token: str | None = None

    @property
    def token_url(self) -> str:
        """The broker's token endpoint as its PUBLIC_URL names it (the aud of an assertion)."""
        return str(self.http.application.config["PUBLIC_URL"]).rstrip("/") + "/oauth/token"

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

    def submit(
        self, records: list[dict[str, Any]], kind: str = "case", quarter: str | None = None, convenant: str = CONVENANT
    ) -> Any:
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
    "Arnhem": "6811 AB",
    "Renkum": "6871 AA",
    "Rheden": "6991 AA",
    "Rozendaal": "6891 AA",
    "Lingewaard": "6851 AA",
    "Overbetuwe": "6661 AA",
    "Duiven": "6921 AA",
    "Westervoort": "6931 AA",
    "Zevenaar": "6901 AA",
}


def make_record(
    n: int = 0, category: str = "langdurig_verzuim", gemeente: str = "Arnhem", **overrides: Any
) -> dict[str, Any]:
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


# The CSV columns of the demo convenant, as a party's spreadsheet has them.
COLUMNS = [
    "category",
    "bsn",
    "voornaam",
    "achternaam",
    "geboortedatum",
    "adres_straat",
    "adres_huisnummer",
    "adres_postcode",
    "adres_woonplaats",
    "adres_gemeente",
    "laatst_bekende_school",
    "startdatum_verzuim",
    "reden_verzuim",
    "betrokkenheid",
    "betrokkenheid_toelichting",
    "datum_toekenning_vrijstelling",
    "einddatum_vrijstelling",
]


def to_csv(
    records: list[dict[str, Any]],
    delimiter: str = ",",
    columns: list[str] | None = None,
    lineterminator: str = "\n",
) -> str:
    """Write records as the CSV a party's spreadsheet would produce (adres flattened)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or COLUMNS, delimiter=delimiter, lineterminator=lineterminator)
    writer.writeheader()
    for record in records:
        row = {k: v for k, v in record.items() if k != "adres"}
        row.update({f"adres_{k}": v for k, v in record.get("adres", {}).items()})
        writer.writerow(row)
    return buffer.getvalue()


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
    base_url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_URL"] = base_url  # the address real clients use is the broker's public URL
    yield base_url
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
                count = "SELECT COUNT(*) FROM {}"
                return {t: conn.execute(text(count.format(t))).scalar_one() for t in COUNTED_TABLES}

    return counts


@pytest.fixture
def problem() -> Any:
    """Return a checker: assert `response` is an RFC 9457 problem with `status`; return its body."""

    def check(response: Any, status: int) -> dict[str, Any]:
        detail = response.get_data(as_text=True)[:2000]
        assert response.status_code == status, (response.status_code, detail)
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
SECOND_CONVENANT_TOML = """
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

[[processing_activities]]
id = "vsv-melding"
version = "1"
name = "Melden van voortijdig schoolverlaters"
purpose = "Het terugleiden van voortijdig schoolverlaters naar onderwijs of werk."
subjects = "Jongeren tot 23 jaar zonder startkwalificatie in het Rijk van Nijmegen."
recipients = "Het RMC en de woongemeente van de jongere."
retention = "Tot de ontvanger de melding heeft opgehaald en bevestigd."
handles = ["case", "quarterly_list", "match"]
"""


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
    close_log_files()  # should the test also hold the plain `app`, release its log file first
    with initialised_app(app_config | {"CONVENANT_DIR": str(multi_convenant_dir)}) as app:
        yield app


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


def make_vsv_record(
    n: int = 0,
    category: str = "voortijdig_schoolverlaten",
    gemeente: str = "Nijmegen",
    **overrides: Any,
) -> dict[str, Any]:
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


def close_log_files() -> None:
    """Close the log file handlers an app installed on the root logger.

    An app's log file stays open until the next app replaces it; at the end of a test nothing
    replaces it, so every test ends by closing it (else a ResourceWarning, an error under
    filterwarnings=error).
    """
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.close()


@pytest.fixture(autouse=True)
def _close_log_files_after_test() -> Iterator[None]:
    yield
    close_log_files()


# -- helpers added for the audit tamper suite (new fixtures only) ---------------------------------

AUDIT_GUARDED = ("audit_entries", "audit_nodes", "audit_checkpoints", "register_activities")
_VERIFY_PROBLEM = r"FOUT bij entry (?P<index>\d+|None): (?P<kind>[a-z_]+)"


@dataclass(frozen=True)
class VerifyOutcome:
    """What `broker audit verify` said: exit code, all output, and the first problem it named."""

    exit_code: int
    output: str
    index: int | None
    kind: str | None
    leaks: tuple[str, ...] = ()  # database cursors the command left open (reported, not raised)


class AuditDb:
    """Read the audit tables; write them as the app would, or as an administrator who first
    switches the append-only guards off (SQLite: drop the triggers; PostgreSQL: replica mode)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    def rows(self) -> list[dict[str, Any]]:
        """Every stored entry row, all columns, in index order (binary columns as bytes)."""
        from sqlalchemy import select

        from broker.models import AuditEntryRow

        table = AuditEntryRow.__table__
        with self.engine.connect() as conn:
            result = conn.execute(select(table).order_by(table.c.idx)).mappings().all()
        binary = ("canonical", "prev_hash", "leaf_hash", "chain_hash")
        return [{k: bytes(v) if k in binary else v for k, v in row.items()} for row in result]

    def records(self) -> list[dict[str, Any]]:
        """Every entry's record, decoded from its canonical bytes."""
        return [json.loads(row["canonical"]) for row in self.rows()]

    def size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM audit_entries")).scalar_one())

    def checkpoints(self) -> list[dict[str, Any]]:
        """Every signed checkpoint (tree_size, root_hash, note), smallest first."""
        with self.engine.connect() as conn:
            result = (
                conn.execute(text("SELECT tree_size, root_hash, note FROM audit_checkpoints ORDER BY tree_size"))
                .mappings()
                .all()
            )
        return [{**row, "root_hash": bytes(row["root_hash"])} for row in result]

    def nodes(self) -> dict[tuple[int, int], bytes]:
        with self.engine.connect() as conn:
            result = conn.execute(text("SELECT level, idx, hash FROM audit_nodes")).all()
        return {(int(level), int(idx)): bytes(node) for level, idx, node in result}

    def execute(self, statement: Any, params: Any = None) -> Any:
        """Run one statement in its own transaction with every guard in place."""
        statement = text(statement) if isinstance(statement, str) else statement
        with self.engine.begin() as conn:
            return conn.execute(statement, params) if params is not None else conn.execute(statement)

    def bypass(self, method: str = "default") -> Any:
        """A context manager: a connection on which the append-only guards are off.

        SQLite: the triggers are dropped and recreated afterwards. PostgreSQL, as superuser:
        `method="default"` sets session_replication_role = replica for the transaction,
        `method="disable"` runs ALTER TABLE ... DISABLE TRIGGER ALL (and enables them after).
        """
        from contextlib import contextmanager

        @contextmanager
        def sqlite() -> Iterator[Any]:
            with self.engine.connect() as conn:
                triggers = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all()
                for name, _ in triggers:
                    conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
                conn.commit()
                try:
                    yield conn
                    conn.commit()
                finally:
                    conn.rollback()
                    for _, sql in triggers:
                        conn.exec_driver_sql(sql)
                    conn.commit()

        @contextmanager
        def postgres() -> Iterator[Any]:
            with self.engine.begin() as conn:
                if method == "disable":
                    for table in AUDIT_GUARDED:
                        conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
                else:
                    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                yield conn
                if method == "disable":
                    for table in AUDIT_GUARDED:
                        conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER ALL")

        return sqlite() if self.dialect == "sqlite" else postgres()

    def rewrite(self, rows: list[dict[str, Any]], method: str = "default") -> None:
        """Replace the whole stored log by `rows`, as an administrator past the guards."""
        from sqlalchemy import insert

        from broker.models import AuditEntryRow

        with self.bypass(method) as conn:
            conn.execute(text("DELETE FROM audit_entries"))
            if rows:
                conn.execute(insert(AuditEntryRow.__table__), rows)


@pytest.fixture
def audit_db(app: Any) -> AuditDb:
    """The audit tables of the test's database, through the app's own engine (and pragmas)."""
    with app.app_context():
        from broker.extensions import db

        return AuditDb(db.engine)


@pytest.fixture
def audit_verify(runner: Any) -> Any:
    """Return a function that runs `broker audit verify` and parses the problem it names."""

    import gc
    import re
    import sys

    def run() -> VerifyOutcome:
        leaks: list[str] = []
        previous_hook = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            # A server-side cursor (PostgreSQL, yield_per) the command did not close warns when it
            # is collected; keep that here so it is asserted on where it happens, not in a later test.
            if "ServerCursor" in str(unraisable.exc_value):
                leaks.append(str(unraisable.exc_value))
            else:
                previous_hook(unraisable)

        sys.unraisablehook = hook
        try:
            result = runner.invoke(args=["audit", "verify"])
            output, exit_code = result.output, result.exit_code
            del result
            gc.collect()
        finally:
            sys.unraisablehook = previous_hook
        found = re.search(_VERIFY_PROBLEM, output)
        index = kind = None
        if found:
            index = None if found["index"] == "None" else int(found["index"])
            kind = found["kind"]
        return VerifyOutcome(exit_code, output, index, kind, tuple(leaks))

    return run


# -- the review interface: privacy officers (new fixtures only) -------------------------------------

OFFICER_PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_officer(runner: Any) -> Any:
    """Return a factory: make_officer("ann", party="swv-de-liemers") adds a privacy officer of that
    party; without a party, a broker officer. Returns the username."""

    def factory(username: str, party: str | None = None, password: str = OFFICER_PASSWORD) -> str:
        role = "privacy-officer" if party else "broker-officer"
        args = ["users", "add", username, "--role", role, "--password", password]
        result = runner.invoke(args=args + (["--party", party] if party else []))
        assert result.exit_code == 0, result.output
        return username

    return factory


def csrf_from(html: str) -> str:
    """Return the CSRF token of the first form in a review page."""
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def officer_client(app: Any) -> Any:
    """Return a factory: officer_client("ann") is a test client logged in to the review UI as ann."""

    def factory(username: str, password: str = OFFICER_PASSWORD) -> Any:
        http = app.test_client()
        token = csrf_from(http.get("/review/login").get_data(as_text=True))
        response = http.post("/review/login", data={"username": username, "password": password, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return http

    return factory


# -- helpers added for the quarterly matching suite (new fixtures only) -----------------------------


@pytest.fixture
def verbinding(make_party: Any) -> Party:
    return make_party("swv-de-verbinding")


@pytest.fixture
def open_quarter(app: Any, clock: Clock) -> str:
    """The first quarter of the demo calendar whose deadline is more than ten days after the clock."""
    from broker.services.quarters import deadline_at

    with app.app_context():
        from broker import runtime

        calendar = runtime.get_convenant(CONVENANT).quarterly.calendar
    for dates in calendar:
        if deadline_at(dates) > clock.now + dt.timedelta(days=10):
            return dates.quarter
    pytest.skip("the demo calendar has no quarter left after the clock; extend it")


def refresh_token(party: Party, clock: Clock) -> None:
    """Give `party` a token valid at the test clock's time (after clock.advance)."""
    now = int(clock.now.timestamp())
    response = party.request_token(party.assertion(iat=now, exp=now + 120))
    assert response.status_code == 200, response.json
    party._token = response.json["access_token"]


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint that records what it receives and answers with scripted statuses."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """Serve a webhook receiver on a free loopback port; answers 200 unless `statuses` says otherwise."""
    receiver = WebhookReceiver(url="")

    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        receiver.received.append({"path": environ["PATH_INFO"], "headers": headers, "body": body})
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield receiver
    server.shutdown()
    thread.join()
    server.server_close()


# -- a real SMTP server for the e-mail channel (new fixtures only) ----------------------------------


@dataclass
class SmtpServer:
    """A local SMTP server that keeps what it receives; `fail_next = n` answers the next n messages with 451."""

    host: str
    port: int
    messages: list[Any] = field(default_factory=list)  # email.message.EmailMessage, parsed with policy.default
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)  # (MAIL FROM, RCPT TO) of each message
    fail_next: int = 0


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _smtp: Any, _session: Any, envelope: Any) -> str:  # aiosmtpd calls it by this name
        import email
        import email.policy

        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            return "451 4.3.0 Tijdelijke storing (test)"
        self.server.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Serve SMTP (aiosmtpd) on a free loopback port in a thread; no message leaves the machine."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = SmtpServer(host="127.0.0.1", port=port)
    controller = Controller(_SmtpHandler(server), hostname=server.host, port=server.port)
    controller.start()
    yield server
    controller.stop()


# -- a real browser for the review interface: Debian's chromium, never a downloaded one -------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
browser_test = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server, accept_downloads=True, locale="nl-NL")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
