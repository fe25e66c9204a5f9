"""The CSV export of audit entries, written in pieces so a million rows never sit in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from broker.review.entries import entry_line, stream_entries

COLUMNS = (
    "index", "time", "name", "actor", "parties", "convenant", "processing_activity_id",
    "data_subject_id", "trace_id", "status",
)


def _cell(value: str) -> str:
    # Keep a spreadsheet from reading a cell as a formula (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_chunks(session: Session, where: Sequence[ColumnElement[bool]]) -> Iterator[str]:
    """The CSV export of the matching entries, newest first, in pieces of 500 rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for count, row in enumerate(stream_entries(session, where), 1):
        line = entry_line(row)
        writer.writerow([
            line.index, line.time.isoformat(), _cell(line.name), _cell(line.actor), ";".join(line.parties),
            line.convenant_id or "", line.processing_activity_id, line.data_subject_id or "",
            line.trace_id, line.status,
        ])
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
