"""The CSV export of audit entries, written in pieces so a million rows never sit in memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from broker.app.csvio import csv_text
from broker.auditing.entries import entry_line, stream_entries

COLUMNS = (
    "index", "time", "name", "actor", "parties", "convenant", "processing_activity_id",
    "data_subject_id", "trace_id", "status",
)


def _rows(session: Session, where: Sequence[ColumnElement[bool]]) -> Iterator[list[object]]:
    for row in stream_entries(session, where):
        line = entry_line(row)
        yield [
            line.index, line.time.isoformat(), line.name, line.actor, ";".join(line.parties),
            line.convenant_id, line.processing_activity_id, line.data_subject_id, line.trace_id, line.status,
        ]


def csv_chunks(session: Session, where: Sequence[ColumnElement[bool]]) -> Iterator[str]:
    """The CSV export of the matching entries, newest first, in pieces of 500 rows."""
    return csv_text(COLUMNS, _rows(session, where), rows_per_chunk=500)
