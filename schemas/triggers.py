"""Fast-path triggers for the screening lexicon: from each term's regex fragment, the literal
word (or substring) a text must contain before the full pattern is worth running.

A term is a regex fragment; `trigger` reads its leading literal (a whole word, or a substring
when the fragment starts inside a word), `factorized` merges fragments that share a prefix into
one alternation, and `prefix_closure` maps every word prefix to the categories it may start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


class LexiconError(ValueError):
    """The lexicon file is malformed or a term cannot be used."""


# Shortest literal word usable as a trigger.
_MIN_KEY = 2
# Shortest literal usable as a "must contain" trigger for fragments that start inside a word.
_MIN_SUBSTRING = 3

_QUANTIFIERS = "?*+{"
# Literal characters that can never be part of a \w+ word: a fragment word that follows one of
# these (when it is not optional) starts a word in the text as well. (An unescaped "." is a
# wildcard, so it is not in this set; "\." is handled as an escape.)
_SEPARATOR_LITERALS = frozenset(" -'/,&’")


def split_alternatives(fragment: str) -> list[str]:
    """Split a fragment on ``|`` at the top level (not inside groups or character classes)."""
    parts: list[str] = []
    depth = 0
    in_class = False
    start = 0
    i = 0
    while i < len(fragment):
        c = fragment[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if fragment[i + 1 : i + 2] == "^":
                i += 1
            if fragment[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(fragment[start:i])
            start = i + 1
        i += 1
    parts.append(fragment[start:])
    return parts


def _end_of_class(fragment: str, i: int) -> int:
    """Index just past the character class that starts at ``fragment[i] == '['``."""
    j = i + 1
    if fragment[j : j + 1] == "^":
        j += 1
    if fragment[j : j + 1] == "]":
        j += 1
    while j < len(fragment) and fragment[j] != "]":
        j += 2 if fragment[j] == "\\" else 1
    return j + 1


def _end_of_group(fragment: str, i: int) -> int:
    """Index just past the group that starts at ``fragment[i] == '('``."""
    depth = 0
    j = i
    while j < len(fragment):
        c = fragment[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            j = _end_of_class(fragment, j)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise LexiconError(f"unbalanced parenthesis in {fragment!r}")


def _atoms(fragment: str) -> list[tuple[str, str, str]]:
    """Top-level atoms of a fragment as ``(kind, text, quantifier)``.

    kind is ``lit`` (a literal letter or digit), ``sep`` (something that only matches characters
    outside ``\\w``), ``zero`` (a zero-width assertion) or ``other``.
    """
    atoms: list[tuple[str, str, str]] = []
    i = 0
    n = len(fragment)
    while i < n:
        c = fragment[i]
        if c == "\\":
            esc = fragment[i + 1 : i + 2]
            i += 2
            if esc in ("s",):
                kind = "sep"
            elif esc in ("b", "B", "A", "Z"):
                kind = "zero"
            elif esc.isalnum():
                kind = "other"
            else:
                kind = "sep"
            text = "\\" + esc
        elif c == "[":
            j = _end_of_class(fragment, i)
            text = fragment[i:j]
            body = text[1:-1].replace("\\s", " ").replace("\\", "")
            only_separators = bool(body) and set(body) <= _SEPARATOR_LITERALS | {"."}
            kind = "sep" if only_separators else "other"
            i = j
        elif c == "(":
            j = _end_of_group(fragment, i)
            text = fragment[i:j]
            kind = "zero" if text.startswith(("(?=", "(?!", "(?<=", "(?<!")) else "other"
            i = j
        elif c in "^$":
            kind, text = "zero", c
            i += 1
        elif c.isalnum():
            kind, text = "lit", c
            i += 1
        elif c in _SEPARATOR_LITERALS:
            kind, text = "sep", c
            i += 1
        else:
            kind, text = "other", c
            i += 1
        quant = ""
        if i < n and fragment[i] in _QUANTIFIERS:
            if fragment[i] == "{":
                j = fragment.index("}", i) + 1
            else:
                j = i + 1
            if j < n and fragment[j] in "?+":
                j += 1
            quant = fragment[i:j]
            i = j
        atoms.append((kind, text, quant))
    return atoms


def _leading_literal(fragment: str) -> str:
    """The literal characters a fragment starts with (no quantifier, no escape, no group)."""
    lead = ""
    for kind, text, quant in _atoms(fragment):
        if kind != "lit" or quant:
            break
        lead += text
    return lead


def trigger(fragment: str) -> tuple[str, str]:
    """The fast-path trigger of one alternative: ``("word", run)`` or ``("contains", run)``.

    ``("word", run)``: every match contains a word of the text that starts with ``run``.
    ``("contains", run)``: every match contains ``run`` somewhere (for compounds like
    ``\\w*stoornis``, where the literal does not start a word).
    The longest qualifying literal is used: the longer, the rarer in clean text.
    """
    runs: list[tuple[str, bool]] = []
    run = ""
    run_at_word_start = False
    word_start = True  # every fragment is anchored with (?<!\w) by the category pattern
    for kind, text, quant in _atoms(fragment):
        if kind == "zero":
            continue
        if kind == "lit" and quant == "":
            if not run:
                run_at_word_start = word_start
            run += text
            continue
        if run:
            runs.append((run, run_at_word_start))
            run = ""
        word_start = kind == "sep" and quant in ("", "+")
    if run:
        runs.append((run, run_at_word_start))

    word_runs = [r for r, at_start in runs if at_start and len(r) >= _MIN_KEY]
    if word_runs:
        return "word", max(word_runs, key=len)
    inner_runs = [r for r, _ in runs if len(r) >= _MIN_SUBSTRING]
    if inner_runs:
        return "contains", max(inner_runs, key=len)
    raise LexiconError(
        f"term {fragment!r} has no literal word of at least {_MIN_KEY} characters that a match "
        f"must start a word with (nor a literal of at least {_MIN_SUBSTRING} characters it must "
        "contain); split or rewrite it"
    )


def factorized(fragments: Iterable[str], fold_case: bool, depth: int = 3) -> str:
    """One alternation of ``fragments``, factored on their first literal characters.

    ``a(?:b(?:c1|c2)|d(?:...))|...`` instead of ``abc1|abc2|ad...``: at a word start the engine
    then compares a handful of first characters instead of trying every term. Fragments that do
    not start with a literal (lookbehinds, ``\\w*``-compounds, groups) stay at the top level.
    """
    root: dict[str, Any] = {"children": {}, "rests": []}
    for fragment in fragments:
        k = min(depth, len(_leading_literal(fragment)))
        node = root
        for ch in fragment[:k]:
            key = ch.lower() if fold_case else ch
            node = node["children"].setdefault(key, {"children": {}, "rests": []})
        node["rests"].append(fragment[k:])

    def emit(node: dict[str, Any]) -> str:
        parts = [re.escape(ch) + emit(child) for ch, child in node["children"].items()]
        parts += [f"(?:{rest})" if rest else "" for rest in node["rests"]]
        return parts[0] if len(parts) == 1 and parts[0] else "(?:" + "|".join(parts) + ")"

    return emit(root)


def prefix_closure(runs: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    """For each run, the categories of all runs it starts with (itself included).

    The trie prefilter reports the longest run that matches at a position; shorter runs that
    match there too are its prefixes.
    """
    closure: dict[str, frozenset[str]] = {}
    for run in runs:
        cats: set[str] = set()
        for i in range(1, len(run) + 1):
            cats |= runs.get(run[:i], set())
        closure[run] = frozenset(cats)
    return closure
