"""Read the review pages' filter form and subject lookup, with Dutch messages.

The filters travel in the URL (they hold nothing personal); a BSN only ever arrives in a POST body
and leaves this module as pseudonyms, one per convenant.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stdnum.nl import bsn as stdnum_bsn

from broker.app import runtime
from broker.app.timefmt import AMSTERDAM
from broker.auditing.entries import EntryFilter

# The names of the filter parameters in the URL, in the order the form shows them.
FILTER_ARGS = ("van", "tot", "partij", "convenant", "actie", "trace")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
# ASCII digits only (\d would take any script's digits) and nothing after them ($ allows a "\n").
BSN_SHAPE = re.compile(r"(?!0{9})[0-9]{9}")
SEPARATORS = re.compile(r"[\s.-]")
INVALID_BSN = "Dit is geen geldig BSN: een BSN heeft 9 cijfers en voldoet aan de elfproef."


@dataclass
class FilterForm:
    """The filter values as typed (to fill the form again) and the errors found in them."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    entry_filter: EntryFilter = field(default_factory=EntryFilter)

    @property
    def query_args(self) -> dict[str, Any]:
        """The non-empty filter arguments, to carry into links (pagination, export)."""
        return {k: v for k, v in self.values.items() if v}


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _start_of_day(day: dt.date) -> dt.datetime:
    """Midnight in the Netherlands on `day`, in UTC (23:00 or 22:00 the day before)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=AMSTERDAM).astimezone(dt.UTC)


def party_names() -> dict[str, str]:
    """Every party of every convenant, id to name."""
    names: dict[str, str] = {}
    for convenant in runtime.convenants().values():
        for party in convenant.parties:
            names.setdefault(party.id, party.name)
    return dict(sorted(names.items(), key=lambda item: item[1]))


def read_filters(args: Mapping[str, str], actions: list[str]) -> FilterForm:
    """Check the filter arguments; a wrong one is named in `errors` and not applied."""
    values = {name: str(args.get(name, "")).strip()[:200] for name in FILTER_ARGS}
    form = FilterForm(values)
    start = end = None
    if values["van"]:
        day = _date(values["van"])
        if day is None:
            form.errors["van"] = "Geef de begindatum als dag-maand-jaar."
        else:
            start = _start_of_day(day)
    if values["tot"]:
        day = _date(values["tot"])
        if day is None:
            form.errors["tot"] = "Geef de einddatum als dag-maand-jaar."
        else:
            end = _start_of_day(day + dt.timedelta(days=1))  # the end date is included
    if start and end and start >= end:
        form.errors["tot"] = "De einddatum ligt voor de begindatum."
    if values["partij"] and values["partij"] not in party_names():
        form.errors["partij"] = "Deze partij is onbekend."
    if values["convenant"] and values["convenant"] not in runtime.convenants():
        form.errors["convenant"] = "Dit convenant is onbekend."
    if values["actie"] and values["actie"] not in actions:
        form.errors["actie"] = "Deze actie komt in het logboek niet voor."
    if values["trace"] and not TRACE_ID.match(values["trace"]):
        form.errors["trace"] = "Een trace-id bestaat uit 32 hexadecimale tekens."
    form.entry_filter = EntryFilter(
        start=start,
        end=end,
        party=values["partij"] or None,
        convenant_id=values["convenant"] or None,
        action=values["actie"] or None,
        trace_id=values["trace"] or None,
    )
    return form


def pseudonymise_lookup(raw: str) -> dict[str, str] | None:
    """Return the pseudonym of the BSN in `raw` in every convenant, or None if it is no BSN.

    Spaces, dots and hyphens are ignored, as people type BSNs in groups. The BSN is not kept.
    """
    candidate = SEPARATORS.sub("", raw or "")
    if not BSN_SHAPE.fullmatch(candidate) or stdnum_bsn.checksum(candidate) != 0:
        return None
    keyring = runtime.keyring()
    return {cid: keyring.pseudonymiser(cid).pseudonymise_bsn(candidate) for cid in runtime.convenants()}
