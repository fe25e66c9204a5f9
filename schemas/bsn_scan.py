"""Finding numbers that look like a BSN (burgerservicenummer) in free text.

A BSN has nine digits. People write it as one run (123456782) or in groups: 4-2-3 as on the
passport (1234.56.782), 3-3-3 (123 456 782, 111-222-333, 111/222/333), 3-2-4, 2-2-2-3 ... with
one kind of separator used throughout: a space, or ``- . / _`` or a dash, optionally with spaces
around it (``111 - 222 - 333``). A candidate is

* a run of exactly nine digits that is not glued to another digit, or
* a chain of two or more groups of 2 to 4 digits, nine in all, joined by one kind of separator
  and not continued by more groups with that same separator (``123.456.782.1`` is no candidate).
  Where the separator changes, the group in between may belong to either side
  (``15-01-2024 111 222 333``: the date, then the BSN).

Phone numbers (06-12345678, 020 123 4567: ten digits), IBANs, dates, times, postcodes and case
numbers (2023/0045/123) are therefore not candidates. Candidates are checked with the elfproef
(stdnum.nl.bsn), which rejects about 10 in 11 random nine-digit numbers.

Eight-digit runs are deliberately NOT flagged, although stdnum pads them with a leading zero
and BSNs issued from old sofinummers can start with 0. In free text an eight-digit run is far
more often a date written as ddmmjjjj or jjjjmmdd, a KvK number (always eight digits) or a case
number, and about 1 in 11 of those would pass the padded elfproef: a steady stream of false
alarms for a BSN nobody writes that way (a BSN is always shown with its nine digits, leading
zero included). Structured BSN fields are validated elsewhere with the full check.

The text is expected to be folded (:func:`schemas.normalise.fold`): full-width and other
Unicode digits are then ASCII, and zero-width characters between digits are gone.
"""

from __future__ import annotations

import re

from stdnum.nl import bsn as _stdnum_bsn

__all__ = ["contains_bsn"]

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_SEPARATOR = rf"(?: *[\-./_{_DASHES}] *| +)"
_RUN = re.compile(rf"(?<![0-9])[0-9]+(?:{_SEPARATOR}[0-9]+)*")
_SPLIT = re.compile(rf"({_SEPARATOR})")
_HAS_DIGIT = re.compile(r"[0-9]")


def _is_bsn(groups: list[str]) -> bool:
    if len(groups) < 2 or not all(2 <= len(g) <= 4 for g in groups):
        return False
    digits = "".join(groups)
    return len(digits) == 9 and _stdnum_bsn.is_valid(digits)


def contains_bsn(text: str) -> bool:
    """Whether ``text`` holds a number that looks like a valid BSN (see the module doc)."""
    if _HAS_DIGIT.search(text) is None:
        return False
    for match in _RUN.finditer(text):
        value = match.group()
        if len(value) < 9:
            continue
        parts = _SPLIT.split(value)
        groups = parts[0::2]
        if any(len(g) == 9 and _stdnum_bsn.is_valid(g) for g in groups):
            return True
        seps = [s.strip() or " " for s in parts[1::2]]
        i = 0
        while i < len(seps):
            j = i
            while j + 1 < len(seps) and seps[j + 1] == seps[i]:
                j += 1
            chain = groups[i : j + 2]
            shared_left, shared_right = i > 0, j + 1 < len(seps)
            if (
                _is_bsn(chain)
                or (shared_left and _is_bsn(chain[1:]))
                or (shared_right and _is_bsn(chain[:-1]))
                or (shared_left and shared_right and _is_bsn(chain[1:-1]))
            ):
                return True
            i = j + 1
    return False
