"""Records as CSV: one row per record, object fields flattened as `adres_straat` and so on."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from schemas.convenant import Convenant


def columns(convenant: Convenant) -> list[str]:
    """Return the CSV columns of a convenant's records, in definition order."""
    result = ["category"]
    for spec in convenant.fields.values():
        if spec.fields:
            result.extend(f"{spec.name}_{sub.name}" for sub in spec.fields)
        else:
            result.append(spec.name)
    return result


def parse_records(text: str, convenant: Convenant) -> list[dict[str, Any]]:
    """Parse CSV text into records; empty cells are absent fields, unknown columns are kept.

    Keeping unknown columns means a column the convenant does not allow is reported by
    validation with its name, rather than silently dropped.
    """
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    objects = {
        f"{spec.name}_{sub.name}": (spec.name, sub.name) for spec in convenant.fields.values() for sub in spec.fields
    }
    records: list[dict[str, Any]] = []
    for row in reader:
        record: dict[str, Any] = {}
        for column, value in row.items():
            if column is None:  # more cells than header columns
                record["_extra_cells"] = value
                continue
            if value is None or value.strip() == "":
                continue
            column = column.strip()
            if column in objects:
                parent, child = objects[column]
                record.setdefault(parent, {})[child] = value
            else:
                record[column] = value
        records.append(record)
    return records


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
