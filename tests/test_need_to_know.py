"""Need-to-know, walked over every operation of /openapi.json and every review form.

The world: the RBL sent pupil HELD (Duiven) to De Liemers, which fetched it, and pupil OWN (Arnhem)
to Passend Wijs. Passend Wijs never held HELD; nobody ever held UNUSED. Whatever Passend Wijs asks
about HELD must be answered exactly as what it asks about UNUSED: same status, same body once the
ids and times that differ between any two calls are masked. A holder asking the same is answered
differently (or causes what the operation is for), which shows each probe really names the child.

Every operation of the spec and every review form is classified here, so a new one fails the walk
until it is: either it takes a child (a BSN, a pseudonym, a subject, a scope or an id of something
about a child) and is probed, or it is listed with the reason it takes none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fixtures.app import Clock
from fixtures.officers import csrf_from
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record

from broker.app import runtime, timefmt

HELD, OWN, UNUSED = 1, 2, 90
NOBODYS_ID = "00000000-0000-4000-8000-000000000000"
PREFIX = f"/api/v1/convenants/{CONVENANT}"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX = re.compile(r"\b[0-9a-f]{32,64}\b")
# Values that differ between any two calls, whatever they name: counters of the growing log, numbers
# of new breaches, receipts, CSRF tokens.
VOLATILE = ("audit_tree_size", "number", "receipt", "index", "total")
# The same in pages: the integrity banner's log size and root, breach numbers, the action filter's
# list of names in the log (the walk's own review entries add to it).
PAGE_VOLATILE = [
    (re.compile(r'name="csrf_token" value="[^"]+"'), ""),
    (re.compile(r"<strong>\d+</strong> entries"), "# entries"),
    (re.compile(r'root <code title="[^"]*">[0-9a-f]+…</code>'), "root #"),
    (re.compile(r"Datalek \d+|eerste \d+ entries"), "#"),
    (re.compile(r'\s*<option value="review\.[a-z_]+" ?>review\.[a-z_]+</option>\s*'), ""),
]


@dataclass
class World:
    app: Any
    clock: Clock
    rbl: Party
    liemers: Party
    passend_wijs: Party
    deliveries: dict[str, str]  # recipient -> delivery id of the RBL's submission

    def pseudonym(self, n: int) -> str:
        with self.app.app_context():
            return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(make_bsn(n))


@pytest.fixture
def world(app: Any, clock: Clock, rbl: Party, liemers: Party, passend_wijs: Party) -> World:
    response = rbl.submit([make_record(HELD, gemeente="Duiven"), make_record(OWN, gemeente="Arnhem")])
    assert response.status_code == 201, response.json
    deliveries = {d["recipient"]: d["delivery_id"] for d in response.json["deliveries"]}
    assert liemers.get(f"/api/v1/deliveries/{deliveries['swv-de-liemers']}").status_code == 200
    return World(app, clock, rbl, liemers, passend_wijs, deliveries)


def masked(value: Any) -> Any:
    """The answer with what differs between any two calls masked: ids, hashes, volatile counters."""
    if isinstance(value, dict):
        return {k: "#" if k in VOLATILE else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return HEX.sub("#", UUID.sub("#", value))
    return value


def answer(response: Any) -> tuple[int, Any]:
    """A response as compared: its status and its masked body (JSON, or text)."""
    text = response.get_data(as_text=True)
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
        for pattern, replacement in PAGE_VOLATILE:
            body = pattern.sub(replacement, body)
    return response.status_code, masked(body)


# -- the API operations -----------------------------------------------------------------------------

Probe = Callable[[World, Party, int], Any]


def _breach(world: World, party: Party, n: int) -> Any:
    body = {
        "convenant_id": CONVENANT,
        "detected_at": world.clock.now.isoformat(),
        "description": "Een export is naar een verkeerd adres gestuurd.",
        "suspected_cause": "Een verkeerde ontvanger gekozen.",
        "scope": {"subjects": [make_bsn(n)]},
    }
    return party.post("/api/v1/breaches", json=body)


def _subject_request(world: World, party: Party, n: int) -> Any:
    body = {"bsn": make_bsn(n), "kind": "inzage", "received_at": world.clock.now.isoformat()}
    return party.post(f"{PREFIX}/subject-requests", json=body)


def _restriction(world: World, party: Party, n: int) -> Any:
    return party.post(f"{PREFIX}/restrictions", json={"bsn": make_bsn(n), "reason": "bezwaar van de ouders"})


def _lift(world: World, party: Party, n: int) -> Any:
    """Lift the holder's restriction of the pupil (or, for a pupil nobody restricted, an id nobody has)."""
    restriction_id = NOBODYS_ID
    if n == HELD:
        created = _restriction(world, world.liemers, HELD)
        assert created.status_code in (200, 201), created.json
        restriction_id = created.json["restriction_id"]
    return party.http.delete(f"{PREFIX}/restrictions/{restriction_id}", headers=party.headers)


def _erasure(world: World, party: Party, n: int) -> Any:
    return party.post(f"{PREFIX}/erasures", json={"bsn": make_bsn(n), "reason": "verzoek van de ouders"})


def _ending(world: World, party: Party, n: int) -> Any:
    return party.post(f"{PREFIX}/endings", json={"bsn": make_bsn(n), "reason": "teruggekeerd_naar_onderwijs"})


def _correction(world: World, party: Party, n: int) -> Any:
    return party.post(f"{PREFIX}/corrections", json={"records": [make_record(n, gemeente="Duiven", voornaam="Sem")]})


def _submission(world: World, party: Party, n: int) -> Any:
    return party.submit([make_record(n, gemeente="Duiven")])


def _entries(world: World, party: Party, n: int) -> Any:
    return party.get("/api/v1/audit/entries", query_string={"data_subject_id": world.pseudonym(n)})


def _delivery_of(world: World, n: int) -> str:
    return world.deliveries["swv-de-liemers"] if n == HELD else NOBODYS_ID


def _delivery(world: World, party: Party, n: int) -> Any:
    return party.get(f"/api/v1/deliveries/{_delivery_of(world, n)}")


def _ack(world: World, party: Party, n: int) -> Any:
    return party.post(f"/api/v1/deliveries/{_delivery_of(world, n)}/ack")


def _breach_of(world: World, n: int) -> str:
    """A breach De Liemers reported about the pupil (for HELD), or an id nobody has."""
    if n != HELD:
        return NOBODYS_ID
    created = _breach(world, world.liemers, HELD)
    assert created.status_code == 201, created.json
    return str(created.json["id"])


def _breach_step(step: str, body: dict[str, Any] | None = None, method: str = "post") -> Probe:
    def probe(world: World, party: Party, n: int) -> Any:
        path = f"/api/v1/breaches/{_breach_of(world, n)}{step}"
        if method == "get":
            return party.get(path)
        call = party.http.patch if method == "patch" else party.http.post
        return call(path, json=body or {}, headers=party.headers)

    return probe


@dataclass(frozen=True)
class Operation:
    probe: Probe
    holder: str | None  # the party that holds the pupil and is answered differently; None: nobody is
    # What the holder's call does that the stranger's does not (when its answer is the same by design).
    effect: Callable[[World], bool] | None = None


def _forwarded(world: World) -> bool:
    with world.app.app_context():
        from sqlalchemy import select

        from broker.app.extensions import db
        from broker.models import Delivery

        return bool(db.session.scalars(select(Delivery).where(Delivery.kind == "subject_request")).all())


TAKES_A_CHILD: dict[tuple[str, str], Operation] = {
    ("post", "/api/v1/breaches"): Operation(_breach, "liemers"),
    ("post", "/api/v1/convenants/{convenant_id}/subject-requests"): Operation(_subject_request, None, _forwarded),
    ("post", "/api/v1/convenants/{convenant_id}/restrictions"): Operation(_restriction, "liemers"),
    ("delete", "/api/v1/convenants/{convenant_id}/restrictions/{restriction_id}"): Operation(_lift, "liemers"),
    ("post", "/api/v1/convenants/{convenant_id}/erasures"): Operation(_erasure, "liemers"),
    ("post", "/api/v1/convenants/{convenant_id}/endings"): Operation(_ending, "liemers"),
    ("post", "/api/v1/convenants/{convenant_id}/corrections"): Operation(_correction, "rbl"),
    # Submitting a child is naming it; what the answer says must not depend on anyone else's data.
    ("post", "/api/v1/convenants/{convenant_id}/submissions"): Operation(_submission, None),
    ("get", "/api/v1/audit/entries"): Operation(_entries, "liemers"),
    ("get", "/api/v1/deliveries/{delivery_id}"): Operation(_delivery, "liemers"),
    ("post", "/api/v1/deliveries/{delivery_id}/ack"): Operation(_ack, "liemers"),
    ("get", "/api/v1/breaches/{breach_id}"): Operation(_breach_step("", method="get"), "liemers"),
    ("post", "/api/v1/breaches/{breach_id}/acknowledgements"): Operation(_breach_step("/acknowledgements"), "rbl"),
    ("post", "/api/v1/breaches/{breach_id}/ap-decisions"): Operation(
        _breach_step("/ap-decisions", {"reported_to_ap": False, "reasoning": "Geen risico voor betrokkenen."}),
        "liemers",
    ),
    ("patch", "/api/v1/breaches/{breach_id}/impact"): Operation(
        _breach_step("/impact", {"reason": "Nageteld.", "data_subjects": 1}, "patch"), "liemers"
    ),
    ("post", "/api/v1/breaches/{breach_id}/close"): Operation(
        _breach_step("/close", {"measures": "Adresboek opgeschoond."}), "liemers"
    ),
}
# Operations that name no child, with why.
TAKES_NO_CHILD = {
    ("post", "/oauth/token"): "a client's own credentials",
    ("get", "/api/v1/convenants"): "the convenant definitions",
    ("get", "/api/v1/convenants/{convenant_id}"): "one convenant definition",
    ("get", "/api/v1/deliveries"): "the caller's own deliveries only",
    ("get", "/api/v1/audit/checkpoint"): "the signed tree head: sizes and hashes",
    ("get", "/api/v1/audit/key"): "the verifier key",
    ("get", "/api/v1/audit/entries/{index}/proof"): "hashes of the tree, no entry",
    ("get", "/api/v1/audit/consistency"): "hashes of the tree",
    ("get", "/api/v1/register"): "the register of processing activities",
    ("get", "/api/v1/convenants/{convenant_id}/quarters/{quarter}"): "list versions and counts of the caller",
    ("get", "/api/v1/convenants/{convenant_id}/quarters/{quarter}/match"): "the caller's own view of a match",
    ("get", "/api/v1/convenants/{convenant_id}/quarters/{quarter}/counts"): "the caller's own list, counted",
    ("get", "/api/v1/breaches"): "the breaches the caller reported or is affected by",
}


def spec_operations(client: Any) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").json
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_every_operation_is_walked(client: Any) -> None:
    """Every operation of /openapi.json is either probed below or listed as naming no child."""
    assert spec_operations(client) == set(TAKES_A_CHILD) | set(TAKES_NO_CHILD)
    assert not set(TAKES_A_CHILD) & set(TAKES_NO_CHILD)


@pytest.mark.parametrize("operation", sorted(TAKES_A_CHILD), ids=lambda op: f"{op[0].upper()} {op[1]}")
def test_a_stranger_is_answered_as_for_a_bsn_nobody_holds(world: World, operation: tuple[str, str]) -> None:
    """Passend Wijs asking about a pupil others hold gets the answer for an unused BSN; a holder does not."""
    spec = TAKES_A_CHILD[operation]
    stranger = answer(spec.probe(world, world.passend_wijs, HELD))
    nobody = answer(spec.probe(world, world.passend_wijs, UNUSED))
    assert stranger == nobody
    if spec.effect is not None:
        assert not spec.effect(world)
    holder = getattr(world, spec.holder) if spec.holder else world.liemers
    held = answer(spec.probe(world, holder, HELD))
    if spec.holder:
        assert held != answer(spec.probe(world, holder, UNUSED))
    if spec.effect is not None:
        assert spec.effect(world)
    assert held[0] < 500


# -- the review forms -------------------------------------------------------------------------------


def _form(http: Any, path: str, data: dict[str, str], page: str = "/review/inzage") -> Any:
    token = csrf_from(http.get(page).get_data(as_text=True))
    return http.post(path, data={**data, "csrf_token": token}, follow_redirects=True)


FormProbe = Callable[[World, Any, int], Any]


def _inzage(output: str) -> FormProbe:
    def probe(world: World, http: Any, n: int) -> Any:
        return _form(http, "/review/inzage", {"bsn": make_bsn(n), "formaat": output})

    return probe


def _action(path: str, **extra: str) -> FormProbe:
    def probe(world: World, http: Any, n: int) -> Any:
        form = {"convenant": CONVENANT, "pseudoniem": world.pseudonym(n), "reden": "verzoek", **extra}
        return _form(http, path, form)

    return probe


def _lift_form(world: World, http: Any, n: int) -> Any:
    restriction_id = NOBODYS_ID
    if n == HELD:
        created = _restriction(world, world.liemers, HELD)
        assert created.status_code in (200, 201), created.json
        restriction_id = created.json["restriction_id"]
    return _form(http, "/review/inzage/opheffen", {"beperking": restriction_id})


def _lookup(world: World, http: Any, n: int) -> Any:
    """Filter the log on the pupil, then read the page and the CSV export."""
    page = _form(http, "/review/betrokkene", {"bsn": make_bsn(n)}, page="/review/")
    export = http.get("/review/export.csv")
    http.post("/review/betrokkene/wissen", data={"csrf_token": csrf_from(http.get("/review/").get_data(as_text=True))})
    return _Both(page, export)


@dataclass
class _Both:
    page: Any
    export: Any

    @property
    def status_code(self) -> int:
        return int(self.page.status_code)

    def get_data(self, as_text: bool = True) -> str:
        return str(self.page.get_data(as_text=True)) + "\n----\n" + str(self.export.get_data(as_text=True))


def _breach_form(world: World, http: Any, n: int) -> Any:
    form = {
        "convenant": CONVENANT,
        "detected_at": world.clock.now.astimezone(timefmt.AMSTERDAM).strftime("%Y-%m-%dT%H:%M"),
        "description": "Een lijst is naar een verkeerd adres gemaild.",
        "suspected_cause": "Verkeerde ontvanger gekozen.",
        "submissions": "",
        "deliveries": "",
        "window_from": "",
        "window_to": "",
        "bsns": make_bsn(n),
    }
    return _form(http, "/review/datalekken/nieuw", form, page="/review/datalekken/nieuw")


@dataclass(frozen=True)
class Form:
    probe: FormProbe
    holder: str | None  # the holder's officer's party, answered differently


TAKES_A_CHILD_FORM: dict[str, Form] = {
    "/review/inzage": Form(_inzage("html"), "swv-de-liemers"),
    "/review/inzage#csv": Form(_inzage("csv"), "swv-de-liemers"),
    "/review/inzage/beperken": Form(_action("/review/inzage/beperken"), "swv-de-liemers"),
    "/review/inzage/wissen": Form(_action("/review/inzage/wissen", bevestig="ja"), "swv-de-liemers"),
    "/review/inzage/opheffen": Form(_lift_form, "swv-de-liemers"),
    "/review/betrokkene": Form(_lookup, "swv-de-liemers"),
    "/review/datalekken/nieuw": Form(_breach_form, "swv-de-liemers"),
}
TAKES_NO_CHILD_FORM = {
    "/review/login": "the officer's own credentials",
    "/review/logout": "the officer's own session",
    "/review/wachtwoord": "the officer's own password",
    "/review/betrokkene/wissen": "clears the officer's own filter",
    "/review/controle": "verifies the whole log: counts and hashes",
    # Steps on one breach take its id; the breach API probes above show another party's breach is
    # answered as one that does not exist, and these forms go through the same service lookup.
    "/review/datalekken/<breach_id>/bevestigen": "a breach id (see the API probes)",
    "/review/datalekken/<breach_id>/besluit-ap": "a breach id (see the API probes)",
    "/review/datalekken/<breach_id>/impact": "a breach id (see the API probes)",
    "/review/datalekken/<breach_id>/opschorten": "a breach id; broker officers only",
    "/review/datalekken/<breach_id>/sluiten": "a breach id (see the API probes)",
}


def test_every_review_form_is_walked(app: Any) -> None:
    """Every review route that takes a POST is either probed below or listed as naming no child."""
    posted = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/review") and "POST" in r.methods}
    probed = {path.partition("#")[0] for path in TAKES_A_CHILD_FORM}
    assert posted == probed | set(TAKES_NO_CHILD_FORM)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Review cookies over plain http, as the test client speaks."""
    return {**app_config, "SESSION_COOKIE_SECURE": False}


@pytest.mark.parametrize("form", sorted(TAKES_A_CHILD_FORM))
def test_a_strangers_officer_is_answered_as_for_a_bsn_nobody_holds(
    world: World, make_officer: Any, officer_client: Any, form: str
) -> None:
    """Passend Wijs' officer asking about a pupil others hold gets the page for an unused BSN; De Liemers'
    officer does not."""
    spec = TAKES_A_CHILD_FORM[form]
    stranger = officer_client(make_officer("pw-po", party="swv-passend-wijs"))
    assert answer(spec.probe(world, stranger, HELD)) == answer(spec.probe(world, stranger, UNUSED))
    assert spec.holder is not None
    holder = officer_client(make_officer("holder-po", party=spec.holder))
    held = answer(spec.probe(world, holder, HELD))
    assert held != answer(spec.probe(world, holder, UNUSED))
    assert held[0] < 500
