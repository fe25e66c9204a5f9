"""Turn a convenant definition into marshmallow schemas and validate records against them.

Every rule here is generic: which fields exist, which category allows which field, which gemeenten
are in the werkgebied and which free text is screened all come from the convenant file. The fields
themselves are in `schemas.fields`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import marshmallow as ma

from schemas.convenant import Category, Convenant, FieldSpec
from schemas.fields import (
    Bsn,
    Choice,
    Coded,
    Date,
    Gemeente,
    Object,
    Postcode,
    Text,
    Violation,
    key_position,
    reference_day,
    reported_name,
)
from schemas.screening import Lexicon, load_default_lexicon


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
        token = reference_day.set(today)
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
            reference_day.reset(token)


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
