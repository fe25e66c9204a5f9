"""Property tests (hypothesis) for three promises the broker makes:

a. validation: nothing the convenant file forbids is ever stored, and nothing it allows is lost;
b. pseudonyms: stable, unlinkable across convenants and keys, collision-free, never the BSN;
c. the audit log's Merkle proofs: every honest proof verifies, every altered one fails.

The field lists, free-text fields and lexicon terms come from the convenant and lexicon files, not
from this module. The API-level properties run a few dozen examples against one app per test; every
example compares row counts and the audit log before and after itself, so examples stay independent.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import os
import re
import string
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fixtures.audit import AuditDb
from fixtures.parties import Party
from fixtures.records import CONVENANT, GEMEENTE_POSTCODE, make_record
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from audit.merkle import MerkleTree, compute_root, prove_consistency, prove_inclusion, root_hash
from audit.proof import EMPTY_ROOT, hash_children, hash_leaf, verify_consistency, verify_inclusion
from keys.pseudonym import Pseudonymiser
from schemas import load_convenants, screening
from schemas.screening import load_default_lexicon
from schemas.validation import RecordValidator

CONV = load_convenants()[CONVENANT]
VALIDATOR = RecordValidator(CONV)
LEXICON = load_default_lexicon()
LEXICON_DIR = Path(screening.__file__).resolve().parent / "lexicon"  # every lexicon file the broker ships
SUBMIT = f"/api/v1/convenants/{CONVENANT}/submissions"
API_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- what the convenant file allows, read from it ---------------------------------------------------

CATEGORIES = tuple(CONV.categories)
CATEGORY_FIELDS = {cid: frozenset(c.field_names) for cid, c in CONV.categories.items()}
ALLOWED_KEYS = {cid: fields | {"category"} for cid, fields in CATEGORY_FIELDS.items()}
OPTIONAL = {cid: frozenset(c.optional) for cid, c in CONV.categories.items()}
OBJECT_FIELDS = {
    name: {sub.name: sub for sub in spec.fields} for name, spec in CONV.fields.items() if spec.type == "object"
}


def _specs() -> dict[str, Any]:
    """Every field and sub-field by its dotted path (`adres.postcode`)."""
    paths: dict[str, Any] = {}
    for name, spec in CONV.fields.items():
        paths[name] = spec
        for sub in spec.fields:
            paths[f"{name}.{sub.name}"] = sub
    return paths


SPECS = _specs()


def paths_of(category: str) -> list[str]:
    """The dotted paths of every field and sub-field `category` allows, in file order."""
    return [p for p in SPECS if p.split(".")[0] in CATEGORY_FIELDS[category]]


def _is_text(spec: Any) -> bool:
    return spec.type in ("string", "text")


# Free text screened for special and police data, and text screened for BSN-looking numbers.
FULL_SCREENED = {p for p, s in SPECS.items() if _is_text(s) and s.screen == "full"}
SCREENED = {p for p, s in SPECS.items() if _is_text(s) and s.screen}
# Every screened text field with its own screen: free text, names and addresses (lexicon contexts),
# a school's name (exempt from religie).
SCREENERS = {p: LEXICON.screener(SPECS[p].screen, SPECS[p].screen_exempt) for p in SCREENED}
assert FULL_SCREENED, "the convenant has no free-text field screened in full: this module tests nothing there"


# -- the lexicon's terms, as regex fragments from the lexicon file(s) --------------------------------


def _lexicon_terms() -> list[tuple[str, str, bool]]:
    terms = []
    for path in sorted(LEXICON_DIR.glob("*.toml")):
        for category, table in tomllib.loads(path.read_text(encoding="utf-8")).items():
            terms += [(category, t, False) for t in table.get("terms", ())]
            terms += [(category, t, True) for t in table.get("terms_case_sensitive", ())]
    return terms


LEXICON_TERMS = _lexicon_terms()
assert len(LEXICON_TERMS) > 100
# Letters (Latin-1, stable under NFKC), digits and the separators the fragments use literally.
TERM_ALPHABET = st.characters(
    categories=["L"], max_codepoint=0xFF, exclude_characters="ªº", include_characters=" -'/.,0123456789"
)
CLEAN_WORDS = ["Leerling", "wacht", "op", "een", "passende", "plek", "sinds", "de", "zomervakantie", "thuis"]
CLEAN_PHRASES = ["wacht op plaatsing", "thuissituatie", "school zoekt een passend aanbod", "RBL en SWV overleggen"]
assert not any(LEXICON.screen(w) for w in [*CLEAN_WORDS, *CLEAN_PHRASES])


@st.composite
def forbidden_text(draw: Any, exempt: tuple[str, ...] = ()) -> str:
    """A sentence of clean words around a phrase that one lexicon fragment matches (any case, where
    the fragment is case-insensitive), of a category not in `exempt`."""
    _category, term, case_sensitive = draw(st.sampled_from([t for t in LEXICON_TERMS if t[0] not in exempt]))
    pattern = re.compile(term, 0 if case_sensitive else re.IGNORECASE)
    phrase = draw(st.from_regex(pattern, fullmatch=True, alphabet=TERM_ALPHABET))
    before = draw(st.lists(st.sampled_from(CLEAN_WORDS), max_size=3))
    after = draw(st.lists(st.sampled_from(CLEAN_WORDS), max_size=3))
    return " ".join([*before, phrase, *after])


# -- BSNs -------------------------------------------------------------------------------------------


def elfproef_ok(digits: str) -> bool:
    """The elfproef for a nine-digit BSN, written out here (not the product's)."""
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return len(digits) == 9 and digits.isascii() and digits.isdigit() and total % 11 == 0 and digits != "0" * 9


def bsn_from(prefix: int) -> str | None:
    """The valid BSN with these first eight digits, if there is one."""
    head = f"{prefix:08d}"
    check = sum(int(d) * w for d, w in zip(head, range(9, 1, -1), strict=True)) % 11
    bsn = head + str(check) if check < 10 else None
    return bsn if bsn and elfproef_ok(bsn) else None


valid_bsns = st.integers(0, 99_999_999).map(bsn_from).filter(lambda b: b is not None)


def grouped(bsn: str, style: int) -> str:
    """A BSN as people write it in text: one run, 4-2-3 with dots, 3-3-3 with spaces, 3-2-4 with hyphens."""
    styles = [bsn, f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}", f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}"]
    styles.append(f"{bsn[:3]}-{bsn[3:5]}-{bsn[5:]}")
    return styles[style]


@st.composite
def invalid_bsn(draw: Any, bsn: str) -> Any:
    """Something in the BSN field that is not a BSN (the product's known gaps are tested apart, below)."""
    kind = draw(st.sampled_from(["digit", "short", "long", "letters", "number", "null", "zeros", "padded", "grouped"]))
    if kind == "digit":  # one digit changed: the weighted sum changes by w*d, never a multiple of 11
        at = draw(st.integers(0, 8))
        new = draw(st.sampled_from([d for d in string.digits if d != bsn[at]]))
        return bsn[:at] + new + bsn[at + 1 :]
    if kind == "short":
        return bsn[: draw(st.integers(0, 8))]
    if kind == "long":
        return bsn + draw(st.text(string.digits, min_size=1, max_size=3))
    if kind == "letters":
        at = draw(st.integers(0, 8))
        return bsn[:at] + draw(st.sampled_from("aOlI x")) + bsn[at + 1 :]
    if kind == "number":
        return int(bsn)
    if kind == "null":
        return None
    if kind == "zeros":
        return "000000000"
    if kind == "padded":
        return draw(st.sampled_from([f" {bsn}", f"{bsn} ", f"\t{bsn}"]))
    return grouped(bsn, draw(st.integers(1, 3)))


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.text(string.ascii_lowercase, max_size=5), st.integers(0, 9), max_size=2),
)
non_strings = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**10), st.lists(st.integers(0, 9), max_size=2),
                        st.dictionaries(st.sampled_from("abc"), st.integers(0, 9), max_size=2))


# -- records with known faults ----------------------------------------------------------------------


@dataclass
class Case:
    """One generated record: what is sent, what must be stored if it is valid, and what must be refused."""

    index: int
    bsn: str
    record: Any
    expected: dict[str, Any]  # the stored form, for a valid record
    faults: set[str] = field(default_factory=set)  # paths an error must name
    cross_field: set[str] = field(default_factory=set)  # paths of rules that run only without field errors
    not_provided: bool = False  # a category the submitting party may not send (403 before validation)
    unknown_category: bool = False

    @property
    def valid(self) -> bool:
        return not (self.faults or self.cross_field or self.not_provided or self.unknown_category)

    def must_name(self) -> set[str]:
        """The paths the refusal must name for this record."""
        if self.unknown_category:
            return {"category"}
        return self.faults or self.cross_field


def _get(record: Any, path: str) -> tuple[Any, str] | None:
    """The container holding `path` and the last key, or None when a parent is not an object."""
    parent, _, key = path.rpartition(".")
    target = record.get(parent) if parent else record
    return (target, key) if isinstance(target, dict) else None


def _set(record: Any, path: str, value: Any) -> bool:
    found = _get(record, path)
    if found is None:
        return False
    found[0][found[1]] = value
    return True


def _drop(record: Any, path: str) -> bool:
    found = _get(record, path)
    if found is None or found[1] not in found[0]:
        return False
    del found[0][found[1]]
    return True


def _benign(draw: Any, case: Case, category: str) -> None:
    """Changes that keep a record valid; `expected` follows them as the convenant says it normalises."""
    record, expected = case.record, case.expected
    for tweak in draw(st.lists(st.sampled_from(["drop_optional", "clean_text", "pad", "postcode", "gemeente",
                                                "choice"]), max_size=3, unique=True)):
        if tweak == "drop_optional" and OPTIONAL[category]:
            name = draw(st.sampled_from(sorted(OPTIONAL[category])))
            record.pop(name, None)
            expected.pop(name, None)
        elif tweak == "clean_text":
            paths = sorted(FULL_SCREENED & set(paths_of(category)))
            if paths:
                path, text = draw(st.sampled_from(paths)), draw(st.sampled_from(CLEAN_PHRASES))
                _set(record, path, text)
                _set(expected, path, text)
        elif tweak == "pad":  # text is stored without surrounding white space
            present = sorted(p for p in SCREENED & set(paths_of(category)) if p in _flat(record))
            if not present:
                continue
            path = draw(st.sampled_from(present))
            value = _flat(record)[path]
            _set(record, path, f"  {value}\t")
            _set(expected, path, value)
        elif tweak == "postcode":  # `6921aa` is stored as `6921 AA`
            for path in (p for p in paths_of(category) if SPECS[p].type == "postcode"):
                value = _flat(record)[path]
                _set(record, path, value.replace(" ", "").lower())
        elif tweak == "gemeente":  # a gemeente in any case is stored as the convenant spells it
            value = _flat(record)[CONV.gemeente_field]
            _set(record, CONV.gemeente_field, draw(st.sampled_from([value.upper(), value.lower(), f" {value} "])))
        elif tweak == "choice":
            for path in paths_of(category):
                spec = SPECS[path]
                if spec.type == "enum" and path in record:
                    value = draw(st.sampled_from(spec.choices))
                    _set(record, path, value)
                    _set(expected, path, value)


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        out[key] = value
    return out


FAULTS = [
    "extra_field", "extra_nested", "forbidden_text", "bsn_in_text", "invalid_bsn", "wrong_type", "invalid_date",
    "future_date", "bad_postcode", "outside_werkgebied", "missing_required", "bad_choice", "too_long",
    "bad_pattern", "implausible_age", "unknown_category", "not_provided",
]


def _fault(draw: Any, case: Case, category: str, kind: str, provides: frozenset[str]) -> None:
    """Break the record in one way the convenant forbids; note the path an error must name."""
    record, allowed = case.record, paths_of(category)
    _apply_fault(draw, case, category, kind, provides, record, allowed)
    # A field replaced or removed whole takes the faults inside it along: only its own error remains.
    for path in list(case.faults):
        if any(path.startswith(f"{parent}.") for parent in case.faults):
            case.faults.discard(path)


def _apply_fault(
    draw: Any, case: Case, category: str, kind: str, provides: frozenset[str], record: Any, allowed: list[str]
) -> None:

    def pick(predicate: Any) -> str | None:
        options = [p for p in allowed if predicate(SPECS[p], p)]
        return draw(st.sampled_from(options)) if options else None

    if kind == "extra_field":
        others = sorted(set(CONV.fields) - CATEGORY_FIELDS[category])
        # A plain identifier, which an error echoes; any other key is named by its position
        # (`veld 3`), which test_csvio checks.
        invented = st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True).filter(
            lambda k: k not in ALLOWED_KEYS[category]
        )
        name = draw(st.one_of(st.sampled_from(others), invented) if others else invented)
        record[name] = draw(json_values)
        case.faults.add(name)
    elif kind == "extra_nested":
        name = pick(lambda s, p: s.type == "object")
        if name and isinstance(record.get(name), dict):
            keys = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)
            key = draw(keys.filter(lambda k: k not in OBJECT_FIELDS[name]))
            record[name][key] = draw(json_values)
            case.faults.add(f"{name}.{key}")
    elif kind == "forbidden_text":
        path = pick(lambda s, p: p in FULL_SCREENED)
        if path and _set(record, path, draw(forbidden_text(SPECS[path].screen_exempt))):
            case.faults.add(path)
    elif kind == "bsn_in_text":
        path = pick(lambda s, p: p in SCREENED)
        other = draw(valid_bsns)
        text = f"{draw(st.sampled_from(CLEAN_WORDS))} {grouped(other, draw(st.integers(0, 3)))}"
        if path and _set(record, path, text):
            case.faults.add(path)
    elif kind == "invalid_bsn":
        record[CONV.subject_id_field] = draw(invalid_bsn(case.bsn))
        case.faults.add(CONV.subject_id_field)
    elif kind == "wrong_type":
        path = pick(lambda s, p: True)
        if path and _set(record, path, draw(non_strings.filter(lambda v: not isinstance(v, dict) or "." in path
                                                               or SPECS[path].type != "object"))):
            case.faults.add(path)
    elif kind == "invalid_date":
        path = pick(lambda s, p: s.type == "date")
        bad = st.sampled_from(["2026-02-30", "2025-13-01", "17-05-2012", "2012/05/17", "20120517", "2012-5-7", "nu"])
        if path and _set(record, path, draw(bad)):
            case.faults.add(path)
    elif kind == "future_date":
        path = pick(lambda s, p: s.type == "date" and s.not_future)
        future = (dt.date.today() + dt.timedelta(days=draw(st.integers(2, 3000)))).isoformat()
        if path and _set(record, path, future):
            case.faults.add(path)
    elif kind == "bad_postcode":
        path = pick(lambda s, p: s.type == "postcode")
        if path and _set(record, path, draw(st.sampled_from(["1234", "0123 AB", "ABCD 12", "1234 A", "12345 AB", ""]))):
            case.faults.add(path)
    elif kind == "outside_werkgebied":
        path = pick(lambda s, p: s.type == "gemeente")
        outside = st.sampled_from(["Utrecht", "Nijmegen", "Amsterdam", "Arnhem-Zuid", ""])
        if path and _set(record, path, draw(outside)):
            case.faults.add(path)
    elif kind == "missing_required":
        path = pick(lambda s, p: p.split(".")[0] not in OPTIONAL[category] or "." in p)
        if path and _drop(record, path):
            case.faults.add(path)
    elif kind == "bad_choice":
        path = pick(lambda s, p: s.type == "enum")
        if path and _set(record, path, draw(st.text(string.ascii_letters, max_size=8).filter(
                lambda v: v not in SPECS[path].choices))):
            case.faults.add(path)
    elif kind == "too_long":
        path = pick(lambda s, p: _is_text(s) and s.max_length)
        if path and _set(record, path, "a" * (SPECS[path].max_length + draw(st.integers(1, 40)))):
            case.faults.add(path)
    elif kind == "bad_pattern":
        path = pick(lambda s, p: _is_text(s) and s.pattern)
        if path:
            value = draw(st.text(string.ascii_letters + string.digits + " -", min_size=1, max_size=8).filter(
                lambda v: v.strip() and not re.match(SPECS[path].pattern, v.strip())))
            _set(record, path, value)
            case.faults.add(path)
    elif kind == "implausible_age":
        # A cross-field rule: it runs only on a record without field errors, and names the birth date.
        birth, reference = CONV.birth_date_field, CONV.categories[category].age_reference
        if birth and reference and birth not in case.faults and reference not in case.faults:
            ref = dt.date.fromisoformat(record[reference])
            years = draw(st.sampled_from([CONV.min_age - 1, CONV.max_age, CONV.max_age + 7, 1]))
            record[birth] = ref.replace(year=ref.year - years, day=min(ref.day, 28)).isoformat()
            case.cross_field.add(birth)
    elif kind == "not_provided":  # a category of the convenant that the sending party does not provide
        provided = sorted(set(CATEGORIES) - provides)
        if provided:
            record["category"] = draw(st.sampled_from(provided))
            case.not_provided, case.unknown_category = True, False
    elif kind == "unknown_category":
        record["category"] = draw(st.one_of(
            st.text(string.ascii_lowercase + "_", max_size=20).filter(lambda c: c not in CATEGORIES),
            st.sampled_from([c.upper() for c in CATEGORIES]),
            non_strings,
        ))
        case.not_provided, case.unknown_category = False, True


@st.composite
def cases(draw: Any, provides: frozenset[str], fault_rate: float = 0.6) -> list[Case]:
    """A list of one to four records about different pupils, some broken in known ways."""
    numbers = draw(st.lists(st.integers(0, 4000), min_size=1, max_size=4, unique=True))
    gemeenten = sorted(GEMEENTE_POSTCODE)
    out = []
    for index, n in enumerate(numbers):
        category = draw(st.sampled_from(sorted(provides)))
        record = make_record(n, category, draw(st.sampled_from(gemeenten)))
        case = Case(index, record[CONV.subject_id_field], record, copy.deepcopy(record))
        _benign(draw, case, category)
        if draw(st.floats(0, 1)) < fault_rate:
            for kind in draw(st.lists(st.sampled_from(FAULTS), min_size=1, max_size=3)):
                _fault(draw, case, category, kind, provides)
            if case.faults:  # a field error hides the cross-field rules
                case.cross_field.clear()
        out.append(case)
    return out


def assert_only_allowed(record: dict[str, Any]) -> None:
    """A stored or cleaned record holds only what the convenant allows for its category, as text."""
    category = record["category"]
    assert category in CATEGORIES
    assert set(record) <= ALLOWED_KEYS[category], set(record) - ALLOWED_KEYS[category]
    for key, value in record.items():
        if key in OBJECT_FIELDS:
            assert isinstance(value, dict) and set(value) <= set(OBJECT_FIELDS[key])
            assert all(isinstance(v, str) for v in value.values())
        else:
            assert isinstance(value, str)
    for path, value in _flat(record).items():
        if path in FULL_SCREENED:
            assert LEXICON.screen(value, exempt=SPECS[path].screen_exempt) == [], (path, value)
        if path in SCREENED:
            assert SCREENERS[path](value) == [], path
            assert LEXICON.screen_bsn_only(value) == [], path
    assert elfproef_ok(record[CONV.subject_id_field])


# -- a. validation: pure ----------------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated=cases(frozenset(CATEGORIES)))
def test_validator_refuses_every_known_fault_and_cleans_only_to_allowed_fields(generated: list[Case]) -> None:
    """Every broken record is refused with its record index and the broken field's path, no clean record
    gets an error, and what the validator returns holds exactly the allowed fields, normalised."""
    valid, violations = VALIDATOR.validate([c.record for c in generated], dt.date.today())
    named = {(v.record, v.field) for v in violations}
    for case in generated:
        if case.valid:
            assert not any(v.record == case.index for v in violations), (case.record, violations)
        else:
            for path in case.must_name():
                assert (case.index, path) in named, (path, case, violations)
    assert [c.expected for c in generated if c.valid] == valid
    for record in valid:
        assert_only_allowed(record)


anything = st.recursive(json_values, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from([*SPECS, "x"]), inner, max_size=4), max_leaves=8)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(CATEGORIES).map(lambda c: make_record(7, c)),
    noise=st.dictionaries(st.sampled_from([*SPECS, "category", "diagnose", "adres.extra"]), anything, max_size=5),
    drop=st.sets(st.sampled_from([*SPECS, "category"]), max_size=3),
)
def test_validator_never_returns_a_field_outside_the_category(
    base: dict[str, Any], noise: dict[str, Any], drop: set[str]
) -> None:
    """Whatever keys and values a record holds, a record the validator accepts has only allowed fields."""
    record = copy.deepcopy(base)
    for path in drop:
        _drop(record, path)
    for path, value in noise.items():
        _set(record, path, value)
    valid, violations = VALIDATOR.validate([record], dt.date.today())
    assert len(valid) + len({v.record for v in violations}) == 1
    for cleaned in valid:
        assert_only_allowed(cleaned)
        assert cleaned["category"] == record["category"]


# -- a. validation: through the API -----------------------------------------------------------------


def _vault_files(app: Any) -> int:
    return sum(1 for p in Path(app.config["KEY_VAULT_DIR"]).rglob("*") if p.is_file())


@pytest.fixture
def delivered() -> dict[tuple[str, str], dict[str, Any]]:
    """What each recipient last received about each BSN, over the examples of one test (one app)."""
    return {}


@API_SETTINGS
@given(data=st.data())
def test_api_stores_nothing_the_convenant_forbids(
    app: Any,
    rbl: Party,
    liemers: Party,
    passend_wijs: Party,
    verbinding: Party,
    count_rows: Any,
    audit_db: AuditDb,
    problem: Any,
    delivered: dict[tuple[str, str], dict[str, Any]],
    data: Any,
) -> None:
    """A submission with any forbidden record is refused whole, naming each broken record and field,
    and leaves no row, no key share and no audit entry but its own rejection; a valid one is stored,
    and each recipient decrypts exactly the allowed fields as the convenant normalises them, except
    a record it received unchanged in an earlier example, which the 201 lists as a duplicate."""
    parties = {p.party_id: p for p in (rbl, liemers, passend_wijs, verbinding)}
    sender = data.draw(st.sampled_from([rbl, liemers]), label="sender")
    provides = CONV.party(sender.party_id).provides
    fault_rate = data.draw(st.sampled_from([0.0, 0.5, 0.9]), label="fault rate")
    generated = data.draw(cases(frozenset(provides), fault_rate=fault_rate), label="cases")
    records = [c.record for c in generated]
    for party in parties.values():  # tokens first (once per test): their audit entries are not this example's
        party.headers  # noqa: B018
    before, log_before, vault_before = count_rows(), audit_db.size(), _vault_files(app)

    response = sender.submit(records)
    new_entries = audit_db.records()[log_before:]
    sent_bsns = {c.bsn for c in generated}
    assert not any(bsn in json.dumps(e) for e in new_entries for bsn in sent_bsns), "a BSN reached the audit log"

    event(f"HTTP {response.status_code}")
    if all(c.valid for c in generated):
        assert response.status_code == 201, response.get_data(as_text=True)[:2000]
        after = count_rows()
        assert after["submissions"] == before["submissions"] + 1
        assert after["records"] == before["records"] + len(records)
        duplicates = {d["record"]: d["recipient"] for d in response.json["duplicates"]}
        if duplicates:
            event("a record received unchanged before")
        for index, recipient in duplicates.items():
            case = generated[index]
            assert delivered.get((recipient, case.bsn)) == case.expected, "a duplicate it never received"
        assert after["delivery_records"] - before["delivery_records"] == len(records) - len(duplicates)
        assert after["deliveries"] - before["deliveries"] == len(response.json["deliveries"])
        assert _vault_files(app) == vault_before + 1
        fetched = []
        for delivery in response.json["deliveries"]:
            got = parties[delivery["recipient"]].get(f"/api/v1/deliveries/{delivery['delivery_id']}")
            assert got.status_code == 200, got.json
            fetched += got.json["records"]
            for record in got.json["records"]:
                delivered[(delivery["recipient"], record[CONV.subject_id_field])] = record
        expected = {c.bsn: c.expected for c in generated if c.index not in duplicates}
        assert {r[CONV.subject_id_field]: r for r in fetched} == expected
        assert len(fetched) == len(expected)
        for record in fetched:
            assert_only_allowed(record)
        return

    refused_by_party = any(c.not_provided for c in generated)
    status = 403 if refused_by_party else 422
    body = problem(response, status)
    assert count_rows() == before, "a refused submission left rows behind"
    assert _vault_files(app) == vault_before, "a refused submission left a key share behind"
    named = {(e["record"], e["field"]) for e in body["errors"]}
    if refused_by_party:
        assert named == {(c.index, "category") for c in generated if c.not_provided}
        assert {e["code"] for e in body["errors"]} == {"category_not_provided"}
    else:
        for case in generated:
            if case.valid:
                assert not any(e["record"] == case.index for e in body["errors"]), (case.record, body["errors"])
            for path in case.must_name() if not case.valid else ():
                assert (case.index, path) in named, (path, case.record, body["errors"])
    assert not any(bsn in response.get_data(as_text=True) for bsn in sent_bsns), "the refusal echoed a BSN"
    (entry,) = new_entries
    assert entry["name"] == "submission.rejected" and entry["status"] == "Error"
    assert entry["attributes"]["http_status"] == status
    assert entry["attributes"]["errors"] == len(body["errors"])
    assert entry["attributes"]["codes"] == sorted({e["code"] for e in body["errors"]})


# -- b. pseudonyms ----------------------------------------------------------------------------------

convenant_ids = st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True)


def encodings(pseudonym: str) -> list[str]:
    """The pseudonym as text in every encoding a reader might use."""
    raw = bytes.fromhex(pseudonym)
    return [
        pseudonym,
        pseudonym.upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b32encode(raw).decode(),
        raw.decode("latin-1"),
    ]  # (not the 77-digit decimal: there any nine given digits turn up by chance once in ~10**7 draws)


@settings(max_examples=150, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    other_key=st.binary(min_size=32, max_size=32),
    convenants=st.lists(convenant_ids, min_size=2, max_size=2, unique=True),
    bsns=st.lists(valid_bsns, min_size=1, max_size=40, unique=True),
    kids=st.tuples(st.text(max_size=10), st.text(max_size=10)),
)
def test_pseudonyms_are_stable_unlinkable_collision_free_and_never_show_the_bsn(
    key: bytes, other_key: bytes, convenants: list[str], bsns: list[str], kids: tuple[str, str]
) -> None:
    """Same key, convenant and BSN: the same pseudonym from any new object (the key id is only a label).
    Another convenant or another key: another pseudonym. No two BSNs share one. No encoding of a
    pseudonym shows its BSN."""
    assume(key != other_key)
    one, two = convenants
    first = [Pseudonymiser(key, one, kids[0]).pseudonymise_bsn(b) for b in bsns]
    again = [Pseudonymiser(bytes(key), str(one), kids[1]).pseudonymise_bsn(b) for b in bsns]
    assert first == again
    assert all(re.fullmatch(r"[0-9a-f]{64}", p) for p in first)
    assert len(set(first)) == len(bsns)
    other_convenant = [Pseudonymiser(key, two, kids[0]).pseudonymise_bsn(b) for b in bsns]
    other_keys = [Pseudonymiser(other_key, one, kids[0]).pseudonymise_bsn(b) for b in bsns]
    assert not set(first) & set(other_convenant)
    assert not set(first) & set(other_keys)
    assert not set(other_convenant) & set(other_keys)
    for bsn, pseudonym in zip(bsns, first, strict=True):
        for text in encodings(pseudonym):
            assert bsn not in text
        raw = bytes.fromhex(pseudonym)
        assert int(bsn).to_bytes(4, "big") not in raw and int(bsn).to_bytes(4, "little") not in raw
        # Not a plain hash of the BSN with or without the convenant: the key matters.
        for unkeyed in (bsn.encode(), f"{one}{bsn}".encode(), f"{one}\x00{bsn}".encode()):
            assert hashlib.sha256(unkeyed).hexdigest() != pseudonym


def test_pseudonyms_are_the_same_in_another_process() -> None:
    """Another Python process (another hash seed) derives the same pseudonyms from the same key."""
    key = os.urandom(32)
    bsns = [b for b in (bsn_from(p) for p in range(12_345_678, 12_346_678, 7)) if b][:60]
    here = [Pseudonymiser(key, CONVENANT, "k").pseudonymise_bsn(b) for b in bsns]
    script = (
        "import json, sys\n"
        "from keys.pseudonym import Pseudonymiser\n"
        "key, convenant, bsns = json.loads(sys.stdin.read())\n"
        "p = Pseudonymiser(bytes.fromhex(key), convenant, 'other-kid')\n"
        "print(json.dumps([p.pseudonymise_bsn(b) for b in bsns]))\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONHASHSEED": "random", "PYTHONPATH": str(root)}
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script],
        input=json.dumps([key.hex(), CONVENANT, bsns]),
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == here


def _stored_pseudonyms(app: Any) -> list[str]:
    from sqlalchemy import text

    from broker.app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT pseudonym FROM records ORDER BY submission_id, seq"))]


def _keyring_pseudonym(app: Any, bsn: str) -> str:
    with app.app_context():
        from broker.app import runtime

        return runtime.keyring().pseudonymiser(CONVENANT).pseudonymise_bsn(bsn)


# A valid BSN that starts with a zero, so dropping it is a spelling people use.
LEADING_ZERO_BSN = next(b for b in (bsn_from(p) for p in range(1_234_567, 1_300_000)) if b)
assert LEADING_ZERO_BSN.startswith("0")
ARABIC_INDIC = str.maketrans(string.digits, "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans(string.digits, "０１２３４５６７８９")
@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(lambda b: f" {b}", id="leading-space"),
        pytest.param(lambda b: f"{b} ", id="trailing-space"),
        pytest.param(lambda b: f"{b[:4]}.{b[4:6]}.{b[6:]}", id="passport-dots"),
        pytest.param(lambda b: f"{b[:3]} {b[3:6]} {b[6:]}", id="groups-of-three"),
        pytest.param(lambda b: b.lstrip("0"), id="leading-zero-dropped"),
        pytest.param(lambda b: int(b), id="json-number"),
        pytest.param(lambda b: "0" + b, id="extra-leading-zero"),
        # Digits of other scripts, and a trailing newline, once passed the shape check (\d and $).
        pytest.param(lambda b: b.translate(ARABIC_INDIC), id="arabic-indic-digits"),
        pytest.param(lambda b: b.translate(FULL_WIDTH), id="full-width-digits"),
        pytest.param(lambda b: b + "\n", id="trailing-newline"),
    ],
)
def test_a_bsn_spelled_otherwise_is_refused_or_gets_the_same_pseudonym(
    app: Any, rbl: Party, count_rows: Any, problem: Any, spell: Any
) -> None:
    """The API takes a BSN only as nine ASCII digits: any other spelling of the same number is either
    refused (422 naming the field, nothing stored) or, if it is accepted, stored under the very same
    pseudonym, so one pupil never gets two pseudonyms."""
    bsn = LEADING_ZERO_BSN
    assert rbl.submit([make_record(1, gemeente="Duiven", bsn=bsn)]).status_code == 201
    canonical = _stored_pseudonyms(app)
    assert canonical == [_keyring_pseudonym(app, bsn)]
    before = count_rows()
    response = rbl.submit([make_record(1, gemeente="Duiven", bsn=spell(bsn))])
    if response.status_code == 201:
        assert _stored_pseudonyms(app) == canonical * 2, "the same BSN got a second pseudonym"
    else:
        body = problem(response, 422)
        assert {(e["record"], e["field"]) for e in body["errors"]} == {(0, CONV.subject_id_field)}
        assert count_rows() == before


@API_SETTINGS
@given(
    bsn=valid_bsns,
    separators=st.lists(st.sampled_from([" ", ".", "-", "\t", "  "]), min_size=0, max_size=8),
    data=st.data(),
)
def test_the_inzage_lookup_ignores_separators_and_matches_the_stored_pseudonym(
    app: Any, bsn: str, separators: list[str], data: Any
) -> None:
    """The officers' lookup (review/inzage) accepts a BSN typed in groups: whatever spaces, dots and
    hyphens are typed between the digits, it finds the pseudonym the exchange stored it under, in every
    convenant, and a BSN failing the elfproef finds nothing."""
    from broker.review.forms import pseudonymise_lookup

    typed = list(bsn)
    for sep in separators:
        at = data.draw(st.integers(0, len(typed)), label="at")
        typed.insert(at, sep)
    with app.test_request_context():
        found = pseudonymise_lookup("".join(typed))
        assert found == pseudonymise_lookup(bsn)
        assert found is not None and found[CONVENANT] == _keyring_pseudonym(app, bsn)
        at = data.draw(st.integers(0, 8), label="changed digit")
        broken = bsn[:at] + str((int(bsn[at]) + data.draw(st.integers(1, 9), label="by")) % 10) + bsn[at + 1 :]
        assert pseudonymise_lookup(broken) is None


def test_a_stored_pseudonym_is_found_again_by_a_fresh_app(app: Any, app_config: dict[str, Any], rbl: Party) -> None:
    """A new app on the same database and master key (no cached keys) derives the stored pseudonyms."""
    from fixtures.app import close_log_files, initialised_app

    bsns = [make_record(n)["bsn"] for n in range(5)]
    assert rbl.submit([make_record(n, gemeente="Zevenaar") for n in range(5)]).status_code == 201
    stored = _stored_pseudonyms(app)
    close_log_files()  # the fresh app installs its own log file handler
    with initialised_app(app_config) as fresh:
        assert [_keyring_pseudonym(fresh, b) for b in bsns] == stored
    assert len(set(stored)) == 5


# -- c. Merkle proofs -------------------------------------------------------------------------------


def ref_root(leaf_hashes: list[bytes]) -> bytes:
    """MTH by RFC 6962's recursive definition, over leaf hashes."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = 1 << ((len(leaf_hashes) - 1).bit_length() - 1)
    return hash_children(ref_root(leaf_hashes[:k]), ref_root(leaf_hashes[k:]))


def flip(value: bytes, at: int, bit: int) -> bytes:
    return value[:at] + bytes([value[at] ^ (1 << bit)]) + value[at + 1 :]




def _seeded(size: int, salt: bytes) -> list[bytes]:
    """`size` distinct leaves of varying length, derived from `salt` (large trees, cheaply drawn)."""
    return [hashlib.sha256(salt + i.to_bytes(2, "big")).digest()[: i % 33] + i.to_bytes(2, "big") for i in range(size)]


# Distinct leaves: in a tree with two equal leaves, one proof can honestly serve both positions.
trees = st.one_of(
    st.lists(st.binary(max_size=48), min_size=1, max_size=300, unique=True),
    st.builds(_seeded, st.integers(1, 300), st.binary(max_size=8)),
)


@settings(max_examples=120, deadline=None)
@given(leaves=trees, data=st.data())
def test_every_inclusion_proof_verifies_and_any_alteration_fails(leaves: list[bytes], data: Any) -> None:
    """In a tree of random leaves, every leaf's proof verifies against the root; flipping any bit of the
    leaf or of a proof node, or claiming another index, or checking against another size's root, fails."""
    hashes = [hash_leaf(leaf) for leaf in leaves]
    tree, n = MerkleTree(hashes), len(hashes)
    root = tree.root()
    assert root == root_hash(hashes) == ref_root(hashes) == compute_root(n, hashes)
    proofs = [tree.prove_inclusion(i, n) for i in range(n)]
    for i, proof in enumerate(proofs):
        assert verify_inclusion(i, n, hashes[i], proof, root)

    i = data.draw(st.integers(0, n - 1), label="index")
    proof = proofs[i]
    at, bit = data.draw(st.integers(0, 31), label="byte"), data.draw(st.integers(0, 7), label="bit")
    assert not verify_inclusion(i, n, flip(hashes[i], at, bit), proof, root)
    changed = data.draw(st.binary(max_size=48).filter(lambda b: b != leaves[i]), label="other leaf")
    assert not verify_inclusion(i, n, hash_leaf(changed), proof, root)
    assert not verify_inclusion(i, n, leaves[i].ljust(32, b"\0")[:32], proof, root)  # the leaf, not its hash
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="sibling")
        bad = list(proof)
        bad[position] = flip(bad[position], at, bit)
        assert not verify_inclusion(i, n, hashes[i], bad, root)
        if proof[::-1] != proof:
            assert not verify_inclusion(i, n, hashes[i], proof[::-1], root)
    other = data.draw(st.integers(-2, n + 2).filter(lambda j: j != i), label="wrong index")
    assert not verify_inclusion(other, n, hashes[i], proof, root)
    if 0 <= other < n:
        assert not verify_inclusion(other, n, hashes[other], proof, root)
    # Another size: the proof is not one for that tree (its root differs from every other size's).
    size = data.draw(st.integers(i + 1, n + 40).filter(lambda m: m != n), label="wrong size")
    grown = MerkleTree(hashes + [hash_leaf(b"%d" % k) for k in range(max(0, size - n))])
    assert not verify_inclusion(i, size, hashes[i], proof, grown.root(size))
    assert not verify_inclusion(i, n, hashes[i], proof, flip(root, at, bit))


@settings(max_examples=120, deadline=None)
@given(leaves=trees, data=st.data())
def test_every_consistency_proof_verifies_and_an_altered_old_root_fails(leaves: list[bytes], data: Any) -> None:
    """Between every earlier size m and the tree's size n the consistency proof verifies; with the old
    or new root altered, a proof node altered, or another old size claimed, it fails."""
    hashes = [hash_leaf(leaf) for leaf in leaves]
    tree, n = MerkleTree(hashes), len(hashes)
    roots = [tree.root(m) for m in range(n + 1)]
    assert roots[0] == EMPTY_ROOT
    olds = range(0, n + 1) if n <= 80 else sorted(set(data.draw(st.lists(st.integers(0, n), min_size=40,
                                                                       max_size=60), label="olds")) | {0, 1, n})
    for m in olds:
        proof = tree.prove_consistency(m, n)
        assert verify_consistency(m, n, roots[m], roots[n], proof), m
        if m in (0, n):
            assert proof == []
        at, bit = data.draw(st.integers(0, 31), label="byte"), data.draw(st.integers(0, 7), label="bit")
        assert not verify_consistency(m, n, flip(roots[m], at, bit), roots[n], proof)
        if m:  # the empty tree is a prefix of every tree, whatever its root
            assert not verify_consistency(m, n, roots[m], flip(roots[n], at, bit), proof)
        for position in range(len(proof)):
            bad = list(proof)
            bad[position] = flip(bad[position], at, bit)
            assert not verify_consistency(m, n, roots[m], roots[n], bad)
        for other in (m - 1, m + 1):
            if 0 <= other <= n and tree.prove_consistency(other, n) != proof:  # [] is the proof from 0 and n
                assert not verify_consistency(other, n, roots[other], roots[n], proof), (m, other)
                assert not verify_consistency(other, n, roots[m], roots[n], proof), (m, other)
    # A tree that is not an extension of the old one is not consistent with it.
    m = data.draw(st.integers(1, n), label="m")
    at = data.draw(st.integers(0, m - 1), label="changed leaf")
    forked = MerkleTree(hashes[:at] + [flip(hashes[at], 0, 0)] + hashes[at + 1 :])
    assert not verify_consistency(m, n, roots[m], forked.root(n), forked.prove_consistency(m, n))
    assert not verify_consistency(m, n, forked.root(m), roots[n], tree.prove_consistency(m, n))


@settings(max_examples=60, deadline=None)
@given(leaves=trees, cuts=st.lists(st.integers(1, 300), max_size=6))
def test_a_tree_grown_in_batches_serves_the_same_roots_and_proofs_from_its_stored_nodes(
    leaves: list[bytes], cuts: list[int]
) -> None:
    """Appending in random batches and keeping only the nodes each append reports gives the same
    roots and proofs, for every size, as a tree built at once."""
    hashes = [hash_leaf(leaf) for leaf in leaves]
    whole, n = MerkleTree(hashes), len(hashes)

    class Store:
        def __init__(self) -> None:
            self.nodes: dict[tuple[int, int], bytes] = {}

        def get_node(self, level: int, index: int) -> bytes:
            return self.nodes[level, index]

    store, grown, start = Store(), MerkleTree(), 0
    for cut in [*sorted({c for c in cuts if c < n}), n]:
        grown.extend(hashes[start:cut])
        for level, index, node in grown.list_new_nodes(start):
            assert store.nodes.setdefault((level, index), node) == node  # a stored node never changes
        start = cut
        assert compute_root(cut, store) == whole.root(cut) == ref_root(hashes[:cut])
    assert len(store.nodes) == sum(n >> level for level in range(n.bit_length()))
    for size in {1, n // 2 or 1, n}:
        for index in {0, size // 2, size - 1}:
            assert prove_inclusion(index, size, store) == whole.prove_inclusion(index, size)
            assert prove_consistency(index + 1, size, store) == whole.prove_consistency(index + 1, size)
