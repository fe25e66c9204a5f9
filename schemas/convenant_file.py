"""Reading convenant files: a TOML definition parsed into a `Convenant` and checked, every rule
refused with a `ConvenantError` that names the file's key."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

from schemas.convenant import (
    FIELD_TYPES,
    TEXT_TYPES,
    BreachRules,
    Category,
    Convenant,
    ConvenantError,
    EndingReason,
    FieldSpec,
    Item,
    Party,
    QuarterDates,
    Quarterly,
    RetentionRules,
    RoutingRule,
)

DEFAULT_DIR = Path(__file__).parent / "convenants"


def _field_spec(name: str, data: dict[str, Any]) -> FieldSpec:
    kind = data.get("type")
    if kind not in FIELD_TYPES:
        raise ConvenantError(f"field {name!r}: unknown type {kind!r}")
    subfields = tuple(_field_spec(k, v) for k, v in data.get("fields", {}).items())
    pattern = data.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConvenantError(f"field {name!r}: pattern is not a regular expression: {e}") from e
    if kind == "object" and not subfields:
        raise ConvenantError(f"field {name!r}: an object needs fields")
    if kind == "enum" and not data.get("choices"):
        raise ConvenantError(f"field {name!r}: an enum needs choices")
    max_length = data.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1):
        raise ConvenantError(f"field {name!r}: max_length must be a whole number of characters, 1 or more")
    if kind in TEXT_TYPES and max_length is None:
        # Every text a party can type is bounded: longer is a 422 naming record and field.
        raise ConvenantError(f"field {name!r}: a {kind} field needs max_length")
    screen = data.get("screen")
    if screen is not None and (not isinstance(screen, str) or not screen):
        raise ConvenantError(f"field {name!r}: screen must be 'full', 'bsn' or the name of a lexicon context")
    screen_exempt = data.get("screen_exempt", [])
    if not isinstance(screen_exempt, list) or not all(isinstance(c, str) and c for c in screen_exempt):
        raise ConvenantError(f"field {name!r}: screen_exempt must be a list of lexicon category ids")
    if screen_exempt and not screen:
        raise ConvenantError(f"field {name!r}: screen_exempt without screen")
    return FieldSpec(
        name=name,
        type=kind,
        label=data.get("label", name),
        max_length=max_length,
        pattern=data.get("pattern"),
        choices=tuple(data.get("choices", ())),
        not_future=bool(data.get("not_future", False)),
        after=data.get("after"),
        screen=screen,
        screen_exempt=tuple(screen_exempt),
        fields=subfields,
    )


def _category(cid: str, data: dict[str, Any], fields: dict[str, FieldSpec]) -> Category:
    items = tuple(Item(item=i["item"], fields=tuple(i["fields"]), reason=i["reason"]) for i in data.get("items", ()))
    if not items:
        raise ConvenantError(f"category {cid!r}: no items")
    names = [n for item in items for n in item.fields]
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise ConvenantError(f"category {cid!r}: undefined fields {unknown}")
    optional = frozenset(data.get("optional", ()))
    if not optional <= set(names):
        raise ConvenantError(f"category {cid!r}: optional fields not in its items")
    age_reference = data.get("age_reference")
    if age_reference is not None and age_reference not in names:
        raise ConvenantError(f"category {cid!r}: age_reference {age_reference!r} not in items")
    return Category(
        id=cid,
        label=data.get("label", cid),
        definition=data.get("definition", ""),
        items=items,
        optional=optional,
        age_reference=age_reference,
    )


def parse_convenant(data: dict[str, Any], digest: str = "") -> Convenant:
    """Build a Convenant from the parsed contents of a definition file."""
    try:
        fields = {k: _field_spec(k, v) for k, v in data["fields"].items()}
        categories = {k: _category(k, v, fields) for k, v in data["categories"].items()}
        parties = tuple(
            Party(
                id=p["id"],
                name=p["name"],
                role=p["role"],
                werkgebied=_strings(p.get("werkgebied", []), f"party {p['id']!r} werkgebied"),
                provides=frozenset(_strings(p.get("provides", []), f"party {p['id']!r} provides")),
            )
            for p in data["parties"]
        )
        routing = tuple(RoutingRule(r["from_role"], r["to_role"]) for r in data.get("routing", ()))
        reasons = tuple(
            EndingReason(id=r["id"], code=r.get("code", r["id"]), text=r["text"])
            for r in data.get("ending_reasons", ())
        )
        leerplicht = data.get("leerplicht", {})
        convenant = Convenant(
            id=data["id"],
            version=str(data["version"]),
            title=data["title"],
            parties=parties,
            categories=MappingProxyType(categories),
            fields=MappingProxyType(fields),
            routing=routing,
            ending_reasons=reasons,
            subject_id_field=data["subject_id_field"],
            gemeente_field=data["gemeente_field"],
            birth_date_field=leerplicht.get("birth_date_field"),
            min_age=int(leerplicht.get("min_age", 0)),
            max_age=int(leerplicht.get("max_age", 200)),
            digest=digest,
            raw=MappingProxyType(data),
            quarterly=_quarterly(data.get("quarterly")),
            breach=_breach(data.get("breach")),
            retention=_retention(data.get("retention")),
        )
    except KeyError as e:
        raise ConvenantError(f"missing key {e}") from e
    for party in parties:
        unknown = party.provides - categories.keys()
        if unknown:
            raise ConvenantError(f"party {party.id!r} provides unknown categories {sorted(unknown)}")
    if len({p.id for p in parties}) != len(parties):
        raise ConvenantError("duplicate party ids")
    if convenant.quarterly is not None:
        unknown_roles = set(convenant.quarterly.required_roles) - {p.role for p in parties}
        if unknown_roles:
            raise ConvenantError(f"quarterly required_roles names no party's role: {sorted(unknown_roles)}")
    for key in ("subject_id_field", "gemeente_field"):
        if _resolve(fields, data[key]) is None:
            raise ConvenantError(f"{key} {data[key]!r} names no field")
    for spec in fields.values():
        if spec.after is not None and spec.after not in fields:
            raise ConvenantError(f"field {spec.name!r}: after {spec.after!r} names no field")
    birth = convenant.birth_date_field
    if birth is not None and birth not in fields:
        raise ConvenantError(f"birth_date_field {birth!r} names no field")
    return convenant


QUARTER_ID = re.compile(r"^\d{4}-Q[1-4]$")


def _date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as e:
        raise ConvenantError(f"{what}: not a date (JJJJ-MM-DD)") from e


def _quarterly(data: dict[str, Any] | None) -> Quarterly | None:
    """Parse the `[quarterly]` section: required roles, reminder lead time and the calendar."""
    if data is None:
        return None
    calendar = []
    for entry in data.get("calendar", ()):
        quarter = entry["quarter"]
        if not isinstance(quarter, str) or not QUARTER_ID.match(quarter):
            raise ConvenantError(f"quarterly calendar: {quarter!r} is not a quarter like 2026-Q4")
        peildatum = _date(entry["peildatum"], f"quarter {quarter} peildatum")
        deadline = _date(entry["deadline"], f"quarter {quarter} deadline")
        if deadline < peildatum:
            raise ConvenantError(f"quarter {quarter}: deadline before peildatum")
        calendar.append(QuarterDates(quarter, peildatum, deadline))
    if len({q.quarter for q in calendar}) != len(calendar):
        raise ConvenantError("quarterly calendar: a quarter is listed twice")
    days = data.get("reminder_days_before", 0)
    if not isinstance(days, int) or days < 0:
        raise ConvenantError("quarterly reminder_days_before must be a whole number of days")
    return Quarterly(
        required_roles=_strings(data.get("required_roles", []), "quarterly required_roles"),
        reminder_days_before=days,
        calendar=tuple(calendar),
    )


def _breach(data: dict[str, Any] | None) -> BreachRules | None:
    """Parse the `[breach]` section: hours to inform the other parties and to decide about the AP."""
    if data is None:
        return None
    hours = {}
    for key in ("notify_within_hours", "ap_within_hours"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConvenantError(f"breach {key} must be a positive whole number of hours")
        hours[key] = dt.timedelta(hours=value)
    return BreachRules(
        notify_within=hours["notify_within_hours"],
        notify_source=str(data.get("notify_source", "")),
        ap_within=hours["ap_within_hours"],
        ap_source=str(data.get("ap_source", "")),
        required_facts=_strings(data.get("required_facts", []), "breach required_facts"),
    )


def _retention(data: dict[str, Any] | None) -> RetentionRules | None:
    """Parse the `[retention]` section; the words it accepts are the only policies the broker knows."""
    if data is None:
        return None
    days = {}
    for key in ("delivery_days_after_ack", "delivery_max_days"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConvenantError(f"retention {key} must be a whole number of days, 0 or more")
        days[key] = dt.timedelta(days=value)
    if days["delivery_max_days"] < days["delivery_days_after_ack"]:
        raise ConvenantError("retention delivery_max_days must not be shorter than delivery_days_after_ack")
    lists = data.get("quarterly_lists", "until_next_match")
    ended = data.get("ended_cases", "immediately")
    if lists != "until_next_match":
        raise ConvenantError('retention quarterly_lists must be "until_next_match"')
    if ended != "immediately":
        raise ConvenantError('retention ended_cases must be "immediately"')
    return RetentionRules(
        delivery_after_ack=days["delivery_days_after_ack"],
        delivery_max=days["delivery_max_days"],
        lists_until_next_match=True,
        ended_immediately=True,
        source=str(data.get("source", "")),
    )


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConvenantError(f"{what} must be a list of strings")
    return tuple(value)


def _resolve(fields: dict[str, FieldSpec], path: str) -> FieldSpec | None:
    """Return the field a dotted path such as `adres.gemeente` names, or None."""
    head, _, rest = path.partition(".")
    spec = fields.get(head)
    if spec is None or not rest:
        return spec
    return _resolve({f.name: f for f in spec.fields}, rest)


def load_convenant(path: str | Path) -> Convenant:
    """Load one convenant definition file (TOML)."""
    raw = Path(path).read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConvenantError(f"{path}: {e}") from e
    return parse_convenant(data, digest="sha256:" + hashlib.sha256(raw).hexdigest())


def load_convenants(directory: str | Path = DEFAULT_DIR) -> dict[str, Convenant]:
    """Load every `*.toml` convenant in `directory`, keyed by convenant id."""
    convenants: dict[str, Convenant] = {}
    for path in sorted(Path(directory).glob("*.toml")):
        convenant = load_convenant(path)
        if convenant.id in convenants:
            raise ConvenantError(f"{path}: duplicate convenant id {convenant.id!r}")
        convenants[convenant.id] = convenant
    return convenants
