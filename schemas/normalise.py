"""Normalising text before it is screened: one spelling for the many ways to write a word.

A hostile or careless writer can keep a lexicon term from matching without making it less
readable: ``A D H D``, ``G.G.Z.``, Cyrillic ``а`` for Latin ``a``, a zero-width space or a soft
hyphen inside a word, ``d1agnose``. The screen (:mod:`schemas.screening`) therefore matches the
lexicon against

1. :func:`fold`: the text in Unicode NFKC (full-width and mathematical letters, ligatures), with
   format characters (category Cf: zero-width space and joiners, soft hyphen, word joiner, BOM,
   bidi controls) and combining marks removed, accented Latin letters folded to their base letter
   (``é`` -> ``e``, ``ı`` -> ``i``, ``ø`` -> ``o``) and letters of other scripts that imitate a
   Latin letter (Greek ``ο``, Cyrillic ``а``, Cherokee ``Ꭺ``) folded to that letter. Case is kept,
   because some terms are case-sensitive abbreviations (``OM``, ``ASS``); the lexicon lower-cases
   for the rest. All of it is one NFKC pass plus one ``str.translate`` with a table built once.
2. :func:`variants`: the folded text with its disguises undone, as extra spellings to screen:
   single letters joined across spaces, dots, hyphens and the like (``A D H D`` -> ``ADHD``,
   ``G.G.Z.`` -> ``GGZ``), separators inside a word dropped (``de-pres-sie``), and digits and
   ``@ $ €`` inside a word read as the letters they imitate (``d1agnose``, ``@utisme``). The
   folded text itself is screened too, so nothing that matched before a variant was made can be
   lost (``D66`` stays ``D66``). A text without any of these patterns has no variants; finding
   that out is a single regex search.

The look-alike table comes from Unicode's confusables data (UTS #39, ``confusables.txt``) as
shipped by the ``confusable-homoglyphs`` package (``confusables.json``): a maintained table of
all look-alikes instead of a hand list. Only characters from scripts and blocks that are used to
imitate Latin text are folded (Latin extensions, IPA, Greek, Cyrillic, Armenian, Cherokee,
phonetic and letter-like symbols); Arabic, Hebrew or CJK text is left as it is, so names written
in those scripts do not turn into accidental Latin words.

This module does not import Flask.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

__all__ = ["fold", "fold_table", "undo_disguises", "variants"]

# Blocks whose letters are folded to the Latin letter they look like (start, end inclusive).
_FOLDED_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x0080, 0x024F),  # Latin-1 Supplement, Latin Extended-A/B
    (0x0250, 0x02FF),  # IPA extensions, spacing modifier letters
    (0x0370, 0x03FF),  # Greek and Coptic
    (0x0400, 0x052F),  # Cyrillic and its supplement
    (0x0530, 0x058F),  # Armenian
    (0x13A0, 0x13FF),  # Cherokee
    (0x1C80, 0x1C8F),  # Cyrillic Extended-C
    (0x1D00, 0x1DBF),  # phonetic extensions (small capitals)
    (0x1E00, 0x1FFF),  # Latin Extended Additional, Greek Extended
    (0x2100, 0x214F),  # letter-like symbols
    (0x2C60, 0x2C7F),  # Latin Extended-C
    (0x2DE0, 0x2DFF),  # Cyrillic Extended-A
    (0xA640, 0xA69F),  # Cyrillic Extended-B
    (0xA720, 0xA7FF),  # Latin Extended-D
    (0xAB30, 0xABBF),  # Latin Extended-E, Cherokee supplement
)
# Planes scanned for format characters and combining marks (BMP, SMP and the tags plane).
_SCANNED_RANGES: tuple[tuple[int, int], ...] = ((0x0000, 0x1FFFF), (0xE0000, 0xE0FFF))

# Latin letters that have no decomposition and whose confusables entry is not a Latin letter.
_LATIN_EXTRA = {"ß": "ss", "ẞ": "SS", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "œ": "oe", "Œ": "OE"}


def _strip_marks(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def _ascii_letters(text: str) -> bool:
    return bool(text) and text.isascii() and text.isalpha()


def _load_confusables() -> dict[str, list[dict[str, str]]]:
    data = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
    loaded: dict[str, list[dict[str, str]]] = json.loads(data)
    return loaded


def _latin_skeleton(ch: str, confusables: dict[str, list[dict[str, str]]], depth: int = 3) -> str | None:
    """The ASCII letter(s) that ``ch`` imitates according to the confusables data, if any."""
    if depth == 0:
        return None
    for entry in confusables.get(ch, ()):
        candidate = _strip_marks(entry["c"])
        if _ascii_letters(candidate):
            return candidate
    for entry in confusables.get(ch, ()):
        candidate = _strip_marks(entry["c"])
        if len(candidate) == 1 and not candidate.isascii():
            deeper = _latin_skeleton(candidate, confusables, depth - 1)
            if deeper is not None:
                return deeper
    return None


def _match_case(ch: str, latin: str) -> str:
    """Keep the case of the original letter: Greek capital iota is ``I``, not ``l``."""
    if len(latin) != 1:
        return latin
    if ch.isupper() and latin.islower():
        return "I" if latin == "l" else latin.upper()
    if ch.islower() and latin.isupper():
        return latin.lower()
    return latin


@functools.cache
def fold_table() -> dict[int, str | None]:
    """The ``str.translate`` table of :func:`fold` (built once, about 50 ms)."""
    confusables = _load_confusables()
    table: dict[int, str | None] = {}
    for start, end in _SCANNED_RANGES:
        for cp in range(start, end + 1):
            category = unicodedata.category(chr(cp))
            if category in ("Cf", "Mn"):
                table[cp] = None
    for start, end in _FOLDED_BLOCKS:
        for cp in range(start, end + 1):
            ch = chr(cp)
            if cp in table or not ch.isalpha():
                continue
            if ch in _LATIN_EXTRA:
                table[cp] = _LATIN_EXTRA[ch]
                continue
            base = _strip_marks(ch)
            if _ascii_letters(base):
                table[cp] = base
                continue
            if len(base) == 1:
                latin = _latin_skeleton(base, confusables)
                if latin is not None:
                    table[cp] = _match_case(ch, latin)
    # U+0130 (capital I with dot) decomposes to I + combining dot: already "I". Keep it explicit,
    # because str.lower() makes it two characters while the regex engine folds it to "i".
    table[0x0130] = "I"
    return table


def fold(text: str) -> str:
    """NFKC, format characters and combining marks removed, look-alike letters folded to Latin.

    Case is kept. ASCII text is returned as it is (it has nothing to fold).
    """
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(fold_table())


# -- disguises ----------------------------------------------------------------------------------

# What people put between the letters of a word to keep it from matching.
_SEP = r"[ \t.\-_*·•/+~|‐‑‒–—]"
# Two or more single letters or digits (with at least one letter), each on its own between
# separators: "A D H D", "G.G.Z.", "a-u-t-i-s-m-e", "4 D H D".
_SINGLE_RUN = rf"(?<![^\W_])[^\W_](?![^\W_])(?:{_SEP}+[^\W_](?![^\W_]))+"
# A separator inside a word (letters on both sides): "de-pres-sie", "auti.sme", "psy_chiater".
_INNER_SEP = r"(?<=[^\W\d_])[.\-_*·•‐‑]+(?=[^\W\d_])"
# A word with digits or @ $ € in it as well as letters: "d1agnose", "@utisme", "alc0hol".
_MIXED = r"(?<![\w@$€])(?=[\w@$€]*[^\W\d_])[\w@$€]*[0-9@$€][\w@$€]*"
_DISGUISE = re.compile(rf"(?P<run>{_SINGLE_RUN})|(?P<inner>{_INNER_SEP})|(?P<mixed>{_MIXED})")
# A necessary condition for each of the three, written so that every branch starts with a
# character set (the regex engine then skips ahead in C): a single letter after a separator, a
# separator after a letter and before one, a digit or @ $ € next to a letter or underscore.
_GATE = re.compile(
    rf"{_SEP}[^\W_](?![^\W_])"
    r"|[.\-_*·•‐‑](?<=[^\W\d_].)[.\-_*·•‐‑]*[^\W\d_]"
    r"|[0-9@$€](?:(?<=[^\W\d].)|(?=[^\W\d]))"
)
_SEP_CHARS = re.compile(_SEP)
_WIDE_GAP = re.compile(r"\s{2,}")
# Joined runs at least this long are also searched for terms inside them.
_MIN_RUN = 5
_HAS_LETTER = re.compile(r"[^\W\d_]")
_HAS_ONE = re.compile(r"1")

# Digits and symbols read as the letter they imitate; 1 is tried as i and as l.
_LEET_I = str.maketrans({"0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "b", "7": "t",
                         "8": "b", "9": "g", "@": "a", "$": "s", "€": "e"})
_LEET_L = str.maketrans({"1": "l"})


def variants(folded: str) -> tuple[str, ...]:
    """Other spellings of ``folded`` (the output of :func:`fold`) with its disguises undone.

    Empty for almost all text: a text without single-letter runs, separators inside words or
    digits and ``@ $ €`` has none. The variants are extra texts to screen, never a replacement
    for ``folded``.
    """
    return undo_disguises(folded)[0]


def undo_disguises(folded: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(variants, runs)``: the variants of :func:`variants`, and the words made by joining
    single letters (``"NoahADHD"`` from ``"N o a h A D H D"``), in which the screen also looks
    for terms that do not start the word."""
    if _GATE.search(folded) is None:
        return (), ()
    ones: list[bool] = []
    runs: list[str] = []

    def undo(match: re.Match[str]) -> str:
        kind = match.lastgroup
        value = match.group()
        if kind == "run":
            if _HAS_LETTER.search(value) is None:
                return value  # "6 7 8": numbers, not a disguised word
            # Two or more spaces between letters still separate words ("N o a h  A D H D").
            joined = _SEP_CHARS.sub("", _WIDE_GAP.sub("\0", value)).replace("\0", " ")
            if _HAS_ONE.search(joined) is not None:
                ones.append(True)
            joined = joined.translate(_LEET_I)
            runs.extend(part for part in joined.split(" ") if len(part) >= _MIN_RUN)
            return joined
        if kind == "inner":
            return ""
        if _HAS_ONE.search(value) is not None:
            ones.append(True)
        return value.translate(_LEET_I)

    first = _DISGUISE.sub(undo, folded)
    if first == folded:
        return (), ()
    if not ones:
        return (first,), tuple(runs)
    # "a1cohol": the same undoing with 1 read as l (the cheap way: redo the mixed words only).
    second = _DISGUISE.sub(
        lambda m: m.group().translate(_LEET_L).translate(_LEET_I) if m.lastgroup == "mixed" else undo(m), folded
    )
    return ((first, second) if second != first else (first,)), tuple(dict.fromkeys(runs))
