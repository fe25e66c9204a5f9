"""Fuzzy lookup of long lexicon words: misspellings such as ``depresief`` or ``schizofrenei``.

The lexicon lists, per category, literal words that are long and distinctive enough to be
matched with a typo (``fuzzy = [...]`` in the data file). A word of the text matches one of them
when their optimal string alignment distance (Levenshtein plus swapping two adjacent letters)
is at most 1, or at most 2 for words of :data:`LONG` letters or more.

Speed: every word of every screened text goes through this, so the lookup must cost a dictionary
lookup per word, not a distance computation against each lexicon word. For distance 1 the index
holds every string one edit away from each lexicon word (over a-z: about 600 per word, some
100,000 in all, built once when the lexicon is loaded): a word of the text is one lookup, and
a hit needs no further check. Distance 2 (long words only) would need far more strings, so
those words are cut in three (start, middle, end): two edits leave one of the three intact
(almost always: a swap of two letters across a cut counts as touching both sides), and only a
word of the text of a fitting length that shares one of them is compared letter by letter
(in a band, after stripping common ends). Words of the text that long are rare.

This module does not import Flask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

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
    # Each edit brings in at most one letter the other word lacks: a cheap lower bound.
    if len(set(a) - set(b)) > limit or len(set(b) - set(a)) > limit:
        return limit + 1
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


def _neighbours(word: str) -> set[str]:
    """Every lower-case string within optimal string alignment distance 1 of ``word``."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = {word}
    for i in range(len(word) + 1):
        head, rest = word[:i], word[i:]
        out.update(head + ch + rest for ch in letters)  # insertion
        if rest:
            out.add(head + rest[1:])  # deletion
            out.update(head + ch + rest[1:] for ch in letters)  # substitution
        if len(rest) > 1:
            out.add(head + rest[1] + rest[0] + rest[2:])  # swap
    return out


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
        # Distance 1: every string one edit from a word, mapped to the word(s): one lookup per word
        # of the text (about 600 strings per lexicon word, some 100,000 in all).
        self._near: dict[str, tuple[str, ...]] = {}
        # Distance 2 (long words): cut in three per length (see the module doc).
        self._long: dict[int, list[tuple[str, str, str, str]]] = {}
        for word in self._categories:
            n = len(word)
            if _limit(word) == 1:
                for near in _neighbours(word):
                    self._near[near] = (*self._near.get(near, ()), word)
            else:
                third = n // 3
                parts = (word[:third], word[third + 1 : n - third - 1], word[n - third :])
                self._long.setdefault(n, []).append((word, *parts))
        self._long_sizes = {size for n in self._long for size in range(n - 2, n + 3)}
        shortest = min((len(w) for w in self._categories), default=0) - 1
        self._token = re.compile(rf"[a-z]{{{max(1, shortest)},}}") if self._categories else None

    def __bool__(self) -> bool:
        return bool(self._categories)

    def search(self, lowered: str) -> Iterator[tuple[str, str, str]]:
        """``(category, word of the text, lexicon word)`` for each fuzzy hit in ``lowered``.

        ``lowered`` is folded, lower-cased text (see :mod:`schemas.normalise`).
        """
        if self._token is None:
            return
        near, long_sizes = self._near, self._long_sizes
        for token in self._token.findall(lowered):
            words = near.get(token)
            if words is not None:
                for word in words:
                    for category in self._categories[word]:
                        yield category, token, word
            size = len(token)
            if size not in long_sizes:
                continue
            for n in range(size - 2, size + 3):
                for word, start, middle, end in self._long.get(n, ()):
                    if (token.startswith(start) or token.endswith(end) or middle in token) and osa_distance(
                        token, word, 2
                    ) <= 2:
                        for category in self._categories[word]:
                            yield category, token, word
