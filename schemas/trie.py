"""A regex matching any of a set of literal words, as a character trie (shared by the screen's
prefilter and the fuzzy lookup's gate). This module does not import Flask."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["trie_regex"]


def trie_regex(words: Iterable[str], word_start: str = "") -> str:
    """A regex matching any of ``words`` (literals), longest first, as a character trie.

    Python's regex engine tries the branches of an alternation one by one; a trie makes that
    cost depend on the length of a word instead of the number of words. ``word_start`` is
    inserted after the first character of every word (an assertion that the match starts a
    word); keeping a plain character first lets the engine skip ahead in C to characters that
    can start a match, which pays off when those are rare (capitals for case-sensitive terms).
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any], after: str = "") -> str:
        parts = [re.escape(ch) + after + emit(child) for ch, child in sorted(node.items()) if ch]
        if not parts:
            return ""
        body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        if "" in node:
            body = "(?:" + body + ")?"
        return body

    return emit(trie, word_start)
