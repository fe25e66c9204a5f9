"""The access report as one table with Dutch headers, for its CSV and its PDF."""

from __future__ import annotations

import datetime as dt

from broker.rights.access_report import AccessReport

TABLE_COLUMNS = (
    "Onderdeel",
    "Convenant",
    "Tijd",
    "Handeling",
    "Van",
    "Aan",
    "Categorie",
    "Gegevens",
    "Verwerkingsactiviteit",
    "Logboeknummer",
)


def _line(part: str, convenant_id: str, moment: dt.datetime, action: str, *rest: str) -> tuple[str, ...]:
    """One row of the report table; the columns after `action` default to empty."""
    tail = (*rest, *("",) * (len(TABLE_COLUMNS) - 4 - len(rest)))
    return (part, convenant_id, f"{moment:%d-%m-%Y %H:%M:%S}", action, *tail)


def report_table(report: AccessReport) -> list[tuple[str, ...]]:
    """The report as one table with Dutch headers (`TABLE_COLUMNS`), for the CSV and the PDF."""
    name = report.party_name
    lines = [
        _line(
            "Verwerking",
            r.convenant_id,
            r.time,
            r.action,
            name(r.source),
            name(r.target),
            r.category or "",
            "; ".join(r.fields),
            r.activity,
            str(r.index),
        )
        for r in report.rows
    ]
    lines += [
        _line(
            "Bewaard bij de broker",
            h.convenant_id,
            h.received_at,
            "Ontvangen en nog bewaard",
            name(h.sender),
            ", ".join(name(r) for r in h.recipients),
            h.category,
            "; ".join(f"{label}: {value}" for label, value in h.values),
            h.activity,
        )
        for h in report.records
    ]
    lines += [
        _line("Beperking", r.convenant_id, r.started_at, "Verwerking beperkt", name(r.requested_by), "", "", r.reason)
        for r in report.restrictions
    ]
    lines += [
        _line("Beëindiging", e.convenant_id, e.ended_at, "Casus beëindigd", name(e.party), "", "", e.reason)
        for e in report.endings
    ]
    lines += [
        _line(
            "Datalek",
            b.convenant_id,
            b.detected_at,
            f"Datalek nr. {b.number} ({'gesloten' if b.closed else 'open'})",
            name(b.reporter),
        )
        for b in report.breaches
    ]
    return lines
