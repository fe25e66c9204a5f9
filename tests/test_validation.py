"""Validation of records against the convenant: field rights, BSN, dates, age, postcode, werkgebied,
free-text screening, whole-list rejection and never echoing a BSN."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from fixtures.records import CONVENANT, make_bsn, make_record

from schemas.convenant_file import DEFAULT_DIR, load_convenant
from schemas.validation import RecordValidator

TODAY = dt.date(2026, 12, 1)
# 10:00 UTC is 11:00 in Amsterdam: the same calendar day as TODAY.
PINNED_NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
SUBMIT = f"/api/v1/convenants/{CONVENANT}/submissions"


@pytest.fixture(scope="module")
def validator() -> RecordValidator:
    return RecordValidator(load_convenant(DEFAULT_DIR / f"{CONVENANT}.toml"))


def check(validator: RecordValidator, record: Any, today: dt.date = TODAY) -> list[tuple[int, str, str]]:
    _valid, violations = validator.validate([record], today)
    return [(v.record, v.field, v.code) for v in violations]


def with_address(n: int = 1, **parts: Any) -> dict[str, Any]:
    record = make_record(n)
    record["adres"].update(parts)
    return record


def without(record: dict[str, Any], *names: str) -> dict[str, Any]:
    record = copy.deepcopy(record)
    for name in names:
        if "." in name:
            parent, child = name.split(".")
            del record[parent][child]
        else:
            del record[name]
    return record


def login(party: Any, clock: Any) -> None:
    """Get a token with an assertion dated by the app's (pinned) clock, not the wall clock."""
    now = int(clock.now.timestamp())
    response = party.request_token(party.assertion(iat=now, exp=now + 120))
    assert response.status_code == 200, response.json
    party._token = response.json["access_token"]


@pytest.fixture
def pinned(clock: Any) -> Any:
    """Pin the app's clock to PINNED_NOW so "today" is TODAY."""
    clock.now = PINNED_NOW
    return clock


def assert_no_bsn(response: Any, *values: Any) -> None:
    body = response.get_data(as_text=True)
    for value in values:
        assert str(value) not in body, f"the response echoes {value!r}"


# -- field rights per category ---------------------------------------------------------------------

NOT_ALLOWED = [
    pytest.param(
        make_record(1, "absoluut_verzuim", reden_verzuim="wacht op plaatsing"),
        "reden_verzuim",
        id="reden-on-absoluut",
    ),
    pytest.param(
        make_record(1, "vrijstelling_5a", startdatum_verzuim="2026-09-01"),
        "startdatum_verzuim",
        id="startdatum-on-vrijstelling",
    ),
    pytest.param(
        make_record(1, "vrijstelling_5a", betrokkenheid="rbl"),
        "betrokkenheid",
        id="betrokkenheid-on-vrijstelling",
    ),
    pytest.param(
        make_record(1, "langdurig_verzuim", datum_toekenning_vrijstelling="2026-02-01"),
        "datum_toekenning_vrijstelling",
        id="toekenning-on-langdurig",
    ),
    pytest.param(make_record(1, diagnose="onbekend"), "diagnose", id="invented-field"),
    # Names are case-sensitive; one that is no plain identifier is named by its position (the 11th key).
    pytest.param(make_record(1, BSN=make_bsn(1)), "veld 11", id="field-names-are-case-sensitive"),
    pytest.param(with_address(1, diagnose="onbekend"), "adres.diagnose", id="unknown-address-part"),
]


@pytest.mark.parametrize(("record", "field"), NOT_ALLOWED)
def test_field_not_allowed_for_category(validator: RecordValidator, record: dict[str, Any], field: str) -> None:
    """A field the category does not allow is an error naming it with code not_allowed."""
    assert check(validator, record) == [(0, field, "not_allowed")]


def test_unknown_keys_that_are_no_plain_identifier_are_named_by_position(validator: RecordValidator) -> None:
    """A key the convenant does not know is echoed only if it is a plain [a-z_]{1,40} identifier; else it
    is `veld N` (its place in the record or object), so a BSN or name typed as a key never comes back."""
    record = {**make_record(1), "111222333 Noah": "x", "opmerking": "y", "a" * 41: "z"}
    record["adres"] = {**record["adres"], "Noah de Vries": "x"}
    violations = [(v.field, v.code) for v in validator.validate([record], TODAY)[1]]
    assert sorted(violations) == sorted([
        ("veld 11", "not_allowed"), ("opmerking", "not_allowed"), ("veld 13", "not_allowed"),
        ("adres.veld 6", "not_allowed"),
    ])


def test_unknown_key_via_api_never_echoes_the_key(rbl: Any, problem: Any) -> None:
    """Through the API, a record key holding a BSN and a name is reported as `veld N`, not echoed."""
    body = {"kind": "case", "records": [{**make_record(1), "111222333 Noah": "x"}]}
    # Sent as written (the test client's json= would sort the keys).
    response = rbl.post(f"/api/v1/convenants/{CONVENANT}/submissions", data=json.dumps(body),
                        headers={"Content-Type": "application/json"})
    body = problem(response, 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(0, "veld 11", "not_allowed")]
    assert "111222333" not in response.get_data(as_text=True) and "Noah" not in response.get_data(as_text=True)


def test_not_allowed_message_says_the_convenant_does_not_allow_it(
    validator: RecordValidator,
) -> None:
    """The not_allowed message names the category and says the convenant does not allow it."""
    _valid, [violation] = validator.validate([make_record(1, "absoluut_verzuim", reden_verzuim="x")], TODAY)
    assert "convenant" in violation.message and "absoluut_verzuim" in violation.message


def test_not_allowed_field_via_api_rejects_and_names_it(rbl: Any, problem: Any, count_rows: Any) -> None:
    """Via the API a disallowed field is a 422 problem naming record, field and not_allowed."""
    records = [
        make_record(1),
        make_record(2, "absoluut_verzuim", reden_verzuim="wacht op plaatsing"),
    ]
    body = problem(rbl.submit(records), 422)
    [error] = body["errors"]
    assert (error["record"], error["field"], error["code"]) == (1, "reden_verzuim", "not_allowed")
    assert error["message"]
    assert set(count_rows().values()) == {0}


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            make_record(1, "absoluut_verzuim", laatst_bekende_school=None),
            id="absoluut-without-school",
        ),
        pytest.param(make_record(1, reden_verzuim=None), id="langdurig-without-reden"),
        pytest.param(
            make_record(1, "vrijstelling_5a", laatst_bekende_school=None),
            id="vrijstelling-without-school",
        ),
        pytest.param(
            make_record(1, betrokkenheid_toelichting="RBL heeft contact met ouders"),
            id="with-toelichting",
        ),
    ],
)
def test_optional_fields_may_be_left_out(validator: RecordValidator, record: dict[str, Any]) -> None:
    """Optional fields of a category may be left out, and optional allowed fields may be given."""
    record = {k: v for k, v in record.items() if v is not None}
    assert check(validator, record) == []


# -- BSN -------------------------------------------------------------------------------------------

BAD_BSNS = [
    pytest.param("10000000", id="8-digits"),
    pytest.param("1000000090", id="10-digits"),
    pytest.param("10000000a", id="letter"),
    pytest.param("123456789", id="elfproef-fails"),
    pytest.param(100000009, id="int-not-string"),
    pytest.param("1000.00.009", id="formatted"),
    pytest.param(" 100000009", id="padded"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("bsn", BAD_BSNS)
def test_invalid_bsn(validator: RecordValidator, bsn: Any) -> None:
    """A BSN that is not nine digits passing the elfproef, as a string, is invalid_bsn."""
    assert check(validator, make_record(1, bsn=bsn)) == [(0, "bsn", "invalid_bsn")]


@pytest.mark.parametrize("bsn", BAD_BSNS)
def test_invalid_bsn_is_never_echoed(rbl: Any, problem: Any, bsn: Any) -> None:
    """The API refuses an invalid BSN with invalid_bsn; the value appears nowhere in the body."""
    response = rbl.submit([make_record(1, bsn=bsn)])
    body = problem(response, 422)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("bsn", "invalid_bsn")]
    if str(bsn).strip():
        assert_no_bsn(response, str(bsn).strip())


def test_missing_bsn_is_required(validator: RecordValidator) -> None:
    """A record without a BSN is refused: required."""
    assert check(validator, without(make_record(1), "bsn")) == [(0, "bsn", "required")]


# -- dates and age ---------------------------------------------------------------------------------

INVALID_DATES = [
    "2026-02-30",
    "2011-02-29",
    "17-05-2012",
    "2012/05/17",
    "20120517",
    "2012-5-17",
    "2012-05-17T00:00:00",
    20120517,
    "",
]


@pytest.mark.parametrize("field", ["geboortedatum", "startdatum_verzuim"])
@pytest.mark.parametrize("value", INVALID_DATES)
def test_invalid_date(validator: RecordValidator, field: str, value: Any) -> None:
    """Impossible dates and anything but JJJJ-MM-DD are invalid_date."""
    assert check(validator, make_record(1, **{field: value})) == [(0, field, "invalid_date")]


FUTURE = (TODAY + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("record", "field"),
    [
        pytest.param(make_record(1, geboortedatum=FUTURE), "geboortedatum", id="birth"),
        pytest.param(make_record(1, startdatum_verzuim=FUTURE), "startdatum_verzuim", id="start"),
        pytest.param(
            make_record(1, "absoluut_verzuim", startdatum_verzuim=FUTURE),
            "startdatum_verzuim",
            id="start-absoluut",
        ),
        pytest.param(
            make_record(1, "vrijstelling_5a", datum_toekenning_vrijstelling=FUTURE),
            "datum_toekenning_vrijstelling",
            id="toekenning",
        ),
    ],
)
def test_date_in_the_future(validator: RecordValidator, record: dict[str, Any], field: str) -> None:
    """Birth, start and toekenning dates after today are future_date."""
    assert check(validator, record) == [(0, field, "future_date")]


def test_dates_of_today_are_not_in_the_future(validator: RecordValidator) -> None:
    """A start or toekenning date of today itself is accepted."""
    today = TODAY.isoformat()
    assert check(validator, make_record(1, startdatum_verzuim=today)) == []
    assert check(validator, make_record(1, "vrijstelling_5a", datum_toekenning_vrijstelling=today)) == []


def test_einddatum_vrijstelling_may_lie_in_the_future(validator: RecordValidator) -> None:
    """The end of a vrijstelling is normally in the future; that is allowed."""
    assert check(validator, make_record(1, "vrijstelling_5a", einddatum_vrijstelling="2030-01-01")) == []


@pytest.mark.parametrize("einddatum", ["2026-01-31", "2026-02-01"], ids=["before", "same-day"])
def test_einddatum_must_come_after_toekenning(validator: RecordValidator, einddatum: str) -> None:
    """einddatum_vrijstelling on or before datum_toekenning_vrijstelling is date_order."""
    record = make_record(
        1,
        "vrijstelling_5a",
        datum_toekenning_vrijstelling="2026-02-01",
        einddatum_vrijstelling=einddatum,
    )
    assert check(validator, record) == [(0, "einddatum_vrijstelling", "date_order")]


@pytest.mark.parametrize(
    ("record", "ok"),
    [
        pytest.param(make_record(1, geboortedatum="2022-06-01"), False, id="4-at-start"),
        pytest.param(make_record(1, geboortedatum="2007-06-01"), False, id="19-at-start"),
        pytest.param(make_record(1, "absoluut_verzuim", geboortedatum="2025-01-01"), False, id="1-year-old"),
        pytest.param(
            make_record(1, "vrijstelling_5a", geboortedatum="2021-06-01"),
            False,
            id="4-at-toekenning",
        ),
        pytest.param(make_record(1, geboortedatum="2021-09-01"), True, id="5th-birthday-on-start"),
        pytest.param(make_record(1, geboortedatum="2008-09-02"), True, id="17-day-before-18"),
    ],
)
def test_age_must_fit_leerplicht_at_the_reference_date(
    validator: RecordValidator, record: dict[str, Any], ok: bool
) -> None:
    """The age at startdatum (or toekenning for 5a) must lie within the convenant's 5-18 bounds."""
    expected = [] if ok else [(0, "geboortedatum", "age_implausible")]
    assert check(validator, record) == expected


def test_future_date_uses_the_app_clock(rbl: Any, pinned: Any, problem: Any) -> None:
    """The API judges 'the future' by the app's clock: refused today, accepted a day later."""
    login(rbl, pinned)
    record = make_record(1, startdatum_verzuim="2026-12-02")
    body = problem(rbl.submit([record]), 422)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("startdatum_verzuim", "future_date")]
    pinned.advance(days=1)
    login(rbl, pinned)
    assert rbl.submit([record]).status_code == 201


def test_today_is_the_dutch_calendar_day(rbl: Any, pinned: Any) -> None:
    """At 23:30 UTC it is already the next day in the Netherlands; that day is not 'the future'."""
    pinned.now = dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC)
    login(rbl, pinned)
    response = rbl.submit([make_record(1, startdatum_verzuim="2026-12-02")])
    assert response.status_code == 201, response.json


# -- address: postcode, huisnummer, gemeente -------------------------------------------------------


@pytest.mark.parametrize(
    ("postcode", "normalised"),
    [
        ("6811 AB", "6811 AB"),
        ("6811AB", "6811 AB"),
        ("6811 ab", "6811 AB"),
        (" 6811ab ", "6811 AB"),
        ("1000 AA", "1000 AA"),
        ("9999 ZZ", "9999 ZZ"),
    ],
)
def test_valid_postcode_is_normalised(validator: RecordValidator, postcode: str, normalised: str) -> None:
    """A Dutch postcode in any common spelling is accepted and normalised to `1234 AB`."""
    [record], violations = validator.validate([with_address(1, postcode=postcode)], TODAY)
    assert violations == []
    assert record["adres"]["postcode"] == normalised


@pytest.mark.parametrize(
    "postcode",
    [
        "0811 AB",
        "681 AB",
        "68111 AB",
        "6811 A",
        "6811 ABC",
        "6811-AB",
        "AB 6811",
        "6811  AB",
        "6811 A1",
        "",
        6811,
    ],
)
def test_invalid_postcode(validator: RecordValidator, postcode: Any) -> None:
    """Anything but four digits (not starting with 0) and two letters is invalid_postcode."""
    assert check(validator, with_address(1, postcode=postcode)) == [(0, "adres.postcode", "invalid_postcode")]


@pytest.mark.parametrize("huisnummer", ["0", "abc", "12 a b c d e", "12/3", "a12", "123456 a"])
def test_invalid_huisnummer(validator: RecordValidator, huisnummer: str) -> None:
    """A huisnummer that is not a number with an optional short addition is invalid_format."""
    assert check(validator, with_address(1, huisnummer=huisnummer)) == [(0, "adres.huisnummer", "invalid_format")]


@pytest.mark.parametrize("huisnummer", ["1", "12a", "12-3", "12 bis", "99999"])
def test_valid_huisnummer(validator: RecordValidator, huisnummer: str) -> None:
    """Numbers with additions such as 12a, 12-3 and 12 bis are accepted."""
    assert check(validator, with_address(1, huisnummer=huisnummer)) == []


@pytest.mark.parametrize("gemeente", ["Utrecht", "Nijmegen", "Arnhem-Zuid", "Arnhemm", ""])
def test_gemeente_outside_werkgebied(validator: RecordValidator, gemeente: str) -> None:
    """A gemeente that no party of the convenant serves is outside_werkgebied."""
    assert check(validator, with_address(1, gemeente=gemeente)) == [(0, "adres.gemeente", "outside_werkgebied")]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("arnhem", "Arnhem"),
        ("DUIVEN", "Duiven"),
        (" Zevenaar ", "Zevenaar"),
        ("overBETUWE", "Overbetuwe"),
    ],
)
def test_gemeente_is_case_insensitive(validator: RecordValidator, given: str, canonical: str) -> None:
    """The gemeente is matched case-insensitively and stored as the convenant spells it."""
    [record], violations = validator.validate([with_address(1, gemeente=given)], TODAY)
    assert violations == []
    assert record["adres"]["gemeente"] == canonical


def test_outside_werkgebied_via_api(rbl: Any, problem: Any) -> None:
    """Via the API a pupil in Utrecht is refused with outside_werkgebied on adres.gemeente."""
    body = problem(rbl.submit([with_address(1, gemeente="Utrecht")]), 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [
        (0, "adres.gemeente", "outside_werkgebied")
    ]


# -- enums, required, types ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ouders", "BEIDE", "", 1, ["beide"]])
def test_betrokkenheid_not_in_enum(validator: RecordValidator, value: Any) -> None:
    """betrokkenheid must be one of rbl, swv, beide, geen."""
    assert check(validator, make_record(1, betrokkenheid=value)) == [(0, "betrokkenheid", "invalid_choice")]


@pytest.mark.parametrize("value", ["rbl", "swv", "beide", "geen"])
def test_betrokkenheid_choices(validator: RecordValidator, value: str) -> None:
    """Each of the four betrokkenheid values is accepted."""
    assert check(validator, make_record(1, betrokkenheid=value)) == []


@pytest.mark.parametrize(
    ("category", "field"),
    [
        ("langdurig_verzuim", "voornaam"),
        ("langdurig_verzuim", "achternaam"),
        ("langdurig_verzuim", "geboortedatum"),
        ("langdurig_verzuim", "adres"),
        ("langdurig_verzuim", "adres.postcode"),
        ("langdurig_verzuim", "adres.gemeente"),
        ("langdurig_verzuim", "laatst_bekende_school"),
        ("langdurig_verzuim", "startdatum_verzuim"),
        ("langdurig_verzuim", "betrokkenheid"),
        ("absoluut_verzuim", "startdatum_verzuim"),
        ("vrijstelling_5a", "datum_toekenning_vrijstelling"),
        ("vrijstelling_5a", "einddatum_vrijstelling"),
    ],
)
def test_missing_required_field(validator: RecordValidator, category: str, field: str) -> None:
    """Leaving out a required field of the category is an error with code required."""
    assert check(validator, without(make_record(1, category), field)) == [(0, field, "required")]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("voornaam", None, "null"),
        ("voornaam", "", "empty"),
        ("voornaam", "   ", "empty"),
        ("voornaam", 42, "invalid_type"),
        ("voornaam", "x" * 101, "too_long"),
        ("reden_verzuim", "x" * 201, "too_long"),
        ("voornaam", "Jan\x00", "invalid_character"),
        ("reden_verzuim", "ziek\x1bthuis", "invalid_character"),
        ("geboortedatum", None, "null"),
    ],
)
def test_text_rules(validator: RecordValidator, field: str, value: Any, code: str) -> None:
    """Text fields refuse null, blanks, non-strings and text over the convenant's maximum length."""
    assert check(validator, make_record(1, **{field: value})) == [(0, field, code)]


@pytest.mark.parametrize("category", [None, "relatief_verzuim", "Langdurig_verzuim", 5])
def test_unknown_category(validator: RecordValidator, category: Any) -> None:
    """A record whose category the convenant does not know is unknown_category."""
    record = make_record(1)
    if category is None:
        del record["category"]
    else:
        record["category"] = category
    assert check(validator, record) == [(0, "category", "unknown_category")]


@pytest.mark.parametrize("adres", ["Dorpsstraat 1, 6811 AB Arnhem", ["Dorpsstraat", "1"], 5])
def test_address_that_is_not_an_object_names_the_field(validator: RecordValidator, adres: Any) -> None:
    """An adres that is not an object is an error on field adres (code invalid_object)."""
    assert check(validator, make_record(1, adres=adres)) == [(0, "adres", "invalid_object")]


# -- free text screening ---------------------------------------------------------------------------

FORBIDDEN = [
    ("reden_verzuim", "ADHD"),
    ("reden_verzuim", "Halt-traject"),
    ("reden_verzuim", "Loopt een Halt-traject na een incident"),
    ("reden_verzuim", "in behandeling bij de GGZ"),
    ("reden_verzuim", "vermoedelijk ASS"),
    ("reden_verzuim", "zwanger"),
    ("reden_verzuim", "proces-verbaal opgemaakt"),
    ("reden_verzuim", "politie is betrokken"),
    ("reden_verzuim", "vermoeden van kindermishandeling"),
    ("reden_verzuim", "huiselijk geweld in het gezin"),
    ("reden_verzuim", "drugsgebruik"),
    ("betrokkenheid_toelichting", "afstemming met jeugdreclassering"),
    ("betrokkenheid_toelichting", "gebruikt medicatie"),
]


@pytest.mark.parametrize(("field", "text"), FORBIDDEN)
def test_free_text_with_special_or_police_data_is_refused(validator: RecordValidator, field: str, text: str) -> None:
    """Free text naming health, police or stigmatising matters is forbidden_content.*."""
    violations = check(validator, make_record(1, **{field: text}))
    assert violations and all(f == field for _r, f, _c in violations)
    assert all(code.startswith("forbidden_content.") for _r, _f, code in violations), violations


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("reden_verzuim", "wacht op plaatsing"),
        ("reden_verzuim", "conflict met school"),
        ("reden_verzuim", "Conflict met school over passend aanbod"),
        ("reden_verzuim", "geen passende plek beschikbaar sinds 2026-09-01"),
        ("betrokkenheid_toelichting", "RBL en SWV hebben contact met ouders, bel 06-12345678"),
        # names of schools may carry a denomination: the school field is exempt from religie (convenant file)
        ("laatst_bekende_school", "Rooms-Katholieke Basisschool Sint Jozef"),
        ("laatst_bekende_school", "Islamitische Basisschool Al Qalam"),
    ],
)
def test_general_wording_passes(validator: RecordValidator, field: str, text: str) -> None:
    """General reasons ("wacht op plaatsing", "conflict met school") and school names pass."""
    assert check(validator, make_record(1, **{field: text})) == []


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("reden_verzuim", "zie dossier {bsn}"),
        ("reden_verzuim", "broer ({bsn}) ook thuis"),
        ("betrokkenheid_toelichting", "BSN {bsn}"),
        ("voornaam", "Sam {bsn}"),
        ("laatst_bekende_school", "School {bsn}"),
    ],
)
def test_bsn_in_free_text_is_refused_and_not_echoed(rbl: Any, problem: Any, field: str, template: str) -> None:
    """A BSN-looking number in any text field is refused, and the number is not in the response."""
    other = make_bsn(77)
    response = rbl.submit([make_record(1, **{field: template.format(bsn=other)})])
    body = problem(response, 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert body["errors"][0]["code"].startswith("forbidden_content.")
    assert_no_bsn(response, other, make_bsn(1))


def test_forbidden_term_via_api(rbl: Any, problem: Any) -> None:
    """Via the API free text with "ADHD" is a 422 with a forbidden_content.* code on that field."""
    body = problem(rbl.submit([make_record(1), make_record(2, reden_verzuim="heeft ADHD")]), 422)
    [error] = body["errors"]
    assert (error["record"], error["field"]) == (1, "reden_verzuim")
    assert error["code"].startswith("forbidden_content.")


# -- whole-list rejection --------------------------------------------------------------------------


def test_one_bad_record_rejects_the_whole_list_and_stores_nothing(
    rbl: Any, liemers: Any, problem: Any, count_rows: Any
) -> None:
    """One bad record among good ones rejects the list; no submission/record/delivery stored."""
    records = [make_record(n, gemeente="Duiven") for n in range(5)]
    records[3]["adres"]["postcode"] = "68 AB"
    body = problem(rbl.submit(records), 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(3, "adres.postcode", "invalid_postcode")]
    assert "niets" in body["detail"]
    assert set(count_rows().values()) == {0}
    assert liemers.get("/api/v1/deliveries").json["deliveries"] == []


def test_every_bad_record_is_reported(rbl: Any, problem: Any) -> None:
    """All violations of all records are reported at once, each with its record index."""
    records = [
        make_record(0),
        make_record(1, bsn="123"),
        make_record(2),
        make_record(3, betrokkenheid="x"),
    ]
    response = rbl.submit(records)
    body = problem(response, 422)
    assert {(e["record"], e["code"]) for e in body["errors"]} == {
        (1, "invalid_bsn"),
        (3, "invalid_choice"),
    }
    assert_no_bsn(response, *(make_bsn(n) for n in range(4)))


def test_duplicate_bsn_in_one_submission(rbl: Any, problem: Any, count_rows: Any) -> None:
    """The same pupil twice in one submission is duplicate_subject, and the BSN is not echoed."""
    records = [make_record(1), make_record(2), make_record(3, bsn=make_bsn(1))]
    response = rbl.submit(records)
    body = problem(response, 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(2, "bsn", "duplicate_subject")]
    assert_no_bsn(response, make_bsn(1))
    assert set(count_rows().values()) == {0}


@pytest.mark.parametrize("record", ["langdurig_verzuim", 5, None, ["x"]])
def test_record_that_is_not_an_object(rbl: Any, problem: Any, record: Any) -> None:
    """A record that is not a JSON object is invalid_record."""
    body = problem(rbl.submit([make_record(1), record]), 422)
    assert [(e["record"], e["code"]) for e in body["errors"]] == [(1, "invalid_record")]


@pytest.mark.parametrize("category", [["langdurig_verzuim"], {"id": "langdurig_verzuim"}])
def test_unhashable_category_is_a_validation_error(rbl: Any, problem: Any, category: Any) -> None:
    """A category given as a list or object is a 422 unknown_category, not a server error."""
    body = problem(rbl.submit([make_record(1, category=category)]), 422)
    assert [(e["record"], e["field"], e["code"]) for e in body["errors"]] == [(0, "category", "unknown_category")]


def test_rejected_response_never_contains_a_bsn(rbl: Any, problem: Any) -> None:
    """Whatever the rejection, the BSNs of the records are not in the response body."""
    records = [make_record(n, geboortedatum="2030-01-01") for n in range(3)]
    response = rbl.submit(records)
    problem(response, 422)
    assert_no_bsn(response, *(make_bsn(n) for n in range(3)))
    assert {(e["record"], e["code"]) for e in response.json["errors"]} == {(n, "future_date") for n in range(3)}


def test_csv_without_header_does_not_echo_the_bsn(rbl: Any, problem: Any) -> None:
    """A CSV that lacks its header line is refused without repeating the BSN of its first row."""
    bsn = make_bsn(5)
    rows = (
        f"langdurig_verzuim,{bsn},Sam,Jansen,2012-05-17,Dorpsstraat,1,6811 AB,Arnhem,Arnhem,School,"
        "2026-09-01,wacht op plaatsing,beide\n"
        f"langdurig_verzuim,{make_bsn(6)},Kim,Jansen,2012-05-17,Dorpsstraat,2,6811 AB,Arnhem,"
        "Arnhem,School,"
        "2026-09-01,wacht op plaatsing,beide\n"
    )
    response = rbl.post(f"{SUBMIT}?kind=case", data=rows, headers={"Content-Type": "text/csv"})
    problem(response, 422)
    assert_no_bsn(response, bsn, make_bsn(6))
