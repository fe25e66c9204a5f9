"""The parts of a screening lexicon (a category of terms, a context of allowed names) and what
screening reports (a finding)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One category found in a text.

    ``term`` is the matched text as it appears in the input, except for BSN-looking numbers,
    where it is always ``"<bsn>"`` so the number is never copied into logs or error messages.
    """

    category: str
    term: str
    message: str


@dataclass(frozen=True)
class Category:
    """A lexicon category as loaded from the data file."""

    id: str
    label: str
    legal_basis: str
    message: str
    terms: tuple[str, ...]
    terms_case_sensitive: tuple[str, ...]
    detector: str | None = None
    fuzzy: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """Where a field's text is not free prose (names, addresses): matches that are allowed there.

    ``allow`` holds regex fragments; a match of a category term that one of them matches as a
    whole (case-insensitively) is not a finding in this context ("van der Kerk", "Pastoor
    Bottemastraat", "Politiekade").
    """

    id: str
    description: str
    allow: tuple[str, ...]
