"""Records as CSV: one row per record, object fields flattened as `adres_straat` and so on."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from flask import Response, stream_with_context

from broker.app.errors import BadRequest, ValidationFailed
from schemas.convenant import Convenant
from schemas.fields import reported_name

COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# The csv module refuses a cell over 131,072 characters with an error of its own (a 500). The body
# limit (MAX_CONTENT_LENGTH) bounds a cell already, and a long cell is the validator's to refuse
# (`too_long`, naming record and field), so the module's limit is lifted, once, for the process.
csv.field_size_limit(2**31 - 1)


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
    allow is reported by validation rather than silently dropped: by its name if that is a plain
    identifier, else as `kolom N` (its position). A header that names a column twice is refused
    for the same reason.
    """
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [column.strip() for column in next(reader, [])]
    _check_header(header, convenant)
    known = set(columns(convenant))
    keys = [c if c in known else reported_name(c, n, "kolom") for n, c in enumerate(header, 1)]
    repeated = [n for n, c in enumerate(header) if c in header[:n]]
    if repeated:
        raise BadRequest(
            "De kopregel noemt een kolom meer dan eens.",
            errors=[
                {"record": None, "field": keys[n], "code": "duplicate_column", "message": "Kolom komt twee keer voor."}
                for n in repeated
            ],
        )
    objects = {
        f"{spec.name}_{sub.name}": (spec.name, sub.name) for spec in convenant.fields.values() for sub in spec.fields
    }
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines carry no record
            # reader.line_num is the line the record ends on; quoted cells may span lines.
            lines.append(reader.line_num - sum(cell.count("\n") for cell in cells))
            records.append(_record(cells, keys, objects))
    except csv.Error as e:
        raise ValidationFailed(
            "De CSV kan vanaf deze regel niet worden gelezen.",
            errors=[
                {
                    "record": len(records),
                    "field": None,
                    "code": "invalid_csv",
                    "message": "Deze regel is geen geldige CSV.",
                    "line": reader.line_num,
                }
            ],
        ) from e
    return records, lines


def _record(cells: list[str], keys: list[str], objects: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """One record from a row's cells, under the header's column keys."""
    record: dict[str, Any] = {}
    if len(cells) > len(keys):
        record["_extra_cells"] = cells[len(keys) :]
    for column, value in zip(keys, cells, strict=False):
        if value.strip() == "":
            continue
        if column in objects:
            parent, child = objects[column]
            record.setdefault(parent, {})[child] = value
        else:
            record[column] = value
    return record


def _check_header(header: list[str], convenant: Convenant) -> None:
    """Refuse a file without a header line, or with a header cell that is no column name.

    Such cells are usually data (a first row without header), so they are named by position only.
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
                {
                    "record": None,
                    "field": f"kolom {n}",
                    "code": "invalid_column_name",
                    "message": f"Kolom {n} van de kopregel.",
                }
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


# -- writing: every CSV the broker emits goes through `csv_text` -----------------------------------

# OWASP "CSV Injection": a spreadsheet takes a cell that starts with one of these for a formula.
FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise(value: Any) -> Any:
    """The cell as written: text a spreadsheet would run as a formula gets a `'` in front.

    Text that starts with `=`, `+`, `-`, `@`, a tab or a CR, or with `'`s and then one of those,
    gets one more `'` in front; a program reading the CSV drops one leading `'` from a cell that
    matches `'+[=+\\-@\t\r]` to get the text back. Numbers the broker computes (ints, floats) are
    no text a caller typed and stay as they are, so a count reads as a number; None is empty.
    """
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if FORMULA.match(text) else text


def csv_text(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ",", rows_per_chunk: int = 1
) -> Iterator[str]:
    """Yield CSV text, header first, in pieces of `rows_per_chunk` rows; every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    for count, row in enumerate(rows, 1):
        writer.writerow([neutralise(value) for value in row])
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def dict_rows(rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> Iterator[list[Any]]:
    """The values of dict rows in the order of `fieldnames` (absent is empty, others are left out)."""
    for row in rows:
        yield [row.get(name) for name in fieldnames]


def render_records(records: Iterable[dict[str, Any]], convenant: Convenant) -> Iterator[str]:
    """Yield CSV text for records, header first (`,`-separated, the convenant's columns)."""
    header = columns(convenant)
    return csv_text(header, dict_rows(map(flatten, records), header))


def csv_response(chunks: Iterable[str], filename: str, headers: Mapping[str, str] | None = None) -> Response:
    """A CSV download streamed from `chunks` (made by `csv_text`)."""
    return Response(
        stream_with_context(iter(chunks)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


def csv_download(rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str], filename: str) -> Response:
    """Stream dict rows as a `;`-separated CSV download (as Dutch spreadsheets expect)."""
    return csv_response(csv_text(fieldnames, dict_rows(rows, fieldnames), delimiter=";"), filename)
