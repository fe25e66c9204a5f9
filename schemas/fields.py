"""The marshmallow fields of a record: each error carries a rule code and a Dutch message.

Text (screened as its field says), BSN (elfproef), dates (real, not in the future), postcode,
gemeente (in the werkgebied), choices and nested objects; and how an error names a key the caller
made up (`reported_name`). The record schemas built from them are in `schemas.validation`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from stdnum.nl import bsn as stdnum_bsn

from schemas.convenant import Convenant
from schemas.screening import Lexicon

# The reference date for "not in the future" and age checks; set per validation run.
reference_day: contextvars.ContextVar[dt.date] = contextvars.ContextVar("today")

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
        if self.not_future and date > reference_day.get():
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
