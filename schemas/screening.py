"""Screening of free-text fields for data that must not travel through the broker.

The convenant asks parties to describe reasons and circumstances "in algemene bewoordingen".
This module flags free text that (probably) contains

* special categories of personal data (AVG art. 9: health, religion, ethnicity, sexual
  orientation, political opinion, union membership, genetic and biometric data),
* criminal-law and police data (AVG art. 10, Wpg),
* data the convenant marks as stigmatising (Samenwerkingsovereenkomst, Bijlage 2),
* numbers that look like a BSN (burgerservicenummer).

The words live in a data file (``schemas/lexicon/bijzondere_gegevens.toml``), not in code. Each
category holds regex fragments; the fragments of a category are compiled into one
case-insensitive alternation with word boundaries (two when the category also has compound
terms such as ``\\w*stoornis``); case-sensitive fragments, e.g. ``OM`` for the Openbaar
Ministerie, are embedded with a scoped ``(?-i:...)``.

Speed: ``screen`` runs on every free-text field of lists with 100,000 records, and almost all
texts are clean. When the lexicon is loaded every fragment gets a *trigger*: the longest literal
word that every match must start a word with (``'in behandeling voor'`` -> ``behandeling``), or,
for compounds such as ``\\w*stoornis``, a literal that every match must contain. All triggers
are compiled into one character-trie regex (plus one for case-sensitive triggers and one for the
"contains" literals). ``screen`` runs those over the text first (the fast path, a few
microseconds); only categories with a fired trigger then run their own regex, so a clean text
never touches a category regex. The prefilter is exact in one direction: it can let a category
through that then does not match, but never skips one that would. A fragment without a usable
trigger is rejected when the lexicon is loaded.

The category regexes are factored on the first characters of their terms (``a(?:b(?:...)|...)``
instead of a flat list of several hundred alternatives), which keeps them fast on the slow path.

Evasion: the text is matched as normalised by :mod:`schemas.normalise` (NFKC, format characters
and combining marks removed, look-alike letters folded to Latin), and again in each variant with
its disguises undone (single letters joined, separators inside words dropped, digits read as
letters); lexicon terms are folded the same way when they are loaded. The categories' ``fuzzy``
words are looked up with a typo (:mod:`schemas.fuzzy`), and BSN-looking numbers are found with
any separator between their digit groups (:mod:`schemas.bsn_scan`).

Fields that are not free prose use a *context* of the lexicon (``[context.naam]``,
``[context.adres]``): every category is screened, but a match that one of the context's allow
patterns covers as a whole (the surname Van der Kerk, the Pastoor Bottemastraat) is not a
finding. A field can also be exempt from categories (a school's name may carry its
denomination); both come from the convenant file through :meth:`Lexicon.screener`.

This module does not import Flask; it is a plain library used by the validators.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from schemas.bsn_scan import contains_bsn
from schemas.fuzzy import FuzzyIndex
from schemas.normalise import fold, undo_disguises
from schemas.terms import Category, Context, Finding
from schemas.trie import trie_regex as _trie_regex
from schemas.triggers import LexiconError, factorized, prefix_closure, split_alternatives, trigger

__all__ = [
    "BSN_CATEGORY",
    "BSN_TERM",
    "Category",
    "Context",
    "Finding",
    "Lexicon",
    "LexiconError",
    "load_default_lexicon",
]

#: Category id used for BSN-looking numbers when the lexicon does not name one.
BSN_CATEGORY = "bsn"
#: What a BSN finding reports as its ``term``: the number itself is never repeated.
BSN_TERM = "<bsn>"

#: The lexicon's top-level table that holds the screening contexts, not a category.
CONTEXT_KEY = "context"

_DEFAULT_LEXICON = Path(__file__).parent / "lexicon" / "bijzondere_gegevens.toml"

_DEFAULT_BSN = Category(
    id=BSN_CATEGORY,
    label="Burgerservicenummer",
    legal_basis="UAVG art. 46 / Wabb",
    message=(
        "De tekst bevat een nummer dat op een BSN lijkt. Een BSN hoort niet in een toelichting."
    ),
    terms=(),
    terms_case_sensitive=(),
    detector="bsn",
)


# -- the lexicon ----------------------------------------------------------------------------------


def _require_str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LexiconError(f"[{where}] needs a non-empty string {key!r}")
    return value


def _str_list(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise LexiconError(f"[{where}] {key!r} must be a list of non-empty strings")
    # Terms are folded like the text they are matched against (schemas/normalise.py): an "ï" in
    # a term is an "i", as it is in the folded text.
    return tuple(fold(unicodedata.normalize("NFC", v)) for v in value)


# Terms are pasted into one pattern per category: their group numbers shift, so named groups and
# backreferences would break, and global inline flags such as (?i) are only valid at the start.
_FORBIDDEN_IN_TERMS = re.compile(r"\(\?P|\\[1-9]|\(\?[aiLmsux]+\)")


class _Prefilter:
    """Literal triggers of one kind, compiled into a single trie regex."""

    def __init__(self, runs: Mapping[str, set[str]], pattern: str, flags: int = 0) -> None:
        self.closure = prefix_closure(runs)
        self.pattern = re.compile(pattern, flags) if runs else None


class Lexicon:
    """A compiled lexicon. Build it with :meth:`from_file` or :meth:`from_mapping`."""

    def __init__(self, categories: Iterable[Category], contexts: Iterable[Context] = ()) -> None:
        self._categories: tuple[Category, ...] = tuple(categories)
        ids = [c.id for c in self._categories]
        if len(set(ids)) != len(ids):
            raise LexiconError("duplicate category id")
        if CONTEXT_KEY in ids:
            raise LexiconError(f"{CONTEXT_KEY!r} is reserved for contexts, not a category id")
        self._contexts: dict[str, re.Pattern[str]] = {}
        for context in contexts:
            if context.id in ("full", "bsn") or context.id in self._contexts:
                raise LexiconError(f"context {context.id!r}: reserved or duplicate name")
            try:
                body = "|".join(f"(?:{fragment})" for fragment in context.allow)
                self._contexts[context.id] = re.compile(f"(?:{body})" if body else "(?!)", re.IGNORECASE)
            except re.error as exc:
                raise LexiconError(f"context {context.id!r}: bad allow pattern: {exc}") from exc
        fuzzy_words: list[tuple[str, str]] = []
        for cat in self._categories:
            for word in cat.fuzzy:
                fuzzy_words.append((word.lower(), cat.id))
        try:
            self._fuzzy = FuzzyIndex(fuzzy_words)
        except ValueError as exc:
            raise LexiconError(str(exc)) from exc

        bsn: Category | None = None
        word_patterns: dict[str, re.Pattern[str]] = {}
        infix_patterns: dict[str, re.Pattern[str]] = {}
        # literal trigger -> categories, per (case-sensitive?, kind)
        runs: dict[tuple[bool, str], dict[str, set[str]]] = {
            (cs, kind): {} for cs in (False, True) for kind in ("word", "contains")
        }

        for cat in self._categories:
            if cat.detector is not None:
                if cat.detector != "bsn":
                    raise LexiconError(f"[{cat.id}] unknown detector {cat.detector!r}")
                if bsn is not None:
                    raise LexiconError("more than one bsn detector")
                bsn = cat
                continue
            if not cat.terms and not cat.terms_case_sensitive:
                raise LexiconError(f"[{cat.id}] has no terms")

            # (case-sensitive?, kind) -> alternatives
            alternatives: dict[tuple[bool, str], list[str]] = {key: [] for key in runs}
            for case_sensitive, terms in ((False, cat.terms), (True, cat.terms_case_sensitive)):
                for term in terms:
                    if _FORBIDDEN_IN_TERMS.search(term):
                        raise LexiconError(
                            f"[{cat.id}] term {term!r}: named groups, backreferences and global "
                            "inline flags are not allowed"
                        )
                    try:
                        re.compile(term)
                    except re.error as exc:
                        raise LexiconError(f"[{cat.id}] bad term {term!r}: {exc}") from exc
                    for alternative in split_alternatives(term):
                        kind, literal = trigger(alternative)
                        if not case_sensitive:
                            literal = literal.lower()
                        runs[case_sensitive, kind].setdefault(literal, set()).add(cat.id)
                        alternatives[case_sensitive, kind].append(alternative)

            for kind, target in (("word", word_patterns), ("contains", infix_patterns)):
                branches = []
                if alternatives[False, kind]:
                    branches.append(factorized(alternatives[False, kind], fold_case=True))
                if alternatives[True, kind]:
                    cs_body = factorized(alternatives[True, kind], fold_case=False)
                    branches.append(f"(?-i:{cs_body})")
                if branches:
                    target[cat.id] = re.compile(
                        r"(?<!\w)(?:" + "|".join(branches) + r")(?!\w)", re.IGNORECASE
                    )

        # BSN detection is not optional: without a [bsn] table a built-in message is used.
        self._bsn: Category = bsn if bsn is not None else _DEFAULT_BSN
        self._word_patterns = word_patterns
        self._infix_patterns = infix_patterns
        self._order = {cat.id: i for i, cat in enumerate(self._categories)}
        self._order.setdefault(self._bsn.id, len(self._order))
        self._messages = {cat.id: cat.message for cat in self._categories}
        self._messages.setdefault(self._bsn.id, self._bsn.message)

        ci_words, cs_words = runs[False, "word"], runs[True, "word"]
        ci_contains, cs_contains = runs[False, "contains"], runs[True, "contains"]
        # Word triggers: the longest run that starts a word, on the lower-cased text.
        self._ci_words = _Prefilter(ci_words, r"(?<!\w)" + _trie_regex(ci_words))
        # The same triggers anywhere in a word (overlapping), for words made of joined letters.
        self._anywhere = re.compile("(?=" + (_trie_regex(ci_words) or "(?!)") + ")")
        self._cs_words = _Prefilter(cs_words, _trie_regex(cs_words, word_start=r"(?<!\w.)"))
        # If every case-sensitive trigger has a capital, text without capitals skips them.
        self._cs_needs_capital = all(run != run.lower() for run in cs_words)
        # Contains triggers: a cheap gate (search), then all overlapping occurrences.
        self._ci_gate = _Prefilter(ci_contains, _trie_regex(ci_contains))
        self._ci_contains = _Prefilter(ci_contains, "(?=(" + _trie_regex(ci_contains) + "))")
        self._cs_gate = _Prefilter(cs_contains, _trie_regex(cs_contains))
        self._cs_contains = _Prefilter(cs_contains, "(?=(" + _trie_regex(cs_contains) + "))")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Lexicon:
        """Build a lexicon from parsed TOML: one table per category, in file order.

        The table ``[context.<name>]`` (``description``, ``allow``) defines a screening context.
        """
        categories: list[Category] = []
        contexts: list[Context] = []
        for cat_id, table in data.items():
            if cat_id == CONTEXT_KEY and isinstance(table, Mapping):
                for name, ctx in table.items():
                    if not isinstance(ctx, Mapping):
                        raise LexiconError(f"[{CONTEXT_KEY}.{name}] must be a table")
                    contexts.append(
                        Context(
                            id=name,
                            description=_require_str(ctx, "description", f"{CONTEXT_KEY}.{name}"),
                            allow=_str_list(ctx, "allow", f"{CONTEXT_KEY}.{name}"),
                        )
                    )
                continue
            if not isinstance(table, Mapping):
                raise LexiconError(f"top-level key {cat_id!r} must be a table")
            detector = table.get("detector")
            if detector is not None and not isinstance(detector, str):
                raise LexiconError(f"[{cat_id}] 'detector' must be a string")
            categories.append(
                Category(
                    id=cat_id,
                    label=_require_str(table, "label", cat_id),
                    legal_basis=_require_str(table, "legal_basis", cat_id),
                    message=_require_str(table, "message", cat_id),
                    terms=_str_list(table, "terms", cat_id),
                    terms_case_sensitive=_str_list(table, "terms_case_sensitive", cat_id),
                    detector=detector,
                    fuzzy=_str_list(table, "fuzzy", cat_id),
                )
            )
        return cls(categories, contexts)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Lexicon:
        """Read a lexicon from a TOML file."""
        with open(path, "rb") as fh:
            return cls.from_mapping(tomllib.load(fh))

    # -- inspection -----------------------------------------------------------------------------

    @property
    def categories(self) -> tuple[Category, ...]:
        """All categories, in file order (including the BSN detector, if any)."""
        return self._categories

    @property
    def contexts(self) -> frozenset[str]:
        """The names of the screening contexts the lexicon defines (``[context.<name>]``)."""
        return frozenset(self._contexts)

    # -- screening ------------------------------------------------------------------------------

    def _candidates(self, text: str, lowered: str) -> tuple[set[str], set[str]]:
        """Categories whose word terms / compound terms may match (the fast path).

        May over-approximate (the category regex decides), never under-approximates.
        """
        words: set[str] = set()
        infix: set[str] = set()
        pre = self._ci_words
        if pre.pattern is not None:
            for run in pre.pattern.findall(lowered):
                words |= pre.closure[run]
        pre = self._cs_words
        if pre.pattern is not None and (lowered != text or not self._cs_needs_capital):
            for run in pre.pattern.findall(text):
                words |= pre.closure[run]
        for gate, pre, subject in (
            (self._ci_gate, self._ci_contains, lowered),
            (self._cs_gate, self._cs_contains, text),
        ):
            if gate.pattern is not None and pre.pattern is not None:
                if gate.pattern.search(subject) is not None:
                    for run in pre.pattern.findall(subject):
                        infix |= pre.closure[run]
        return words, infix

    def _match(
        self,
        text: str,
        lowered: str,
        found: dict[str, str],
        allow: re.Pattern[str] | None,
        skip: frozenset[str],
    ) -> None:
        """Add to ``found`` (category -> matched text) the categories whose terms match ``text``."""
        words, infix = self._candidates(text, lowered)
        if not words and not infix:
            return
        for cat_id in (words | infix) - skip:
            if cat_id in found:
                continue
            for kind, patterns in ((words, self._word_patterns), (infix, self._infix_patterns)):
                if cat_id not in kind:
                    continue
                if allow is None:
                    match = patterns[cat_id].search(text)
                    if match is not None:
                        found[cat_id] = match.group()
                        break
                    continue
                term = next(
                    (m.group() for m in patterns[cat_id].finditer(text) if allow.fullmatch(m.group()) is None),
                    None,
                )
                if term is not None:
                    found[cat_id] = term
                    break

    def screen(self, text: str, *, context: str | None = None, exempt: Iterable[str] = ()) -> list[Finding]:
        """All categories found in ``text``: at most one :class:`Finding` per category.

        The text is folded and screened as written and in every variant with its disguises
        undone (:mod:`schemas.normalise`); long words are also looked up with a typo or two
        (:mod:`schemas.fuzzy`). ``context`` names a ``[context.<name>]`` of the lexicon whose
        allowed matches are not findings; categories in ``exempt`` are not reported.

        Findings come in lexicon order; the BSN finding (if any) carries ``term == "<bsn>"``.
        ``term`` is the matched text after folding (a fuzzy hit: the word of the text).
        """
        if not text:
            return []
        allow = self._context(context)
        skip = exempt if isinstance(exempt, frozenset) else frozenset(exempt)
        folded = fold(text)
        lowered = folded.lower()
        found: dict[str, str] = {}
        self._match(folded, lowered, found, allow, skip)
        forms, runs = undo_disguises(folded)
        lowered_forms = [form.lower() for form in forms]
        for form, lowered_form in zip(forms, lowered_forms, strict=True):
            self._match(form, lowered_form, found, allow, skip)
        # "N o a h A D H D" joins to "NoahADHD": screen it from every place a term could start.
        for run in runs:
            for start in self._anywhere.finditer(run.lower()):
                if start.start() > 0:
                    tail = run[start.start() :]
                    self._match(tail, tail.lower(), found, allow, skip)
        for lowered_form in (lowered, *lowered_forms):
            for cat_id, word, _lexicon_word in self._fuzzy.search(lowered_form):
                if cat_id not in found and cat_id not in skip and (allow is None or allow.fullmatch(word) is None):
                    found[cat_id] = word
        bsn = self._bsn.id not in skip and contains_bsn(folded)
        if not found and not bsn:
            return []
        findings = [Finding(cat_id, term, self._messages[cat_id]) for cat_id, term in found.items()]
        if bsn:
            findings.append(Finding(self._bsn.id, BSN_TERM, self._bsn.message))
        if len(findings) > 1:
            findings.sort(key=lambda f: self._order[f.category])
        return findings

    def screen_bsn_only(self, text: str) -> list[Finding]:
        """Only look for BSN-looking numbers (for fields where words are expected)."""
        if not text or not contains_bsn(fold(text)):
            return []
        return [Finding(self._bsn.id, BSN_TERM, self._bsn.message)]

    def screener(self, level: str, exempt: Iterable[str] = ()) -> Callable[[str], list[Finding]]:
        """The screen for a field's ``screen`` level in a convenant file.

        ``"full"``: every category (free text); ``"bsn"``: BSN-looking numbers only; the name of
        a lexicon context (``"naam"``, ``"adres"``): every category, less what the context
        allows. ``exempt`` lists categories the field is never screened for (a school's name may
        carry its denomination: ``screen_exempt = ["religie"]``).
        """
        skip = frozenset(exempt)
        unknown = skip - {c.id for c in self._categories} - {self._bsn.id}
        if unknown:
            raise LexiconError(f"screen_exempt names unknown categories {sorted(unknown)}")
        if level == "bsn":
            return self.screen_bsn_only
        context = None if level == "full" else level
        self._context(context)
        return functools.partial(self.screen, context=context, exempt=skip)

    def _context(self, name: str | None) -> re.Pattern[str] | None:
        if name is None:
            return None
        try:
            return self._contexts[name]
        except KeyError:
            raise LexiconError(
                f"unknown screening level {name!r}: use 'full', 'bsn' or a lexicon context "
                f"{sorted(self._contexts)}"
            ) from None


@functools.cache
def load_default_lexicon() -> Lexicon:
    """The lexicon shipped with the broker (``schemas/lexicon/bijzondere_gegevens.toml``)."""
    return Lexicon.from_file(_DEFAULT_LEXICON)
