"""Records as CSV: one row per record, object fields flattened as `adres_straat` and so on."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import Response, stream_with_context

from broker.errors import BadRequest, ValidationFailed
from schemas.convenant import Convenant

COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def columns(convenant: Convenant) -> list[str]:
    """Return the CSV columns of a convenant's records, in definition order."""
    result = ["category"]
    for spec in convenant.fields.values():
        if spec.fields:
            result.extend(f"{spec.name}_{sub.name}" for sub in spec.fields)
        else:
            result.append(spec.name)
    return result


def parse_records(text: str, convenant: Convenant) -> tuple[list[dict[str, Any]], list[int]]:
    """Parse CSV text into records and the file line on which each record starts.

    Empty cells are absent fields; unknown columns are kept, so a column the convenant does not
    allow is reported by validation with its name rather than silently dropped. A header that
    names a column twice is refused for the same reason.
    """
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [column.strip() for column in next(reader, [])]
    _check_header(header, convenant)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise BadRequest(
            "De kopregel noemt een kolom meer dan eens.",
            errors=[
                {"record": None, "field": c, "code": "duplicate_column", "message": "Kolom komt twee keer voor."}
                for c in repeated
            ],
        )
    objects = {
        f"{spec.name}_{sub.name}": (spec.name, sub.name) for spec in convenant.fields.values() for sub in spec.fields
    }
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines carry no record
        # reader.line_num is the line the record ends on; quoted cells may span lines.
        lines.append(reader.line_num - sum(cell.count("\n") for cell in cells))
        record: dict[str, Any] = {}
        if len(cells) > len(header):
            record["_extra_cells"] = cells[len(header) :]
        for column, value in zip(header, cells, strict=False):
            if value.strip() == "":
                continue
            if column in objects:
                parent, child = objects[column]
                record.setdefault(parent, {})[child] = value
            else:
                record[column] = value
        records.append(record)
    return records, lines


def _check_header(header: list[str], convenant: Convenant) -> None:
    """Refuse a file without a header line, or with a header cell that is no column name.

    Such cells are usually data (a first row without header), so they are never echoed back.
    """
    if not set(header) & set(columns(convenant)):
        raise ValidationFailed(
            "De CSV mist de kopregel met kolomnamen (zoals category, bsn, adres_gemeente).",
            errors=[{"record": None, "field": None, "code": "missing_header", "message": "Geen kopregel."}],
        )
    odd = [number for number, name in enumerate(header, 1) if not COLUMN_NAME.match(name)]
    if odd:
        raise ValidationFailed(
            "De kopregel bevat cellen die geen kolomnaam zijn.",
            errors=[
                {"record": None, "field": None, "code": "invalid_column_name", "message": f"Kolom {n} van de kopregel."}
                for n in odd
            ],
        )


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            row.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            row[key] = value
    return row


def render_records(records: Iterable[dict[str, Any]], convenant: Convenant) -> Iterator[str]:
    """Yield CSV text for records, header first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(convenant), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow(flatten(record))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def csv_download(rows: Iterable[dict[str, Any]], fieldnames: Sequence[str], filename: str) -> Response:
    """Stream dict rows as a `;`-separated CSV download (as Dutch spreadsheets expect)."""

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames, delimiter=";")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(chunks()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
