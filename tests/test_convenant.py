"""The convenant as data: the demo definition, the loader's refusals, the API that serves it, and a
second, different convenant that works without any code change."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from fixtures.convenants import SECOND_CONVENANT, SECOND_CONVENANT_TOML, make_vsv_record
from fixtures.records import CONVENANT, make_bsn, make_record

from schemas.convenant import ConvenantError
from schemas.convenant_file import DEFAULT_DIR, load_convenant, load_convenants, parse_convenant

DEMO_FILE = DEFAULT_DIR / f"{CONVENANT}.toml"
RBL_WERKGEBIED = {
    "Arnhem",
    "Duiven",
    "Lingewaard",
    "Overbetuwe",
    "Renkum",
    "Rheden",
    "Rozendaal",
    "Westervoort",
    "Zevenaar",
}
NAW = ("voornaam", "achternaam", "geboortedatum", "adres")
BSN_REASON = "Om identiteit vast te kunnen stellen zonder risico onjuiste identificatie."
NAW_REASON = "Om de betrokken gemeente vast te stellen en om de jongere en ouder(s)/verzorger(s) te benaderen."
SCHOOL_REASON = "Om vast te stellen of er nog sprake is van zorgplicht."
BETROKKEN_REASON = "Om vast te stellen of RBL dan wel SWV betrokken zijn en op welke wijze."

# Bijlage 1 (Tabel Gegevensuitwisseling): per category, each item with its fields and reason.
BIJLAGE_1: dict[str, list[tuple[str, tuple[str, ...], str]]] = {
    "absoluut_verzuim": [
        ("BSN", ("bsn",), BSN_REASON),
        ("NAW-gegevens", NAW, NAW_REASON),
        (
            "Startdatum verzuim",
            ("startdatum_verzuim",),
            "Om vast te stellen wanneer absoluut verzuim is geconstateerd.",
        ),
        ("Naam laatst bekende school", ("laatst_bekende_school",), SCHOOL_REASON),
        (
            "Betrokkenheid RBL/ SWV",
            ("betrokkenheid", "betrokkenheid_toelichting"),
            BETROKKEN_REASON,
        ),
    ],
    "langdurig_verzuim": [
        ("BSN", ("bsn",), BSN_REASON),
        ("NAW-gegevens", NAW, NAW_REASON),
        ("Laatst bekende school", ("laatst_bekende_school",), SCHOOL_REASON),
        (
            "Startdatum verzuim",
            ("startdatum_verzuim",),
            "Om vast te stellen wanneer langdurig is gemeld door school.",
        ),
        (
            "(Vermoedelijke) reden voor verzuim",
            ("reden_verzuim",),
            "Om te weten of de jongere in beeld is en die de (juiste) ondersteuning ontvangt.",
        ),
        (
            "Betrokkenheid RBL/ SWV",
            ("betrokkenheid", "betrokkenheid_toelichting"),
            BETROKKEN_REASON,
        ),
    ],
    "vrijstelling_5a": [
        ("BSN", ("bsn",), BSN_REASON),
        ("NAW-gegevens", NAW, NAW_REASON),
        ("Naam laatst bekende school", ("laatst_bekende_school",), SCHOOL_REASON),
        (
            "Datum toekenning vrijstelling",
            ("datum_toekenning_vrijstelling",),
            "Om vast te stellen wanneer een jongere onder de doelgroep van thuiszitter valt.",
        ),
        (
            "Duur vrijstelling",
            ("einddatum_vrijstelling",),
            "Om in beeld te brengen wanneer een jongere weer (gedeeltelijk) deelneemt aan het "
            "onderwijs "
            "en een ondersteuningsvraag kan hebben.",
        ),
    ],
}


@pytest.fixture(scope="module")
def demo() -> Any:
    return load_convenant(DEMO_FILE)


def demo_data() -> dict[str, Any]:
    return tomllib.loads(DEMO_FILE.read_text(encoding="utf-8"))


# -- the demo convenant ----------------------------------------------------------------------------


def test_demo_has_the_four_parties_with_their_roles(demo: Any) -> None:
    """The demo convenant names exactly the RBL and the three SWVs, each with its role."""
    assert demo.id == CONVENANT
    assert {p.id: p.role for p in demo.parties} == {
        "rbl-midden-gelre": "rbl",
        "swv-passend-wijs": "swv",
        "swv-de-verbinding": "swv",
        "swv-de-liemers": "swv",
    }
    assert all(p.name for p in demo.parties)


def test_rbl_werkgebied_is_exactly_the_nine_gemeenten(demo: Any) -> None:
    """The RBL werkgebied is exactly the nine gemeenten of Midden-Gelre, each once."""
    rbl = demo.party("rbl-midden-gelre")
    assert sorted(rbl.werkgebied) == sorted(RBL_WERKGEBIED)
    assert len(rbl.werkgebied) == 9
    assert demo.werkgebied == RBL_WERKGEBIED


def test_swv_werkgebieden_partition_the_rbl_werkgebied(demo: Any) -> None:
    """Every gemeente of the RBL belongs to exactly one SWV."""
    swvs = [p for p in demo.parties if p.role == "swv"]
    seen: list[str] = [g for p in swvs for g in p.werkgebied]
    assert len(seen) == len(set(seen)), "an SWV werkgebied overlaps another"
    assert set(seen) == RBL_WERKGEBIED


@pytest.mark.parametrize("category", sorted(BIJLAGE_1))
def test_category_has_exactly_the_bijlage_1_items(demo: Any, category: str) -> None:
    """Each category lists exactly the items of Bijlage 1, with their fields and reason texts."""
    actual = [(i.item, i.fields, i.reason) for i in demo.categories[category].items]
    assert actual == BIJLAGE_1[category]


def test_there_are_exactly_three_categories(demo: Any) -> None:
    """The convenant knows absoluut verzuim, langdurig verzuim and vrijstelling 5a, nothing else."""
    assert set(demo.categories) == set(BIJLAGE_1)


def test_address_has_the_five_parts(demo: Any) -> None:
    """The adres object holds straat, huisnummer, postcode, woonplaats and gemeente."""
    assert [f.name for f in demo.fields["adres"].fields] == [
        "straat",
        "huisnummer",
        "postcode",
        "woonplaats",
        "gemeente",
    ]


@pytest.mark.parametrize(
    ("category", "providers"),
    [
        ("absoluut_verzuim", {"rbl-midden-gelre"}),  # footnote 3
        ("vrijstelling_5a", {"rbl-midden-gelre"}),  # footnote 5
        (
            "langdurig_verzuim",
            {"rbl-midden-gelre", "swv-passend-wijs", "swv-de-verbinding", "swv-de-liemers"},
        ),
    ],
)
def test_who_may_provide_each_category(demo: Any, category: str, providers: set[str]) -> None:
    """Footnotes 3 and 5: absoluut verzuim and vrijstelling only by RBL; langdurig by all."""
    assert {p.id for p in demo.parties if category in p.provides} == providers


def test_ending_reasons_a_to_d(demo: Any) -> None:
    """The four ending reasons a-d are in the definition, in order, each with its text."""
    assert [(r.code, r.id) for r in demo.ending_reasons] == [
        ("a", "teruggekeerd_naar_onderwijs"),
        ("b", "startkwalificatie_behaald"),
        ("c", "niet_langer_in_werkgebied"),
        ("d", "overleden"),
    ]
    assert "startkwalificatie" in demo.ending_reasons[1].text
    assert "overleden" in demo.ending_reasons[3].text


def test_legal_basis_purposes_and_routing(demo: Any) -> None:
    """Legal basis AVG 6(1)(e), purposes, and routing rbl->swv / swv->rbl come from the file."""
    assert demo.raw["legal_basis"]["article"] == "AVG art. 6 lid 1 sub e"
    assert len(demo.raw["purposes"]) >= 1
    assert {(r.from_role, r.to_role) for r in demo.routing} == {("rbl", "swv"), ("swv", "rbl")}
    assert demo.digest.startswith("sha256:")


def test_load_convenants_reads_the_default_directory() -> None:
    """The default directory holds the demo convenant, keyed by its id."""
    assert CONVENANT in load_convenants()


# -- malformed definitions -------------------------------------------------------------------------


def _drop(data: dict[str, Any], *path: str) -> None:
    target = data
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


def _mutate_unknown_type(d: dict[str, Any]) -> None:
    d["fields"]["voornaam"]["type"] = "integer"


def _mutate_undefined_field(d: dict[str, Any]) -> None:
    d["categories"]["absoluut_verzuim"]["items"][0]["fields"] = ["burgerservicenummer"]


def _mutate_optional_outside_items(d: dict[str, Any]) -> None:
    d["categories"]["vrijstelling_5a"]["optional"] = ["reden_verzuim"]


def _mutate_age_reference(d: dict[str, Any]) -> None:
    d["categories"]["vrijstelling_5a"]["age_reference"] = "startdatum_verzuim"


def _mutate_provides_unknown(d: dict[str, Any]) -> None:
    d["parties"][1]["provides"] = ["langdurig_verzuim", "relatief_verzuim"]


def _mutate_duplicate_party(d: dict[str, Any]) -> None:
    d["parties"][2]["id"] = d["parties"][1]["id"]


def _mutate_enum_without_choices(d: dict[str, Any]) -> None:
    d["fields"]["betrokkenheid"]["choices"] = []


def _mutate_object_without_fields(d: dict[str, Any]) -> None:
    del d["fields"]["adres"]["fields"]


def _mutate_category_without_items(d: dict[str, Any]) -> None:
    d["categories"]["langdurig_verzuim"]["items"] = []


MALFORMED = {
    "missing id": lambda d: _drop(d, "id"),
    "missing version": lambda d: _drop(d, "version"),
    "missing fields": lambda d: _drop(d, "fields"),
    "missing categories": lambda d: _drop(d, "categories"),
    "missing parties": lambda d: _drop(d, "parties"),
    "missing subject_id_field": lambda d: _drop(d, "subject_id_field"),
    "party without name": lambda d: _drop(d["parties"][0], "name"),
    "unknown field type": _mutate_unknown_type,
    "item names undefined field": _mutate_undefined_field,
    "optional field not in items": _mutate_optional_outside_items,
    "age_reference not in items": _mutate_age_reference,
    "party provides unknown category": _mutate_provides_unknown,
    "duplicate party id": _mutate_duplicate_party,
    "enum without choices": _mutate_enum_without_choices,
    "object without fields": _mutate_object_without_fields,
    "category without items": _mutate_category_without_items,
}


@pytest.mark.parametrize("mutate", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_definition_raises_convenant_error(mutate: Any) -> None:
    """A definition that breaks a structural rule is refused with ConvenantError."""
    data = demo_data()
    mutate(data)
    with pytest.raises(ConvenantError):
        parse_convenant(data)


def _mutate_subject_field_undefined(d: dict[str, Any]) -> None:
    d["subject_id_field"] = "burgerservicenummer"


def _mutate_gemeente_field_undefined(d: dict[str, Any]) -> None:
    d["gemeente_field"] = "woonadres.gemeente"


def _mutate_werkgebied_string(d: dict[str, Any]) -> None:
    d["parties"][3]["werkgebied"] = "Duiven"


def _mutate_bad_pattern(d: dict[str, Any]) -> None:
    d["fields"]["adres"]["fields"]["huisnummer"]["pattern"] = "^[1-9"


def _mutate_after_undefined(d: dict[str, Any]) -> None:
    d["fields"]["einddatum_vrijstelling"]["after"] = "datum_ingang"


def _loose(id_: str, mutate: Any, consequence: str) -> Any:
    """A definition with a dangling reference; left unchecked, {consequence} would follow."""
    return pytest.param(mutate, id=id_)


LOOSE = [
    _loose(
        "subject_id_field names no field",
        _mutate_subject_field_undefined,
        "the first submission then fails with KeyError (500) in exchange/submission.py",
    ),
    _loose(
        "gemeente_field names no field",
        _mutate_gemeente_field_undefined,
        "the first submission then fails with KeyError (500) in exchange/submission.py _gemeente",
    ),
    _loose(
        "werkgebied is a string, not a list",
        _mutate_werkgebied_string,
        "'Duiven' becomes the werkgebied ('D', 'u', 'i', 'v', 'e', 'n') and routing silently breaks",
    ),
    _loose(
        "pattern is not a regular expression",
        _mutate_bad_pattern,
        "re.error is raised only when the validator is first built, i.e. at the first submission",
    ),
    _loose(
        "after names no field",
        _mutate_after_undefined,
        "the date-order rule is silently dropped",
    ),
]


@pytest.mark.parametrize("mutate", LOOSE)
def test_definition_with_dangling_reference_raises_convenant_error(mutate: Any) -> None:
    """A definition whose references point nowhere is refused at load time, not at first use."""
    data = demo_data()
    mutate(data)
    with pytest.raises(ConvenantError):
        parse_convenant(data)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: _drop(d["fields"]["reden_verzuim"], "max_length"), id="text-without-max_length"),
        pytest.param(lambda d: _drop(d["fields"]["voornaam"], "max_length"), id="string-without-max_length"),
        pytest.param(lambda d: _drop(d["fields"]["adres"]["fields"]["straat"], "max_length"), id="nested-string"),
        pytest.param(lambda d: d["fields"]["voornaam"].update(max_length="100"), id="max_length-not-a-number"),
        pytest.param(lambda d: d["fields"]["voornaam"].update(max_length=0), id="max_length-zero"),
    ],
)
def test_every_text_field_needs_a_max_length(mutate: Any) -> None:
    """A string or text field without a whole, positive max_length is refused when the file is loaded,
    so no convenant can take text of any length."""
    data = demo_data()
    mutate(data)
    with pytest.raises(ConvenantError, match="max_length"):
        parse_convenant(data)


def test_every_text_field_of_the_demo_convenant_is_bounded(demo: Any) -> None:
    """Each string and text field of the demo convenant, nested ones too, has a max_length."""
    specs = [s for spec in demo.fields.values() for s in (spec, *spec.fields)]
    texts = [s for s in specs if s.type in ("string", "text")]
    assert texts and all(isinstance(s.max_length, int) and s.max_length > 0 for s in texts)


def test_toml_syntax_error_raises_convenant_error(tmp_path: Path) -> None:
    """A file that is not valid TOML is refused with ConvenantError naming the file."""
    path = tmp_path / "kapot.toml"
    path.write_text('id = "x"\n[parties\n', encoding="utf-8")
    with pytest.raises(ConvenantError, match="kapot.toml"):
        load_convenant(path)


def test_duplicate_convenant_id_in_directory_raises(tmp_path: Path) -> None:
    """Two files declaring the same convenant id are refused."""
    (tmp_path / "a.toml").write_bytes(DEMO_FILE.read_bytes())
    (tmp_path / "b.toml").write_bytes(DEMO_FILE.read_bytes())
    with pytest.raises(ConvenantError, match="duplicate convenant id"):
        load_convenants(tmp_path)


# -- the API ---------------------------------------------------------------------------------------


def test_list_convenants_needs_a_token(client: Any, problem: Any) -> None:
    """GET /api/v1/convenants without a token is 401 problem+json."""
    problem(client.get("/api/v1/convenants"), 401)


def test_list_convenants(rbl: Any, demo: Any) -> None:
    """GET /api/v1/convenants lists the demo convenant with version, title and digest."""
    response = rbl.get("/api/v1/convenants")
    assert response.status_code == 200
    assert response.json["convenants"] == [
        {"id": CONVENANT, "version": demo.version, "title": demo.title, "digest": demo.digest}
    ]


def test_get_convenant_serves_the_definition(liemers: Any, demo: Any) -> None:
    """GET /convenants/{id} serves parties, categories with reasons, fields and ending reasons."""
    response = liemers.get(f"/api/v1/convenants/{CONVENANT}")
    assert response.status_code == 200
    body = response.json
    assert body["id"] == CONVENANT
    assert body["digest"] == demo.digest
    assert {p["id"]: p["role"] for p in body["parties"]} == {p.id: p.role for p in demo.parties}
    for category, items in BIJLAGE_1.items():
        served = [(i["item"], tuple(i["fields"]), i["reason"]) for i in body["categories"][category]["items"]]
        assert served == items
    assert [r["code"] for r in body["ending_reasons"]] == ["a", "b", "c", "d"]
    assert body["legal_basis"]["article"] == "AVG art. 6 lid 1 sub e"
    assert set(body["fields"]["adres"]["fields"]) == {
        "straat",
        "huisnummer",
        "postcode",
        "woonplaats",
        "gemeente",
    }


def test_get_convenant_needs_a_token(client: Any, problem: Any) -> None:
    """GET /api/v1/convenants/{id} without a token is 401."""
    problem(client.get(f"/api/v1/convenants/{CONVENANT}"), 401)


def test_unknown_convenant_is_404_problem(rbl: Any, problem: Any) -> None:
    """An unknown convenant id is 404 problem+json."""
    problem(rbl.get("/api/v1/convenants/bestaat-niet"), 404)


# -- a second, different convenant -----------------------------------------------------------------


def test_second_convenant_file_loads() -> None:
    """The second test convenant is a valid definition with its own parties and categories."""
    second = parse_convenant(tomllib.loads(SECOND_CONVENANT_TOML))
    assert second.id == SECOND_CONVENANT
    assert {p.role for p in second.parties} == {"gemeente", "rmc"}
    assert second.categories["startkwalificatie_behaald"].field_names == (
        "burgerservicenummer",
        "geboortedatum",
        "woonadres",
        "niveau",
        "diplomadatum",
    )


def test_app_serves_both_convenants(make_multi_party: Any) -> None:
    """An app whose CONVENANT_DIR holds two files lists and serves both definitions."""
    gemeente = make_multi_party("gemeente-nijmegen")
    listed = {c["id"] for c in gemeente.get("/api/v1/convenants").json["convenants"]}
    assert listed == {CONVENANT, SECOND_CONVENANT}
    body = gemeente.get(f"/api/v1/convenants/{SECOND_CONVENANT}").json
    assert body["version"] == "7"
    assert set(body["categories"]) == {"voortijdig_schoolverlaten", "startkwalificatie_behaald"}


@pytest.mark.parametrize(
    ("sender", "gemeente", "recipients"),
    [
        ("gemeente-nijmegen", "Nijmegen", ["rmc-rijk-van-nijmegen"]),
        ("gemeente-wijchen", "beuningen", ["rmc-rijk-van-nijmegen"]),
        ("rmc-rijk-van-nijmegen", "Nijmegen", ["gemeente-nijmegen"]),
        ("rmc-rijk-van-nijmegen", "Wijchen", ["gemeente-wijchen"]),
        ("rmc-rijk-van-nijmegen", "Beuningen", ["gemeente-wijchen"]),
    ],
)
def test_second_convenant_routes_by_its_own_roles(
    make_multi_party: Any, sender: str, gemeente: str, recipients: list[str]
) -> None:
    """Records of the second convenant are routed by its own routing rules and werkgebieden."""
    party = make_multi_party(sender)
    response = party.submit([make_vsv_record(1, gemeente=gemeente)], convenant=SECOND_CONVENANT)
    assert response.status_code == 201, response.json
    assert [d["recipient"] for d in response.json["deliveries"]] == recipients


def test_second_convenant_delivery_round_trip(make_multi_party: Any) -> None:
    """The RMC receives the gemeente's record of the second convenant, field for field."""
    gemeente = make_multi_party("gemeente-nijmegen")
    rmc = make_multi_party("rmc-rijk-van-nijmegen")
    record = make_vsv_record(4, toelichting="Wacht op plaatsing bij een andere opleiding")
    assert gemeente.submit([record], convenant=SECOND_CONVENANT).status_code == 201
    [summary] = rmc.get("/api/v1/deliveries").json["deliveries"]
    assert summary["convenant_id"] == SECOND_CONVENANT
    delivered = rmc.get(f"/api/v1/deliveries/{summary['delivery_id']}").json["records"]
    assert delivered == [record]


@pytest.mark.parametrize(
    ("record", "field", "code"),
    [
        # a field of the other category of this convenant, and one only the demo convenant has
        (make_vsv_record(1, niveau="havo"), "niveau", "not_allowed"),
        (make_vsv_record(1, bsn=make_bsn(1)), "bsn", "not_allowed"),
        (
            make_vsv_record(1, woonadres={"postcode": "6511 AA", "gemeente": "Nijmegen", "straat": "Markt"}),
            "woonadres.straat",
            "not_allowed",
        ),
        # Arnhem is in the demo convenant's werkgebied, not in this one's
        (make_vsv_record(1, gemeente="Arnhem"), "woonadres.gemeente", "outside_werkgebied"),
        # this convenant's age bounds are 16 to 23, not 5 to 18
        (make_vsv_record(1, geboortedatum="2011-01-01"), "geboortedatum", "age_implausible"),
        (make_vsv_record(1, naam=None), "naam", "null"),
        (
            {k: v for k, v in make_vsv_record(1).items() if k != "uitschrijfdatum"},
            "uitschrijfdatum",
            "required",
        ),
        (make_vsv_record(1, burgerservicenummer="123456789"), "burgerservicenummer", "invalid_bsn"),
    ],
    ids=[
        "other-category-field",
        "demo-field",
        "unknown-address-part",
        "outside-werkgebied",
        "age-15",
        "null-name",
        "missing-uitschrijfdatum",
        "bad-bsn",
    ],
)
def test_second_convenant_field_rules(
    make_multi_party: Any, problem: Any, record: dict[str, Any], field: str, code: str
) -> None:
    """Validation of the second convenant follows its own fields, werkgebied and age bounds."""
    gemeente = make_multi_party("gemeente-nijmegen")
    body = problem(gemeente.submit([record], convenant=SECOND_CONVENANT), 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(0, field, code)]


def test_second_convenant_accepts_what_the_demo_would_refuse(make_multi_party: Any) -> None:
    """A 20-year-old is fine in the second convenant (16-23) though the demo's bound is 18."""
    rmc = make_multi_party("rmc-rijk-van-nijmegen")
    record = make_vsv_record(2, category="startkwalificatie_behaald", geboortedatum="2006-01-01", gemeente="Wijchen")
    response = rmc.submit([record], convenant=SECOND_CONVENANT)
    assert response.status_code == 201, response.json


def test_second_convenant_category_rights(make_multi_party: Any, problem: Any) -> None:
    """A gemeente may not provide the RMC-only category: 403 naming the record."""
    gemeente = make_multi_party("gemeente-wijchen")
    records = [
        make_vsv_record(1, gemeente="Wijchen"),
        make_vsv_record(2, category="startkwalificatie_behaald", gemeente="Wijchen"),
    ]
    body = problem(gemeente.submit(records, convenant=SECOND_CONVENANT), 403)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(1, "category", "category_not_provided")]


def test_second_convenant_csv_uses_its_own_columns(make_multi_party: Any) -> None:
    """CSV for the second convenant flattens its own object field (woonadres_*) and routes."""
    gemeente = make_multi_party("gemeente-nijmegen")
    csv_text = (
        ""
        "category,burgerservicenummer,naam,geboortedatum,woonadres_postcode,woonadres_gemeente,uitschrijfdatum\n"
        f"voortijdig_schoolverlaten,{make_bsn(7)},Noa,2008-03-01,6511aa,nijmegen,2026-10-01\n"
    )
    response = gemeente.post(
        f"/api/v1/convenants/{SECOND_CONVENANT}/submissions?kind=case",
        data=csv_text,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.json
    assert [d["recipient"] for d in response.json["deliveries"]] == ["rmc-rijk-van-nijmegen"]


def test_parties_of_one_convenant_cannot_act_in_the_other(make_multi_party: Any, problem: Any) -> None:
    """A party of one convenant gets 403 in the other, in both directions."""
    gemeente = make_multi_party("gemeente-nijmegen")
    rbl = make_multi_party("rbl-midden-gelre")
    problem(gemeente.submit([make_record(1)], convenant=CONVENANT), 403)
    problem(rbl.submit([make_vsv_record(1)], convenant=SECOND_CONVENANT), 403)
