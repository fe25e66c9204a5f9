"""Fuzzy lookup of long lexicon words: misspellings such as ``depresief`` or ``schizofrenei``.

The lexicon lists, per category, literal words that are long and distinctive enough to be
matched with a typo (``fuzzy = [...]`` in the data file). A word of the text matches one of them
when their optimal string alignment distance (Levenshtein plus swapping two adjacent letters)
is at most 1, or at most 2 for words of :data:`LONG` letters or more.

Speed: every word of every screened text goes through this, so the lookup must cost about a
microsecond per word, not a distance computation against each lexicon word. It uses the
pigeonhole principle. For distance 1: cut a lexicon word of length *n* at *h = n // 2*; one edit
leaves either its first *h* letters or its letters after position *h* as they are, so a word of
the text within distance 1 starts with ``word[:h]`` or ends with ``word[h + 1:]``. The index
maps (length, prefix) and (length, suffix) to words; a word of the text is looked up for the
three lengths it can have been (its own, one more, one less): six dictionary lookups. Only the
rare words found that way are compared letter by letter. For distance 2 the word is cut in
three (start, middle, end): two edits leave one of the three intact (almost always: a swap of
two letters across a cut counts as touching both sides).

This module does not import Flask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

__all__ = ["LONG", "MIN_LENGTH", "FuzzyIndex", "osa_distance"]

#: Words with at least this many letters are matched at distance 2, shorter ones at distance 1.
LONG = 14
#: Shortest word that may be listed as fuzzy (shorter words have too many ordinary neighbours).
MIN_LENGTH = 7


def osa_distance(a: str, b: str, limit: int) -> int:
    """The optimal string alignment distance of ``a`` and ``b``, or ``limit + 1`` if it is larger.

    Common first and last letters are stripped first; the rest is computed in a band of width
    ``limit`` around the diagonal, so the cost is linear in the length of the words.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    if not a or not b:
        return min(max(len(a), len(b)), limit + 1)
    over = limit + 1
    previous2: list[int] = []
    previous = [j if j <= limit else over for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        ca = a[i - 1]
        current = [i if i <= limit else over] + [over] * len(b)
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cb = b[j - 1]
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = min(value, over)
        if min(current) > limit:
            return over
        previous2, previous = previous, current
    return previous[-1]


def _within_one(a: str, b: str) -> bool:
    """Whether the optimal string alignment distance of ``a`` and ``b`` is at most 1 (fast)."""
    if len(a) < len(b):
        a, b = b, a
    i = 0
    shorter = len(b)
    while i < shorter and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        if i == shorter:
            return True
        if a[i + 1 :] == b[i + 1 :]:
            return True  # one substitution
        return i + 1 < shorter and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    if len(a) - len(b) != 1:
        return False
    return a[i + 1 :] == b[i:]  # one insertion


def _limit(word: str) -> int:
    return 2 if len(word) >= LONG else 1


class FuzzyIndex:
    """Lower-case literal words with a category each, found again in text with a typo or two."""

    def __init__(self, words: Iterable[tuple[str, str]]) -> None:
        self._categories: dict[str, set[str]] = {}
        for word, category in words:
            if not word.isascii() or not word.isalpha() or word != word.lower() or len(word) < MIN_LENGTH:
                raise ValueError(
                    f"fuzzy word {word!r} must be one lower-case ASCII word of at least {MIN_LENGTH} letters"
                )
            self._categories.setdefault(word, set()).add(category)
        # Per length of a lexicon word: its first and last letters -> the words (see the module doc).
        self._cuts: dict[int, tuple[int, int, dict[str, list[str]], dict[str, list[str]]]] = {}
        # Long words (distance 2) per length: (word, middle).
        self._middles: dict[int, list[tuple[str, str]]] = {}
        for word in self._categories:
            n = len(word)
            if _limit(word) == 1:
                head, tail = n // 2, n - n // 2 - 1
            else:
                third = n // 3
                head, tail = third, third
                self._middles.setdefault(n, []).append((word, word[third + 1 : n - third - 1]))
            if n in self._cuts and self._cuts[n][:2] != (head, tail):
                raise AssertionError("one cut per length")  # pragma: no cover - _limit depends on n only
            _, _, starts, ends = self._cuts.setdefault(n, (head, tail, {}, {}))
            starts.setdefault(word[:head], []).append(word)
            ends.setdefault(word[n - tail :], []).append(word)
        self._longest = max((len(w) + _limit(w) for w in self._categories), default=0)
        shortest = min((len(w) for w in self._categories), default=0) - 1
        self._token = re.compile(rf"[a-z]{{{max(1, shortest)},}}") if self._categories else None
        # Per length of a word of the text: the cuts of the lexicon lengths it can be an edit of.
        _Get = Callable[[str], "list[str] | None"]
        self._plans: dict[int, tuple[list[tuple[int, int, _Get, _Get]], list[tuple[str, str]]]] = {}
        for size in range(max(1, shortest), self._longest + 1):
            cuts: list[tuple[int, int, _Get, _Get]] = []
            middles: list[tuple[str, str]] = []
            for n, (head, tail, starts, ends) in sorted(self._cuts.items()):
                reach = 2 if n >= LONG else 1
                if abs(n - size) <= reach and head >= 1 and tail >= 1:
                    cuts.append((head, -tail, starts.get, ends.get))
                    middles += self._middles.get(n, [])
            if cuts:
                self._plans[size] = (cuts, middles)

    def __bool__(self) -> bool:
        return bool(self._categories)

    def search(self, lowered: str) -> Iterator[tuple[str, str, str]]:
        """``(category, word of the text, lexicon word)`` for each fuzzy hit in ``lowered``.

        ``lowered`` is folded, lower-cased text (see :mod:`schemas.normalise`).
        """
        if self._token is None:
            return
        plans = self._plans
        for token in self._token.findall(lowered):
            plan = plans.get(len(token))
            if plan is None:
                continue
            found: set[str] = set()
            cuts, middles = plan
            for head, tail, starts, ends in cuts:
                hit = starts(token[:head])
                if hit is not None:
                    found.update(hit)
                hit = ends(token[tail:])
                if hit is not None:
                    found.update(hit)
            for word, middle in middles:
                if middle in token:
                    found.add(word)
            if not found:
                continue
            size = len(token)
            for word in found:
                limit = _limit(word)
                if abs(len(word) - size) > limit:
                    continue
                if _within_one(token, word) if limit == 1 else osa_distance(token, word, 2) <= 2:
                    for category in self._categories[word]:
                        yield category, token, word
