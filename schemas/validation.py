"""Turn a convenant definition into marshmallow schemas and validate records against them.

Every rule here is generic: which fields exist, which category allows which field, which gemeenten
are in the werkgebied and which free text is screened all come from the convenant file.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import marshmallow as ma
from stdnum.nl import bsn as stdnum_bsn

from schemas.convenant import Category, Convenant, FieldSpec
from schemas.screening import Lexicon, load_default_lexicon

# The reference date for "not in the future" and age checks; set per validation run.
_today: contextvars.ContextVar[dt.date] = contextvars.ContextVar("today")

POSTCODE = re.compile(r"([1-9][0-9]{3}) ?([A-Z]{2})")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# ASCII digits only (\d would take any script's digits) and nothing after them ($ allows a "\n").
BSN_SHAPE = re.compile(r"(?!0{9})[0-9]{9}")
# Control characters other than tab and line breaks: never part of a name, an address or a note.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A name a caller made up (a JSON key, a CSV column) is echoed in an error only when it is a plain
# identifier: anything else may be data typed where a name belongs (a header of "111222333 Noah"),
# so it is named by its position instead (`veld 3`, `kolom 17`), which is echoed as it stands.
PLAIN_NAME = re.compile(r"[a-z_]{1,40}")
POSITION_NAME = re.compile(r"(?:veld|kolom) [1-9][0-9]{0,6}")


def reported_name(name: object, position: int, word: str = "veld") -> str:
    """How an error names a key the caller sent: the key if it is a plain identifier, else
    `<word> <position>` (1-based)."""
    if isinstance(name, str) and (PLAIN_NAME.fullmatch(name) or POSITION_NAME.fullmatch(name)):
        return name
    return f"{word} {position}"


def key_position(data: object, key: object) -> int:
    """The 1-based position of `key` among the keys of `data` (0 if it is not there)."""
    if isinstance(data, Mapping):
        for position, candidate in enumerate(data, 1):
            if candidate == key:
                return position
    return 0


class Coded(str):
    """A validation message that carries a machine-readable rule code."""

    code: str

    def __new__(cls, code: str, text: str) -> Coded:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj


@dataclass(frozen=True)
class Violation:
    """One broken rule: which record, which field, which rule, and a message for people."""

    record: int
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "code": self.code, "message": self.message}


MESSAGES = {
    "required": "Dit veld is verplicht.",
    "null": "Dit veld mag niet leeg (null) zijn.",
    "invalid": "Ongeldige waarde.",
    "invalid_type": "Verwacht een tekst (string).",
    "too_long": "De tekst is langer dan {max} tekens.",
    "empty": "Dit veld mag niet leeg zijn.",
    "invalid_format": "De waarde heeft niet het voorgeschreven formaat.",
    "invalid_bsn": "Geen geldig burgerservicenummer: 9 cijfers die aan de elfproef voldoen.",
    "invalid_date": "Geen geldige datum; gebruik JJJJ-MM-DD.",
    "future_date": "De datum ligt in de toekomst.",
    "invalid_postcode": "Geen geldige Nederlandse postcode (1234 AB).",
    "outside_werkgebied": "De gemeente ligt niet in het werkgebied van het convenant.",
    "invalid_choice": "Kies een van: {choices}.",
    "invalid_object": "Verwacht een object met velden.",
    "invalid_character": "De tekst bevat een stuurteken (zoals NUL); alleen gewone tekst is toegestaan.",
}


class CodedField(ma.fields.Field):
    """A field whose errors carry a rule code and a Dutch message."""

    def make_error(self, key: str, **kwargs: Any) -> ma.ValidationError:
        code = {"invalid": "invalid_type"}.get(key, key) if isinstance(self, Text) else key
        text = MESSAGES.get(code, MESSAGES["invalid"]).format(**kwargs)
        return ma.ValidationError(Coded(code, text))


class Text(CodedField):
    """A string, optionally bounded, patterned and screened for forbidden content."""

    def __init__(
        self,
        *,
        max_length: int | None = None,
        pattern: str | None = None,
        screen: str | None = None,
        screen_exempt: tuple[str, ...] = (),
        lexicon: Lexicon | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.pattern = re.compile(pattern) if pattern else None
        self.screen = screen
        self.lexicon = lexicon
        self._screen_text = None
        if screen and lexicon is not None:
            # "full", "bsn" or a lexicon context ("naam", "adres"); an unknown level is a LexiconError.
            self._screen_text = lexicon.screener(screen, screen_exempt)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        value = value.strip()
        if not value:
            raise self.make_error("empty")
        if self.max_length is not None and len(value) > self.max_length:
            raise self.make_error("too_long", max=self.max_length)
        if CONTROL.search(value):
            raise self.make_error("invalid_character")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self.make_error("invalid_format")
        if self._screen_text is not None:
            findings = self._screen_text(value)
            if findings:
                # The message comes from the lexicon and never repeats a number it found.
                raise ma.ValidationError([Coded(f"forbidden_content.{f.category}", f.message) for f in findings])
        return value


class Bsn(CodedField):
    """A burgerservicenummer: exactly nine digits passing the elfproef (never echoed)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        # The shape check leaves stdnum only the elfproef itself (its checksum must be 0).
        if not isinstance(value, str) or not BSN_SHAPE.fullmatch(value) or stdnum_bsn.checksum(value) != 0:
            raise self.make_error("invalid_bsn")
        return value


class Date(CodedField):
    """An ISO 8601 calendar date (JJJJ-MM-DD), optionally not after today.

    The value stays the validated string: ISO dates order correctly as text, and records are
    stored as JSON.
    """

    def __init__(self, *, not_future: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.not_future = not_future

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            raise self.make_error("invalid_date")
        try:
            date = dt.date.fromisoformat(value)
        except ValueError as e:
            raise self.make_error("invalid_date") from e
        if self.not_future and date > _today.get():
            raise self.make_error("future_date")
        return value


class Postcode(CodedField):
    """A Dutch postcode, normalised to `1234 AB`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        match = POSTCODE.fullmatch(value.strip().upper()) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid_postcode")
        return f"{match[1]} {match[2]}"


class Gemeente(CodedField):
    """A gemeente in the convenant's werkgebied, spelled as the convenant spells it."""

    def __init__(self, *, convenant: Convenant, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.convenant = convenant

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid_type")
        canonical = self.convenant.canonical_gemeente(value)
        if canonical is None:
            raise self.make_error("outside_werkgebied")
        return canonical


class Choice(CodedField):
    """One of a fixed list of values."""

    def __init__(self, *, choices: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if value not in self.choices:
            raise self.make_error("invalid_choice", choices=", ".join(self.choices))
        return str(value)


class Object(CodedField, ma.fields.Nested):
    """A nested object whose own fields are validated and whose unknown fields are refused."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, partial: Any = None, **kwargs: Any
    ) -> Any:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid_object")
        return super()._deserialize(value, attr, data, partial=partial, **kwargs)


class RecordSchema(ma.Schema):
    """Base for the per-category record schemas; cross-field rules come from the convenant."""

    convenant_spec: Convenant
    category_spec: Category
    date_order: tuple[tuple[str, str], ...] = ()

    class Meta:
        unknown = ma.RAISE

    @ma.validates_schema(skip_on_field_errors=True)
    def check_cross_field_rules(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for later, earlier in self.date_order:
            if later in data and earlier in data and data[later] <= data[earlier]:
                errors.setdefault(later, []).append(Coded("date_order", f"De datum moet na {earlier} liggen."))
        birth_field = self.convenant_spec.birth_date_field
        reference = self.category_spec.age_reference
        if birth_field and reference and birth_field in data and reference in data:
            age = _age(dt.date.fromisoformat(data[birth_field]), dt.date.fromisoformat(data[reference]))
            low, high = self.convenant_spec.min_age, self.convenant_spec.max_age
            if not low <= age < high:
                errors.setdefault(birth_field, []).append(
                    Coded(
                        "age_implausible",
                        f"Leeftijd {age} op {reference} past niet bij de leerplicht ({low} tot {high} jaar).",
                    )
                )
        if errors:
            raise ma.ValidationError(errors)


def _age(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _unknown_message(category: Category) -> Coded:
    return Coded(
        "not_allowed",
        f"Het convenant staat dit veld niet toe bij categorie {category.id!r} (Bijlage 1).",
    )


class RecordValidator:
    """Validate records of one convenant, one marshmallow schema per category."""

    def __init__(self, convenant: Convenant, lexicon: Lexicon | None = None) -> None:
        self.convenant = convenant
        self.lexicon = lexicon or load_default_lexicon()
        # The names the convenant defines: errors name them as they are, whatever they look like.
        self.known_names = frozenset(
            {"category", *convenant.fields, *(sub.name for spec in convenant.fields.values() for sub in spec.fields)}
        )

    def _field(self, spec: FieldSpec, required: bool, category: Category) -> ma.fields.Field:
        common: dict[str, Any] = {"required": required, "allow_none": False}
        match spec.type:
            case "bsn":
                return Bsn(**common)
            case "date":
                return Date(not_future=spec.not_future, **common)
            case "postcode":
                return Postcode(**common)
            case "gemeente":
                return Gemeente(convenant=self.convenant, **common)
            case "enum":
                return Choice(choices=spec.choices, **common)
            case "object":
                inner = {sub.name: self._field(sub, True, category) for sub in spec.fields}
                nested = type(
                    f"{spec.name.title()}Schema",
                    (ma.Schema,),
                    {**inner, "Meta": type("Meta", (), {"unknown": ma.RAISE})},
                )
                schema = nested()
                schema.error_messages = {**schema.error_messages, "unknown": _unknown_message(category)}
                return Object(schema, **common)
            case _:
                return Text(
                    max_length=spec.max_length,
                    pattern=spec.pattern,
                    screen=spec.screen,
                    screen_exempt=spec.screen_exempt,
                    lexicon=self.lexicon,
                    **common,
                )

    @cached_property
    def schemas(self) -> dict[str, ma.Schema]:
        """Return one schema instance per category of the convenant."""
        schemas: dict[str, ma.Schema] = {}
        for category in self.convenant.categories.values():
            fields: dict[str, Any] = {"category": Choice(choices=[category.id], required=True)}
            for name in category.field_names:
                spec = self.convenant.fields[name]
                fields[name] = self._field(spec, name not in category.optional, category)
            date_order = tuple(
                (name, self.convenant.fields[name].after)
                for name in category.field_names
                if self.convenant.fields[name].after in category.field_names
            )
            cls = type(
                f"{category.id.title().replace('_', '')}Schema",
                (RecordSchema,),
                {
                    **fields,
                    "convenant_spec": self.convenant,
                    "category_spec": category,
                    "date_order": date_order,
                },
            )
            schema = cls()
            schema.error_messages = {**schema.error_messages, "unknown": _unknown_message(category)}
            schemas[category.id] = schema
        return schemas

    def validate(self, records: Iterable[Any], today: dt.date) -> tuple[list[dict[str, Any]], list[Violation]]:
        """Validate records; return the normalised records and every violation found."""
        token = _today.set(today)
        try:
            valid: list[dict[str, Any]] = []
            violations: list[Violation] = []
            schemas = self.schemas
            for index, record in enumerate(records):
                if not isinstance(record, Mapping):
                    violations.append(Violation(index, "", "invalid_record", "Een record is een object."))
                    continue
                category = record.get("category")
                schema = schemas.get(category) if isinstance(category, str) else None
                if schema is None:
                    violations.append(
                        Violation(
                            index,
                            "category",
                            "unknown_category",
                            "Onbekende categorie; het convenant kent: " + ", ".join(self.convenant.categories) + ".",
                        )
                    )
                    continue
                loaded = _load_clean(schema, record)
                if loaded is not None:
                    valid.append(loaded)
                    continue
                try:
                    valid.append(schema.load(record))
                except ma.ValidationError as e:
                    violations.extend(_flatten(index, e.messages, record, self.known_names))
            return valid, violations
        finally:
            _today.reset(token)


def _load_clean(schema: ma.Schema, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Load a record through the schema's own fields and rules, or return None at the first error.

    marshmallow's per-record bookkeeping dominates a 100,000-record list, while almost every
    record is clean. This runs the very same field objects and cross-field rules without that
    bookkeeping; any error, unknown key or missing field sends the record to `schema.load`, which
    then reports every violation. It never accepts what `schema.load` would refuse (a property
    test holds it to that).
    """
    plan = _plan(schema)
    if not record.keys() <= plan.names:
        return None
    out: dict[str, Any] = {}
    try:
        for name, field, nested, required in plan.steps:
            value = record.get(name)
            if value is None:
                if required or name in record:
                    return None
                continue
            if nested is not None:
                if not isinstance(value, Mapping):
                    return None
                value = _load_clean(nested, value)
                if value is None:
                    return None
                out[name] = value
            else:
                # Every record field is a CodedField without extra validators, so its own
                # _deserialize is the whole rule.
                out[name] = field._deserialize(value, name, record)
        if isinstance(schema, RecordSchema):
            schema.check_cross_field_rules(out)
    except ma.ValidationError:
        return None
    return out


@dataclass(frozen=True)
class _Plan:
    names: frozenset[str]
    steps: tuple[tuple[str, ma.fields.Field, ma.Schema | None, bool], ...]


def _plan(schema: ma.Schema) -> _Plan:
    plan: _Plan | None = getattr(schema, "_clean_plan", None)
    if plan is None:
        fields = schema.load_fields
        plan = _Plan(
            frozenset(fields),
            tuple(
                (name, f, f.schema if isinstance(f, Object) else None, bool(f.required)) for name, f in fields.items()
            ),
        )
        schema._clean_plan = plan  # type: ignore[attr-defined]
    return plan


def _flatten(record: int, messages: Any, data: Any, known: frozenset[str], prefix: str = "") -> Iterable[Violation]:
    """The violations in marshmallow's `messages` about the record (part) `data`.

    A key the convenant does not define is named as `reported_name` says: by its position in
    `data` unless it is a plain identifier.
    """
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                # A nested schema's own error belongs to the object field itself.
                yield from _flatten(record, value, data, known, prefix)
                continue
            name = str(key) if key in known or isinstance(key, int) else reported_name(key, key_position(data, key))
            child = data.get(key) if isinstance(data, Mapping) else None
            yield from _flatten(record, value, child, known, f"{prefix}.{name}" if prefix else name)
    elif isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, Mapping | list | tuple):
                yield from _flatten(record, message, data, known, prefix)
            else:
                yield Violation(record, prefix, getattr(message, "code", "invalid"), str(message))
    else:
        yield Violation(record, prefix, getattr(messages, "code", "invalid"), str(messages))
