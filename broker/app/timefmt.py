"""Times as Dutch people read them: Europe/Amsterdam, with the day and month written out.

The broker stores and computes in UTC; only what people read is local. Deadlines are a number of
elapsed hours, so across a DST change the wall-clock time of a deadline shifts by an hour.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")  # the time people read; the broker keeps UTC

DAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MONTHS = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(AMSTERDAM)


def local_text(moment: dt.datetime) -> str:
    """For example "zaterdag 24 oktober 2026 12:00 (CEST)"."""
    here = local(moment)
    return f"{DAYS[here.weekday()]} {here.day} {MONTHS[here.month - 1]} {here.year} {here:%H:%M} ({here:%Z})"


def local_short(moment: dt.datetime) -> str:
    """For example "24-10-2026 12:00" (tables)."""
    return f"{local(moment):%d-%m-%Y %H:%M}"


def duration_text(seconds: float) -> str:
    """A span such as "3 u 05 min" or "2 d 4 u", without a sign."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} u"
    if hours:
        return f"{hours} u {minutes:02d} min"
    return f"{minutes} min"


class AmbiguousLocalTime(ValueError):
    """A wall-clock time without an offset that does not name one moment (DST change)."""


def from_local(naive: dt.datetime) -> dt.datetime:
    """Read a time without offset as Amsterdam time; refuse one that is ambiguous or does not exist.

    When the clocks go back, 02:30 happens twice; when they go forward, 02:30 never happens. Such a
    time needs an explicit offset.
    """
    early = naive.replace(tzinfo=AMSTERDAM, fold=0)
    late = naive.replace(tzinfo=AMSTERDAM, fold=1)
    if early.utcoffset() != late.utcoffset():  # zoneinfo gives the two readings of a doubled or skipped time
        raise AmbiguousLocalTime(
            "Deze tijd bestaat door de zomertijdwissel twee keer of niet; geef de tijd met UTC-offset."
        )
    return early.astimezone(dt.UTC)
