"""Read the breach forms of the review pages into the service's terms, with Dutch errors per field.

The forms reuse the API's input schemas (`broker.breaches.schemas`), so a form and a JSON body are
held to the same rules and messages. A BSN only ever arrives in a POST body: it is checked,
pseudonymised and forgotten, and no typed value that holds one is put back into a page, not even
after an error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma
from werkzeug.datastructures import MultiDict

from broker.app import runtime
from broker.app.errors import BrokerError, ValidationFailed
from broker.app.timefmt import local
from broker.breaches import impact, reporting, steps
from broker.breaches import schemas as inputs
from broker.models import Breach, User
from broker.officers.accounts import BROKER_OFFICER
from schemas.convenant import Convenant
from schemas.fields import Bsn
from schemas.screening import load_default_lexicon

BROKER_ITSELF = "broker"  # the reporting-party option for a breach at the broker itself
BSN_SEPARATORS = re.compile(r"[\s.-]")
MAX_LINES = 1000
ID_LISTS = ("submissions", "deliveries")  # textareas of ids, one per line
REPORT_FIELDS = (
    "convenant",
    "reporting_party",
    "detected_at",
    "description",
    "suspected_cause",
    "submissions",
    "deliveries",
    "window_from",
    "window_to",
)
# Where an error of the API's field paths is shown in the report form.
REPORT_PATHS = {
    "convenant_id": "convenant",
    "scope.window.from": "window_from",
    "scope.window.to": "window_to",
    "scope.window": "window_from",
    "scope": "scope",
}
LINE_PATHS = {"scope.submissions": "submissions", "scope.deliveries": "deliveries", "scope.subjects": "bsns"}


@dataclass
class FormState:
    """What a form showed: the values to fill in again (never a BSN) and the errors per field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.errors


def holds_bsn(value: str) -> bool:
    """Whether a typed value holds a BSN-looking number (then it is never shown again)."""
    return bool(load_default_lexicon().screen_bsn_only(value))


def typed(form: Mapping[str, str], names: Iterable[str], limit: int = inputs.LONG_TEXT) -> dict[str, str]:
    """The typed values of `names`, cut to `limit` characters."""
    return {name: str(form.get(name, ""))[:limit] for name in names}


def shown(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values to fill a form again: a text holding a BSN is left empty (its error says why)."""
    return {k: "" if isinstance(v, str) and holds_bsn(v) else v for k, v in values.items()}


def local_input(moment: dt.datetime) -> str:
    """A UTC moment as the value of an `<input type="datetime-local">` (Amsterdam time)."""
    return f"{local(moment):%Y-%m-%dT%H:%M}"


def numbered_lines(raw: str) -> list[tuple[int, str]]:
    """The non-empty lines of a textarea with their line numbers (1-based), stripped."""
    return [(number, line.strip()) for number, line in enumerate(raw.splitlines(), 1) if line.strip()]


def apply_error(
    state: FormState,
    error: BrokerError,
    paths: Mapping[str, str] | None = None,
    lines: Mapping[str, Sequence[int]] | None = None,
    general: str = "_form",
) -> FormState:
    """Show a service or schema error in the form: each coded error at its field, else at `general`.

    `paths` maps an error's field path to a form field; `lines` gives, per form field, the line
    numbers of the textarea lines that were sent as a list (so "scope.deliveries.2" names a line).
    """
    paths, lines = paths or {}, lines or {}
    if not error.errors:
        state.add(general, error.detail)
    for item in error.errors:
        path = str(item.get("field") or "")
        message = str(item.get("message") or error.detail)
        name, number = _form_field(path, paths, lines)
        state.add(name or general, f"Regel {number}: {message}" if number else message)
    return state


def _form_field(path: str, paths: Mapping[str, str], lines: Mapping[str, Sequence[int]]) -> tuple[str, int | None]:
    if path in paths:
        return paths[path], None
    head, _, index = path.rpartition(".")
    if head in LINE_PATHS and index.isdigit():
        name = LINE_PATHS[head]
        numbers = lines.get(name, ())
        position = int(index)
        return name, numbers[position] if position < len(numbers) else position + 1
    return path.split(".", 1)[0], None


# -- reporting a breach -----------------------------------------------------------------------------


def reportable(convenants: Mapping[str, Convenant], user: User) -> list[Convenant]:
    """The convenants an officer can report a breach in: with breach rules, and (for a party) its own."""
    return [
        c
        for c in convenants.values()
        if c.breach is not None and (user.role == BROKER_OFFICER or c.party(user.party_id or "") is not None)
    ]


def read_bsns(raw: str, state: FormState) -> list[str]:
    """The BSNs of the textarea, one per line; a wrong line is named by its number, never its value."""
    found = []
    lines = numbered_lines(raw)
    if len(lines) > 100_000:
        state.add("bsns", "Hoogstens 100.000 BSN's per melding.")
        return []
    check = Bsn()
    for number, line in lines:
        candidate = BSN_SEPARATORS.sub("", line)
        try:
            found.append(check.deserialize(candidate))
        except ma.ValidationError:
            state.add("bsns", f"Regel {number} is geen geldig BSN: 9 cijfers die aan de elfproef voldoen.")
    return list(dict.fromkeys(found))


def read_report(
    form: MultiDict[str, str], user: User, convenants: Mapping[str, Convenant]
) -> tuple[reporting.Report | None, FormState]:
    """Check the report form; return the report for the service, or None and the errors."""
    values = typed(form, REPORT_FIELDS) | typed(form, ID_LISTS, (MAX_LINES + 1) * (inputs.SHORT_TEXT + 2))
    state = FormState(shown(values))
    choices = {c.id: c for c in reportable(convenants, user)}
    convenant = choices.get(values["convenant"])
    if convenant is None:
        state.add("convenant", "Kies een convenant.")
    reporting_party = _reporting_party(user, values["reporting_party"], convenant, state)
    bsns = read_bsns(form.get("bsns", ""), state)
    submissions, deliveries = numbered_lines(values["submissions"]), numbered_lines(values["deliveries"])
    for name, given in zip(ID_LISTS, (submissions, deliveries), strict=True):
        if len(given) > MAX_LINES:
            state.add(name, f"Hoogstens {MAX_LINES} regels.")
    scope: dict[str, Any] = {
        "submissions": [line for _n, line in submissions[:MAX_LINES]],
        "deliveries": [line for _n, line in deliveries[:MAX_LINES]],
        "subjects": bsns,
    }
    if values["window_from"] or values["window_to"]:
        scope["window"] = {k: values[f"window_{k}"] for k in ("from", "to") if values[f"window_{k}"]}
    body: dict[str, Any] = {
        k: values[k] for k in ("detected_at", "description", "suspected_cause") if values[k].strip()
    }
    body["scope"] = scope
    lines = {"submissions": [n for n, _l in submissions], "deliveries": [n for n, _l in deliveries]}
    try:
        data = inputs.load(inputs.ReportSchema(), body)
    except ValidationFailed as e:
        apply_error(state, e, REPORT_PATHS, lines)
        return None, state
    if not state.ok or convenant is None:
        return None, state
    pseudonymiser = runtime.keyring().pseudonymiser(convenant.id)
    window = data["scope"].get("window")
    report = reporting.Report(
        convenant=convenant,
        reporting_party=reporting_party,
        detected_at=data["detected_at"],
        description=data["description"],
        suspected_cause=data["suspected_cause"],
        scope=impact.Scope(
            submissions=tuple(data["scope"].get("submissions", ())),
            deliveries=tuple(data["scope"].get("deliveries", ())),
            window=(window["from_"], window["to"]) if window else None,
            subjects=tuple(dict.fromkeys(pseudonymiser.pseudonymise_bsn(b) for b in bsns)),
        ),
    )
    return report, state


def _reporting_party(user: User, chosen: str, convenant: Convenant | None, state: FormState) -> str | None:
    if user.role != BROKER_OFFICER:
        return user.party_id  # a party's officer reports for their own party only
    if chosen == BROKER_ITSELF:
        return None
    if not chosen:
        state.add("reporting_party", "Kies de melder: een partij of de broker zelf.")
    elif convenant is not None and convenant.party(chosen) is None:
        state.add("reporting_party", "Deze partij neemt niet deel aan het gekozen convenant.")
    return chosen or None


def report_lines(form: Mapping[str, str]) -> dict[str, list[int]]:
    """The line numbers of the id lists as sent, to name a line in the service's scope errors."""
    return {name: [n for n, _l in numbered_lines(form.get(name, ""))] for name in ID_LISTS}


# -- the steps on a breach --------------------------------------------------------------------------


def read_ap_decision(
    form: MultiDict[str, str], fixed_party: str | None
) -> tuple[str, steps.ApDecision | None, FormState]:
    """Check the AP decision form; the party is the officer's own, or chosen by the broker's officer."""
    values = typed(form, ("party", "reported", "ap_reference", "reported_at", "reasoning"))
    state = FormState(shown(values))
    party_id = fixed_party or values["party"]
    if not party_id:
        state.add("party", "Kies de partij waarvoor u het besluit vastlegt.")
    if values["reported"] not in ("ja", "nee"):
        state.add("reported", "Kies of het datalek aan de Autoriteit Persoonsgegevens is gemeld.")
        return party_id, None, state
    body: dict[str, Any] = {"reported_to_ap": values["reported"] == "ja"}
    body.update({k: values[k] for k in ("ap_reference", "reported_at", "reasoning") if values[k].strip()})
    try:
        data = inputs.load(inputs.ApDecisionSchema(), body)
    except ValidationFailed as e:
        apply_error(state, e)
        return party_id, None, state
    if not state.ok:
        return party_id, None, state
    decision = steps.ApDecision(
        reported_to_ap=data["reported_to_ap"],
        ap_reference=data.get("ap_reference"),
        reported_at=data.get("reported_at"),
        reasoning=data.get("reasoning"),
    )
    return party_id, decision, state


def correction_values(breach: Breach) -> dict[str, Any]:
    """The correction form filled with the current impact."""
    impact = breach.impact
    return {
        "reason": "",
        "data_subjects": str(impact.get("data_subjects", 0)),
        **{f"cat_{c['category']}": str(c["count"]) for c in impact.get("data_subject_categories", [])},
        "fields": [c["field"] for c in impact.get("personal_data_categories", [])],
        "add_parties": [],
    }


def read_correction(
    form: MultiDict[str, str], breach: Breach, convenant: Convenant
) -> tuple[steps.Correction | None, FormState]:
    """Check the correction form; only what differs from the current impact is corrected."""
    current = correction_values(breach)
    values: dict[str, Any] = typed(form, ["reason", "data_subjects", *(f"cat_{c}" for c in convenant.categories)])
    values["fields"] = [f for f in form.getlist("fields") if f in convenant.fields]
    values["add_parties"] = [p for p in form.getlist("add_parties") if convenant.party(p) is not None]
    state = FormState(shown(values))
    body: dict[str, Any] = {"reason": values["reason"]} if values["reason"].strip() else {}
    subjects = _count(values["data_subjects"], "data_subjects", state)
    if subjects is not None and str(subjects) != current["data_subjects"]:
        body["data_subjects"] = subjects
    categories = []
    for category in convenant.categories:
        count = _count(values[f"cat_{category}"], f"cat_{category}", state)
        if count:
            categories.append({"category": category, "count": count})
    before = {k[4:]: int(v) for k, v in current.items() if k.startswith("cat_") and k[4:] in convenant.categories}
    if {c["category"]: c["count"] for c in categories} != {k: n for k, n in before.items() if n}:
        body["data_subject_categories"] = categories
    if set(values["fields"]) != {f for f in current["fields"] if f in convenant.fields}:
        body["personal_data_categories"] = values["fields"]
    if values["add_parties"]:
        body["add_parties"] = values["add_parties"]
    if state.ok and set(body) <= {"reason"}:
        state.add("_form", "Wijzig ten minste één gegeven of voeg een partij toe.")
    try:
        data = inputs.load(inputs.CorrectionSchema(), body)
    except ValidationFailed as e:
        apply_error(state, e)
        return None, state
    if not state.ok:
        return None, state
    correction = steps.Correction.from_input(data)
    return correction, state


def _count(raw: str, name: str, state: FormState) -> int | None:
    text = raw.strip()
    if not text:
        return 0 if name.startswith("cat_") else None
    if not text.isdigit():
        state.add(name, "Verwacht een geheel getal van 0 of meer.")
        return None
    return int(text)


def read_measures(form: MultiDict[str, str]) -> tuple[str | None, FormState]:
    """Check the closing form: the measures taken are required."""
    values = typed(form, ("measures",))
    state = FormState(shown(values))
    body = {"measures": values["measures"]} if values["measures"].strip() else {}
    try:
        data = inputs.load(inputs.CloseSchema(), body)
    except ValidationFailed as e:
        apply_error(state, e)
        return None, state
    measures: str = data["measures"]
    return measures, state
