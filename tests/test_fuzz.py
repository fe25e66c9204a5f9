"""Schemathesis over every operation of /openapi.json, in-process against the WSGI app.

One app and one database serve the whole module (SQLite, or PostgreSQL with BROKER_DATABASE_URL):
four parties with real tokens (the OAuth private_key_jwt flow) and real objects (a routed case, a
quarter's match, a breach, a restriction). For each operation schemathesis generates requests that
fit the spec and requests that do not, and checks every answer:

- no 5xx, ever;
- the status code is documented for the operation, the content type is one documented for that
  status, the body matches its schema, and the documented headers are there (API-Version);
- a schema-violating request is refused with a 4xx (`negative_data_rejection`), and a request that
  succeeded with a token fails without one and with an invalid one (`ignored_auth`).

Three kinds of requests, as the party the objects belong to or as any seeded party:
- generated from the spec, valid or invalid;
- explicit examples about the seeded objects (a GET sees its real delivery, breach, quarter), so the
  success bodies are checked too;
- requests valid in their structure whose leaves (free texts, times, numbers, filters) are fuzzed,
  so that they reach the services and the database instead of stopping at the first 422.

`test_operation_refuses_without_a_valid_token` walks every operation that declares bearerAuth and
asks it without a token, with an empty, a Basic, a garbage, a forged and an expired token: each must
be 401 problem+json with a Bearer challenge, as documented.

Reproducible: Hypothesis is derandomized (a fixed seed per test) and keeps no example database.
FUZZ_MAX_EXAMPLES (default 40) sets the examples per operation and mode, for a deeper run by hand.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fixtures.app import initialised_app
from fixtures.database import TEST_DATABASE_URL
from fixtures.parties import Party, register_client
from fixtures.records import CONVENANT, make_bsn, make_record, to_csv
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi import checks as openapi_checks
from sqlalchemy import text
from sqlalchemy.engine import make_url

from broker import create_app
from broker.app.db import make_engine

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))
PROBLEM_JSON = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# The checks of the bar: server errors, conformance of status, content type, body and headers,
# negative data refused, auth enforced. `positive_data_acceptance` is left out on purpose: the spec
# cannot say everything the broker validates (the BSN elfproef, a record against its convenant,
# whether an id exists), so a schema-valid request is often rightly refused with 400/404/422.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"with-security-parameters": False},
        "checks": {"positive_data_acceptance": {"enabled": False}},
    }
)
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def _spec() -> dict[str, Any]:
    """The OpenAPI document, from a throwaway app (no database is touched)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": f"sqlite:///{tmp}/spec.db",
                "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
                "KEY_VAULT_DIR": f"{tmp}/vault",
            }
        )
        response = app.test_client().get("/openapi.json")
        assert response.status_code == 200
        spec: dict[str, Any] = response.get_json()
    return spec


SPEC = _spec()
OPERATIONS: list[str] = [
    f"{method.upper()} {path}" for path, item in SPEC["paths"].items() for method in item if method in METHODS
]


def _operation(label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    operation: dict[str, Any] = SPEC["paths"][path][method.lower()]
    return operation


def _requires_token(label: str) -> bool:
    """Whether the operation declares bearerAuth (also when a review session may stand in for it)."""
    security = _operation(label).get("security", SPEC.get("security", []))
    return any("bearerAuth" in requirement for requirement in security)


def _has_generated_input(label: str) -> bool:
    """Whether the operation takes query parameters or a body: then there is invalid input to send."""
    method, path = label.split(" ", 1)
    parameters = SPEC["paths"][path].get("parameters", []) + _operation(label).get("parameters", [])
    return "requestBody" in _operation(label) or any(p["in"] == "query" for p in parameters)


def _negatable(label: str) -> bool:
    """Whether schemathesis can make an invalid request: a plain string path parameter has no invalid
    value that still reaches the operation (an empty one is another path)."""
    method, path = label.split(" ", 1)
    parameters = SPEC["paths"][path].get("parameters", []) + _operation(label).get("parameters", [])
    plain = {"type": "string", "minLength": 1}
    return _has_generated_input(label) or any(p["in"] == "path" and p["schema"] != plain for p in parameters)


# -- the seeded world ------------------------------------------------------------------------------


@dataclass
class Example:
    """An explicit request: as `party`, with these path parameters (and body, query, headers)."""

    party: str | None
    path_parameters: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    media_type: str | None = None
    query: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    def strategy_kwargs(self, with_body: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"path_parameters": self.path_parameters}
        if with_body and self.body is not None:
            kwargs.update(body=self.body, media_type=self.media_type or "application/json")
        if with_body and self.query is not None:
            kwargs["query"] = self.query
        if self.headers:
            kwargs["headers"] = self.headers
        return kwargs


@dataclass
class World:
    app: Any
    clock: LiveClock
    parties: dict[str, Party]
    quarter: str
    deliveries: dict[str, str]
    breach_id: str
    restriction_id: str
    pseudonym: str
    activity: str


class LiveClock:
    """The real time, plus an offset a test may set (to present a token after it expired)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    @property
    def now(self) -> dt.datetime:
        return self()


def _created(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), (response.status_code, response.get_data(as_text=True)[:1000])
    body: dict[str, Any] = response.json
    return body


@pytest.fixture(scope="module")
def fuzz_database(template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database for the whole module (a copy of the session's template), like `database_url`:
    every operation is fuzzed against the same seeded objects, and the module pays the setup once."""
    if not TEST_DATABASE_URL.startswith("postgresql"):
        path = tmp_path_factory.mktemp("fuzz") / "broker.db"
        shutil.copyfile(template_database, path)
        yield f"sqlite:///{path}"
        return
    url = make_url(TEST_DATABASE_URL)
    admin = make_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"broker_fuzz_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with warnings.catch_warnings():  # see `database_url` in fixtures/database.py
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def world(fuzz_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app, its parties with real tokens, and real objects for path parameters and bodies: a
    routed case, the open quarter matched, a breach De Liemers reported about its delivery, and a
    restriction Passend Wijs asked for."""
    tmp = tmp_path_factory.mktemp("fuzz-app")
    clock = LiveClock()
    config = {
        "TESTING": True,
        "DATABASE_URL": fuzz_database,
        "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "CLOCK": clock,
        "LOG_FILE": str(tmp / "broker.log"),
        "KEY_VAULT_DIR": str(tmp / "vault"),
        "PUBLIC_URL": "http://localhost",  # the test client's host: the aud of the parties' assertions
        # The fuzzer sends far more than the 30 token requests a minute one address may make; with
        # that limit the token endpoint would answer (a documented) 429 to nearly all of them.
        "RATELIMIT_TOKEN": "100000 per minute",
    }
    with initialised_app(config) as app:
        http, runner = app.test_client(), app.test_cli_runner()

        def party(party_id: str) -> Party:
            key = ECKey.generate_key("P-256")
            return Party(
                party_id, register_client(runner, party_id, key.as_dict(private=False), tmp), key, "ES256", http
            )

        rbl, liemers, passend_wijs, verbinding = (
            party(p) for p in ("rbl-midden-gelre", "swv-de-liemers", "swv-passend-wijs", "swv-de-verbinding")
        )
        with app.app_context():
            from broker.app import runtime
            from broker.auditing import step as auditing
            from broker.matching.quarters import deadline_at

            quarterly = runtime.get_convenant(CONVENANT).quarterly
            assert quarterly is not None
            quarter = next(q.quarter for q in quarterly.calendar if deadline_at(q) > clock.now + dt.timedelta(days=10))
            pseudonym = runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(1))
            activity = auditing.register().activities[0].uri
        case = _created(rbl.submit([make_record(1, gemeente="Duiven"), make_record(2, gemeente="Arnhem")]))
        deliveries = {d["recipient"]: d["delivery_id"] for d in case["deliveries"]}
        lists = [
            (rbl, [make_record(1, gemeente="Duiven"), make_record(3, gemeente="Arnhem")]),
            (passend_wijs, [make_record(3, gemeente="Arnhem"), make_record(4, gemeente="Renkum")]),
            (liemers, [make_record(5, gemeente="Zevenaar")]),
            (verbinding, [make_record(6, gemeente="Lingewaard")]),
        ]
        for sender, records in lists:
            _created(sender.submit(records, kind="quarterly_list", quarter=quarter))
        breach = _created(
            liemers.post(
                "/api/v1/breaches",
                json={
                    "convenant_id": CONVENANT,
                    "detected_at": clock.now.isoformat(),
                    "description": "Een levering is naar een verkeerd e-mailadres doorgestuurd.",
                    "suspected_cause": "Menselijke fout bij het doorsturen.",
                    "scope": {"deliveries": [deliveries["swv-de-liemers"]]},
                },
            )
        )
        restriction = _created(
            passend_wijs.post(
                f"/api/v1/convenants/{CONVENANT}/restrictions",
                json={"bsn": make_bsn(4), "reason": "De ouders maken bezwaar."},
            )
        )
        yield World(
            app=app,
            clock=clock,
            parties={p.party_id: p for p in (rbl, liemers, passend_wijs, verbinding)},
            quarter=quarter,
            deliveries=deliveries,
            breach_id=breach["id"],
            restriction_id=restriction["restriction_id"],
            pseudonym=pseudonym,
            activity=activity,
        )


def _examples(w: World) -> dict[str, list[Example]]:
    """Per operation, requests about the seeded objects (and bodies valid enough to get past 422)."""
    rbl, liemers, pw = "rbl-midden-gelre", "swv-de-liemers", "swv-passend-wijs"
    convenant = {"convenant_id": CONVENANT}
    quarter = {**convenant, "quarter": w.quarter}
    breach = {"breach_id": w.breach_id}
    delivery = {"delivery_id": w.deliveries[liemers]}
    as_json = {"Accept": "application/json"}
    as_csv = {"Accept": "text/csv"}
    moment = w.clock.now.isoformat()
    token = w.parties[rbl]
    return {
        "POST /oauth/token": [
            Example(
                None,
                body={
                    "grant_type": "client_credentials",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": token.assertion(),
                },
                media_type="application/x-www-form-urlencoded",
            )
        ],
        "GET /api/v1/convenants/{convenant_id}": [Example(rbl, convenant)],
        "POST /api/v1/convenants/{convenant_id}/submissions": [
            Example(rbl, convenant, {"kind": "case", "records": [make_record(10, gemeente="Zevenaar")]}),
            Example(
                liemers,
                convenant,
                to_csv([make_record(11, gemeente="Duiven")]),
                "text/csv",
                query={"kind": "case"},
            ),
        ],
        "GET /api/v1/deliveries": [Example(liemers, query={"status": "open"})],
        "GET /api/v1/deliveries/{delivery_id}": [
            Example(liemers, delivery),
            Example(liemers, delivery, headers=as_csv),
            Example(pw, {"delivery_id": w.deliveries[pw]}),
        ],
        "POST /api/v1/deliveries/{delivery_id}/ack": [Example(liemers, delivery)],
        "GET /api/v1/audit/checkpoint": [Example(None, headers=as_json)],
        "GET /api/v1/audit/key": [Example(None, headers=as_json)],
        "GET /api/v1/audit/entries/{index}/proof": [Example(None, {"index": 0})],
        "GET /api/v1/audit/consistency": [Example(None, query={"from": 1, "to": 2})],
        "GET /api/v1/audit/entries": [
            Example(rbl, query={"data_subject_id": w.pseudonym}),
            Example(liemers, query={"processing_activity_id": w.activity, "per_page": 5}),
        ],
        "GET /api/v1/convenants/{convenant_id}/quarters/{quarter}": [Example(rbl, quarter)],
        "GET /api/v1/convenants/{convenant_id}/quarters/{quarter}/match": [
            Example(rbl, quarter),
            Example(pw, quarter, headers=as_csv),
        ],
        "GET /api/v1/convenants/{convenant_id}/quarters/{quarter}/counts": [Example(pw, quarter)],
        "POST /api/v1/breaches": [
            Example(
                rbl,
                body={
                    "convenant_id": CONVENANT,
                    "detected_at": moment,
                    "description": "Een lijst is op een gedeelde schijf gezet.",
                    "suspected_cause": "Verkeerde map gekozen.",
                    "scope": {"window": {"from": moment, "to": moment}},
                },
            )
        ],
        "GET /api/v1/breaches": [Example(liemers), Example(rbl, headers=as_csv)],
        "GET /api/v1/breaches/{breach_id}": [Example(rbl, breach), Example(liemers, breach)],
        "POST /api/v1/breaches/{breach_id}/acknowledgements": [
            Example(rbl, breach, {"comment": "Ontvangen en doorgezet naar onze FG."})
        ],
        "POST /api/v1/breaches/{breach_id}/ap-decisions": [
            Example(liemers, breach, {"reported_to_ap": False, "reasoning": "Geen risico voor de betrokkenen."})
        ],
        "PATCH /api/v1/breaches/{breach_id}/impact": [
            Example(liemers, breach, {"reason": "Het waren er minder.", "data_subjects": 1})
        ],
        "POST /api/v1/breaches/{breach_id}/close": [Example(liemers, breach, {"measures": "Adresboek opgeschoond."})],
        "POST /api/v1/convenants/{convenant_id}/subject-requests": [
            Example(rbl, convenant, {"bsn": make_bsn(1), "kind": "inzage", "received_at": moment})
        ],
        "POST /api/v1/convenants/{convenant_id}/restrictions": [
            Example(rbl, convenant, {"bsn": make_bsn(1), "reason": "Bezwaar van de ouders."})
        ],
        "DELETE /api/v1/convenants/{convenant_id}/restrictions/{restriction_id}": [
            Example(pw, {**convenant, "restriction_id": w.restriction_id})
        ],
        "POST /api/v1/convenants/{convenant_id}/erasures": [
            Example(rbl, convenant, {"bsn": make_bsn(2), "reason": "Verzoek tot wissing toegekend."})
        ],
        "POST /api/v1/convenants/{convenant_id}/endings": [
            Example(rbl, convenant, {"bsn": make_bsn(1), "reason": "a"})
        ],
        "POST /api/v1/convenants/{convenant_id}/corrections": [
            Example(rbl, convenant, {"records": [make_record(1, gemeente="Duiven", voornaam="Kim")]})
        ],
    }


# -- bodies that get past the first checks, with their free texts and times fuzzed -------------------

TEXTS = st.text(max_size=40)  # any Unicode: NUL, control characters, astral planes, long digit runs
SEEDED_BSNS = st.sampled_from([make_bsn(1), make_bsn(2), make_bsn(4), make_bsn(99)])
GEMEENTEN = st.sampled_from(["Arnhem", "Duiven", "Zevenaar", "Lingewaard", "Renkum", "arnhem ", "Utrecht"])
CATEGORIES = st.sampled_from(["langdurig_verzuim", "absoluut_verzuim", "vrijstelling_5a"])
DATETIMES = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59))
OFFSETS = st.sampled_from(["", "Z", "+00:00", "+01:00", "+14:00", "-12:00"])


def _moments(now: dt.datetime) -> st.SearchStrategy[str]:
    """ISO 8601 times: around now, anywhere in years 1-9999, with or without an offset; or junk."""
    near = st.integers(min_value=-400 * 86400, max_value=86400).map(lambda s: now + dt.timedelta(seconds=s))
    return st.one_of(
        near.map(lambda m: m.isoformat()),
        near.map(lambda m: m.replace(tzinfo=None).isoformat()),
        st.builds(lambda m, offset: m.isoformat() + offset, DATETIMES, OFFSETS),
        TEXTS,
    )


def _optional(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


def _record(n: int) -> st.SearchStrategy[dict[str, Any]]:
    """A record of the demo convenant whose texts, dates and places are fuzzed."""
    return st.builds(
        lambda category, gemeente, voornaam, achternaam, geboortedatum, postcode: make_record(
            n,
            category,
            gemeente="Duiven",
            voornaam=voornaam,
            achternaam=achternaam,
            geboortedatum=geboortedatum,
            adres={
                "straat": "Dorpsstraat",
                "huisnummer": "1",
                "postcode": postcode,
                "woonplaats": gemeente,
                "gemeente": gemeente,
            },
        ),
        CATEGORIES,
        GEMEENTEN,
        st.one_of(st.just("Sam"), TEXTS),
        st.one_of(st.just("Jansen"), TEXTS),
        st.one_of(st.dates().map(dt.date.isoformat), TEXTS),
        st.one_of(st.just("6921 AA"), TEXTS),
    )


def _deep(w: World) -> dict[str, list[tuple[str, dict[str, Any], st.SearchStrategy[Any]]]]:
    """Per operation, (party, path parameters, body or query strategy): requests valid in their
    structure whose leaves are fuzzed, so the texts and times reach the services and the database."""
    rbl, liemers, pw = "rbl-midden-gelre", "swv-de-liemers", "swv-passend-wijs"
    convenant = {"convenant_id": CONVENANT}
    breach = {"breach_id": w.breach_id}
    moments = _moments(w.clock.now)
    return {
        "POST /api/v1/convenants/{convenant_id}/submissions": [
            (
                rbl,
                convenant,
                st.fixed_dictionaries(
                    {"kind": st.just("case"), "records": st.lists(_record(20), min_size=1, max_size=2)}
                ),
            ),
            (
                liemers,
                convenant,
                st.fixed_dictionaries(
                    {
                        "kind": st.just("quarterly_list"),
                        "quarter": st.sampled_from([w.quarter, "2026-Q1", "1999-Q4"]),
                        "records": st.lists(_record(21), min_size=1, max_size=2),
                    }
                ),
            ),
        ],
        "POST /api/v1/convenants/{convenant_id}/corrections": [
            (rbl, convenant, st.fixed_dictionaries({"records": st.lists(_record(1), min_size=1, max_size=1)})),
        ],
        "POST /api/v1/convenants/{convenant_id}/endings": [
            (
                rbl,
                convenant,
                st.fixed_dictionaries({"bsn": SEEDED_BSNS, "reason": st.one_of(st.sampled_from(["a", "b"]), TEXTS)}),
            ),
        ],
        "POST /api/v1/convenants/{convenant_id}/subject-requests": [
            (
                rbl,
                convenant,
                _optional(
                    {
                        "bsn": SEEDED_BSNS,
                        "kind": st.sampled_from(["inzage", "wissing", "beperking"]),
                        "received_at": moments,
                    },
                    {"note": TEXTS},
                ),
            ),
        ],
        "POST /api/v1/convenants/{convenant_id}/restrictions": [
            (rbl, convenant, st.fixed_dictionaries({"bsn": SEEDED_BSNS, "reason": TEXTS})),
        ],
        "POST /api/v1/convenants/{convenant_id}/erasures": [
            (rbl, convenant, st.fixed_dictionaries({"bsn": SEEDED_BSNS, "reason": TEXTS})),
        ],
        "POST /api/v1/breaches": [
            (
                rbl,
                {},
                _optional(
                    {
                        "detected_at": moments,
                        "description": TEXTS,
                        "suspected_cause": TEXTS,
                        "scope": st.one_of(
                            st.fixed_dictionaries({"deliveries": st.just([w.deliveries[liemers]])}),
                            st.fixed_dictionaries({"window": st.fixed_dictionaries({"from": moments, "to": moments})}),
                            st.fixed_dictionaries({"subjects": st.lists(SEEDED_BSNS, min_size=1, max_size=2)}),
                        ),
                    },
                    {"convenant_id": st.one_of(st.just(CONVENANT), TEXTS)},
                ),
            ),
        ],
        "POST /api/v1/breaches/{breach_id}/acknowledgements": [
            (rbl, breach, _optional({}, {"comment": TEXTS})),
        ],
        "POST /api/v1/breaches/{breach_id}/ap-decisions": [
            (
                liemers,
                breach,
                _optional(
                    {"reported_to_ap": st.booleans()},
                    {"ap_reference": TEXTS, "reported_at": moments, "reasoning": TEXTS},
                ),
            ),
        ],
        "PATCH /api/v1/breaches/{breach_id}/impact": [
            (
                liemers,
                breach,
                _optional(
                    {"reason": TEXTS},
                    {
                        "data_subjects": st.integers(min_value=-1, max_value=2**70),
                        "data_subject_categories": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "category": st.one_of(CATEGORIES, TEXTS),
                                    "count": st.integers(min_value=-1, max_value=2**70),
                                }
                            ),
                            max_size=2,
                        ),
                        "personal_data_categories": st.lists(
                            st.one_of(st.sampled_from(["bsn", "voornaam"]), TEXTS), max_size=2
                        ),
                        "add_parties": st.lists(st.one_of(st.sampled_from([rbl, pw]), TEXTS), max_size=2),
                    },
                ),
            ),
        ],
        "POST /api/v1/breaches/{breach_id}/close": [
            (liemers, breach, st.fixed_dictionaries({"measures": TEXTS})),
        ],
    }


def _deep_queries(w: World) -> dict[str, list[tuple[str, dict[str, Any], st.SearchStrategy[Any]]]]:
    """Per operation, (party, path parameters, query strategy) with fuzzed filter values."""
    return {
        "GET /api/v1/audit/entries": [
            (
                "rbl-midden-gelre",
                {},
                _optional(
                    {"processing_activity_id": st.one_of(st.just(w.activity), TEXTS)},
                    {
                        "page": st.integers(min_value=-1, max_value=2**70),
                        "per_page": st.integers(min_value=-1, max_value=600),
                    },
                ),
            ),
        ],
        "GET /api/v1/deliveries": [("swv-de-liemers", {}, _optional({}, {"convenant": TEXTS, "status": TEXTS}))],
        "GET /api/v1/breaches": [("swv-de-liemers", {}, _optional({}, {"state": TEXTS}))],
    }


# -- the fuzzing -------------------------------------------------------------------------------------


def _strategy(operation: Any, world: World, label: str, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """(party, case): generated requests as any seeded party, the explicit ones as their party, and
    (valid data only) requests with a valid structure and fuzzed leaves."""
    parties = st.sampled_from(sorted(world.parties))
    branches = [st.tuples(parties, operation.as_strategy(generation_mode=mode))]
    for example in _examples(world).get(label, []):
        # Negative cases keep the real path (so invalid input meets a real object) and negate the rest.
        if mode is GenerationMode.NEGATIVE and not _has_generated_input(label):
            continue
        kwargs = example.strategy_kwargs(with_body=mode is GenerationMode.POSITIVE)
        party = st.just(example.party) if example.party else parties
        branches.append(st.tuples(party, operation.as_strategy(generation_mode=mode, **kwargs)))
    if mode is GenerationMode.POSITIVE:
        for party_id, path_parameters, bodies in _deep(world).get(label, []):
            case = st.builds(
                lambda body, pp=path_parameters: operation.Case(
                    path_parameters=pp, body=body, media_type="application/json"
                ),
                bodies,
            )
            branches.append(st.tuples(st.just(party_id), case))
        for party_id, path_parameters, queries in _deep_queries(world).get(label, []):
            case = st.builds(lambda query, pp=path_parameters: operation.Case(path_parameters=pp, query=query), queries)
            branches.append(st.tuples(st.just(party_id), case))
    return st.one_of(branches)


def _fuzz(operation: Any, world: World, label: str, mode: GenerationMode) -> set[int]:
    """Run one generation mode; the status codes seen."""
    secured = _requires_token(label)
    seen: set[int] = set()

    @SETTINGS
    @given(drawn=_strategy(operation, world, label, mode))
    def run(drawn: tuple[str, Any]) -> None:
        party_id, case = drawn
        headers = world.parties[party_id].headers if secured else None
        response = case.call_and_validate(headers=headers)
        seen.add(response.status_code)

    run()
    return seen


# All operations share the seeded world: those that only read go first, those that end what they touch
# (close the breach, lift the restriction, end the case, erase the pupil) last.
DESTRUCTIVE = ("/close", "/restrictions/{restriction_id}", "/endings", "/erasures")


def _order(label: str) -> tuple[int, int]:
    method, path = label.split(" ", 1)
    rank = 0 if method == "GET" else 2 if path.endswith(DESTRUCTIVE) else 1
    return rank, OPERATIONS.index(label)


IN_ORDER: list[str] = sorted(OPERATIONS, key=_order)


@pytest.mark.parametrize("label", IN_ORDER)
def test_operation_conforms(world: World, label: str) -> None:
    """Every answer to generated requests, valid ones and then invalid ones, is documented; no 5xx."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", world.app, config=CONFIG)
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if _negatable(label) else [])
    for mode in modes:
        seen = _fuzz(operation, world, label, mode)
        print(f"{label} ({mode.value} data): answered {sorted(seen)}")
        assert seen and max(seen) < 500, (label, mode.value, sorted(seen))


# -- authentication everywhere -----------------------------------------------------------------------


def _forged_token(party: Party, now: dt.datetime) -> str:
    """A well-formed access token with the right claims, signed by a key the broker does not know."""
    claims = {
        "iss": "convenant-broker",
        "sub": party.client_id,
        "aud": "convenant-broker-api",
        "party": party.party_id,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 600,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt"}, claims, ECKey.generate_key("P-256"), algorithms=["ES256"])


BAD_TOKENS: dict[str, Callable[[Party, LiveClock], dict[str, str]]] = {
    "none": lambda party, clock: {},
    "empty": lambda party, clock: {"Authorization": "Bearer "},
    "basic": lambda party, clock: {"Authorization": "Basic " + base64.b64encode(b"rbl:geheim").decode()},
    "garbage": lambda party, clock: {"Authorization": "Bearer dit-is-geen-token"},
    "forged": lambda party, clock: {"Authorization": f"Bearer {_forged_token(party, clock.now)}"},
    "expired": lambda party, clock: party.headers,  # taken now, presented two hours later
}
SECURED = [label for label in OPERATIONS if _requires_token(label)]


def _header(response: Any, name: str) -> str:
    values = {key.lower(): value for key, value in response.headers.items()}.get(name.lower(), [""])
    return str(values[0])


def _placeholder(parameter: dict[str, Any]) -> Any:
    return 0 if parameter.get("schema", {}).get("type") == "integer" else CONVENANT


@pytest.fixture
def two_hours_later(world: World) -> Iterator[None]:
    world.clock.offset = dt.timedelta(hours=2)
    yield
    world.clock.offset = dt.timedelta()


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_operation_refuses_without_a_valid_token(world: World, request: pytest.FixtureRequest, kind: str) -> None:
    """Every operation that declares bearerAuth answers 401 problem+json with a Bearer challenge,
    as documented, to a request without a (valid) token: before it looks at the path or the body."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", world.app, config=CONFIG)
    headers = BAD_TOKENS[kind](world.parties["rbl-midden-gelre"], world.clock)
    if kind == "expired":
        request.getfixturevalue("two_hours_later")
    assert len(SECURED) >= 20, SECURED
    for label in SECURED:
        method, path = label.split(" ", 1)
        operation = schema[path][method]
        parameters = SPEC["paths"][path].get("parameters", []) + _operation(label).get("parameters", [])
        path_parameters = {p["name"]: _placeholder(p) for p in parameters if p["in"] == "path"}
        body: Any = {} if "requestBody" in _operation(label) else NOT_SET
        case = operation.Case(path_parameters=path_parameters, body=body, media_type="application/json")
        response = case.call(headers=headers)
        assert response.status_code == 401, (label, kind, response.status_code, response.text[:300])
        assert _header(response, "Content-Type").startswith(PROBLEM_JSON), (label, response.headers)
        assert _header(response, "WWW-Authenticate").startswith("Bearer"), (label, response.headers)
        case.validate_response(
            response,
            checks=[
                openapi_checks.status_code_conformance,
                openapi_checks.content_type_conformance,
                openapi_checks.response_schema_conformance,
                openapi_checks.response_headers_conformance,
            ],
        )


def test_every_operation_is_fuzzed() -> None:
    """The fuzzing covers what the spec lists, and the spec lists the whole API."""
    assert len(OPERATIONS) >= 28, OPERATIONS
    for path in ("/oauth/token", "/api/v1/convenants/{convenant_id}/submissions", "/api/v1/breaches"):
        assert path in SPEC["paths"], path
    assert not any("bsn" in path.lower() for path in SPEC["paths"]), "no BSN in any URL"
    for label in OPERATIONS:
        documented = _operation(label)["responses"]
        assert "default" not in documented, f"{label}: a catch-all response hides undocumented statuses"
        assert any(status.startswith("2") for status in documented), f"{label}: no success response"
