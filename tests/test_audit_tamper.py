"""Tamper evidence: the database refuses every manipulation of the audit log it can see, and
`broker audit verify` names the first bad index and its kind after an administrator got past it.

The same tests run on SQLite and PostgreSQL (BROKER_DATABASE_URL); what only one dialect has
(INSERT OR REPLACE, TRUNCATE, roles) is skipped on the other with a reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fixtures.audit import AUDIT_GUARDED, AuditDb
from fixtures.parties import Party
from fixtures.records import make_record
from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from audit.checkpoint import format_checkpoint, sign_note
from audit.columns import SEARCH_COLUMNS
from audit.jcs import encode_canonical
from audit.merkle import MerkleTree
from broker.app.db import make_engine
from broker.models import AuditCheckpoint, AuditEntryRow

Row = dict[str, Any]
SUBMISSIONS = 3
RECORDS = 3  # per submission: 1 summary + 3 record.received + 3 delivery.created entries

sqlite_only = pytest.mark.skipif(
    os.environ.get("BROKER_DATABASE_URL", "").startswith("postgresql"),
    reason="SQLite-specific statement (INSERT OR REPLACE / recursive_triggers)",
)
postgres_only = pytest.mark.skipif(
    not os.environ.get("BROKER_DATABASE_URL", "").startswith("postgresql"),
    reason="PostgreSQL-specific (TRUNCATE, roles, trigger management); SQLite has none of these",
)


# -- a log to tamper with -----------------------------------------------------------------------


@pytest.fixture
def log(rbl: Party, audit_db: AuditDb) -> AuditDb:
    """A log of init + client + token entries and three submissions; every step signs a checkpoint.

    So the latest checkpoint covers every entry, and each submission ends one.
    """
    for n in range(SUBMISSIONS):
        records = [make_record(RECORDS * n + k, gemeente="Duiven") for k in range(RECORDS)]
        response = rbl.submit(records)
        assert response.status_code == 201, response.json
    sizes = [c["tree_size"] for c in audit_db.checkpoints()]
    assert sizes[-1] == audit_db.size() and len(sizes) >= SUBMISSIONS + 1
    return audit_db


def checkpoint_sizes(db: AuditDb) -> list[int]:
    return [c["tree_size"] for c in db.checkpoints()]


def middle(db: AuditDb) -> int:
    """An index inside the second submission's entries: covered by two checkpoints."""
    sizes = checkpoint_sizes(db)
    return sizes[-3] + 3


def covering(db: AuditDb, index: int) -> int:
    """The size of the largest checkpoint that does not yet contain entry `index`."""
    return max([0, *(s for s in checkpoint_sizes(db) if s <= index)])


# -- forging rows ---------------------------------------------------------------------------------


def seal_row(row: Row, index: int, prev: bytes, **changes: Any) -> Row:
    """Return `row` rewritten as a correctly hashed entry `index` after chain hash `prev`."""
    record = json.loads(row["canonical"])
    record.update(changes, index=index, prev_hash=prev.hex())
    canonical = encode_canonical(record)
    return {
        **row,
        "idx": index,
        "canonical": canonical,
        "prev_hash": prev,
        "leaf_hash": hashlib.sha256(b"\x00" + canonical).digest(),
        "chain_hash": hashlib.sha256(prev + canonical).digest(),
    }


def reseal_from(rows: list[Row], start: int) -> list[Row]:
    """Re-hash entries `start`.. so that the chain is whole again (what a careful forger does)."""
    out = rows[:start]
    prev = out[-1]["chain_hash"] if out else bytes(32)
    for row in rows[start:]:
        out.append(seal_row(row, len(out), prev))
        prev = out[-1]["chain_hash"]
    return out


def renumber(rows: list[Row]) -> list[Row]:
    """Make the idx column contiguous again, leaving every other column as it is."""
    return [{**row, "idx": n} for n, row in enumerate(rows)]


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def other_subject(rows: list[Row], index: int) -> str:
    subjects = [json.loads(r["canonical"])["data_subject_id"] for r in rows]
    return next(s for s in subjects if s and s != subjects[index])


def swap(rows: list[Row], i: int, j: int) -> list[Row]:
    """Swap entries i and j (each keeps its own bytes and hashes; the idx column is rewritten)."""
    out = list(rows)
    out[i], out[j] = out[j], out[i]
    return renumber(out)


Tamper = Callable[[list[Row], AuditDb], tuple[list[Row], str, int]]
"""A manipulation: (stored rows, db) -> (rows to store instead, expected kind, expected index)."""


def _edit_byte(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    rows[m] = {**rows[m], "canonical": flip_byte(rows[m]["canonical"], len(rows[m]["canonical"]) // 2)}
    return rows, "edited", m


def _edit_field(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    canonical = rows[m]["canonical"].replace(b'"status":"Ok"', b'"status":"Error"')
    assert canonical != rows[m]["canonical"]
    rows[m] = {**rows[m], "canonical": canonical}
    return rows, "edited", m


def _edit_first(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    rows[0] = {**rows[0], "canonical": flip_byte(rows[0]["canonical"], 10)}
    return rows, "edited", 0


def _edit_rehashed(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    """The entry's own hashes are made to fit; its successor no longer links to it."""
    m = middle(db)
    prev = rows[m - 1]["chain_hash"]
    rows[m] = seal_row(rows[m], m, prev, data_subject_id=other_subject(rows, m))
    return rows, "edited", m


def _edit_resealed(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    """Edited and the whole chain after it re-hashed: only the signed checkpoints catch it."""
    m = middle(db)
    rows[m] = {**rows[m], "canonical": rows[m]["canonical"].replace(b'"Ok"', b'"Error"')}
    return reseal_from(rows, m), "checkpoint_mismatch", covering(db, m)


def _edit_last_resealed(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    last = len(rows) - 1
    rows[last] = seal_row(rows[last], last, rows[last - 1]["chain_hash"],
                          data_subject_id=other_subject(rows, last))
    return rows, "checkpoint_mismatch", covering(db, last)


def _edit_leaf_column(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    rows[m] = {**rows[m], "leaf_hash": flip_byte(rows[m]["leaf_hash"], 0)}
    return rows, "edited", m


def _edit_chain_column(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    rows[m] = {**rows[m], "chain_hash": flip_byte(rows[m]["chain_hash"], 31)}
    return rows, "edited", m


def _delete_middle(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    return rows[:m] + rows[m + 1 :], "deleted", m


def _delete_middle_renumbered(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    return renumber(rows[:m] + rows[m + 1 :]), "deleted", m


def _delete_range(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    return renumber(rows[:m] + rows[m + 3 :]), "deleted", m


def _delete_first(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    return rows[1:], "deleted", 0


def _delete_first_renumbered(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    return renumber(rows[1:]), "deleted", 0


def _insert_forged(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    """A well-formed entry sealed after entry m-1; the real entries shift up one place."""
    m = middle(db)
    forged = seal_row(rows[m], m, rows[m - 1]["chain_hash"], data_subject_id=other_subject(rows, m))
    return renumber([*rows[:m], forged, *rows[m:]]), "inserted", m


def _insert_copy(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    return renumber([*rows[:m], rows[1], *rows[m:]]), "inserted", m


def _append_copy(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    n = len(rows)
    return renumber([*rows, rows[middle(db)]]), "inserted", n


def _reorder(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    return swap(rows, m, m + 3), "reordered", m


def _reorder_adjacent(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    m = middle(db)
    return swap(rows, m, m + 1), "reordered", m


def _reorder_first(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    return swap(rows, 0, 1), "reordered", 0


def _truncate(k: int) -> Tamper:
    def tamper(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
        return rows[: len(rows) - k], "truncated", len(rows) - k

    return tamper


def _truncate_to_checkpoint(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    """Back to exactly the previous checkpoint: every remaining checkpoint but the last fits."""
    keep = checkpoint_sizes(db)[-2]
    return rows[:keep], "truncated", keep


def _truncate_all(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    return [], "truncated", 0


def _edit_parties_column(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    """Party B added to the parties of an entry about party A's pupil: B would be shown it."""
    m = middle(db)
    rows[m] = {**rows[m], "parties": rows[m]["parties"] + "swv-passend-wijs,"}
    return rows, "edited", m


def _truncate_and_regrow(rows: list[Row], db: AuditDb) -> tuple[list[Row], str, int]:
    """The tail replaced by as many forged, correctly chained entries: the tree differs."""
    keep = checkpoint_sizes(db)[-2] + 2
    forged = [{**row, "canonical": row["canonical"].replace(b'"Ok"', b'"Unset"')} for row in rows[keep:]]
    return reseal_from(rows[:keep] + forged, keep), "checkpoint_mismatch", checkpoint_sizes(db)[-2]


TAMPERING: dict[str, Tamper] = {
    "edited: one byte flipped": _edit_byte,
    "edited: a field changed": _edit_field,
    "edited: first entry": _edit_first,
    "edited: entry re-hashed, successor left": _edit_rehashed,
    "edited: whole chain re-hashed after it": _edit_resealed,
    "edited: last entry re-hashed": _edit_last_resealed,
    "edited: leaf_hash column": _edit_leaf_column,
    "edited: chain_hash column": _edit_chain_column,
    "edited: parties column": _edit_parties_column,
    "deleted: middle, idx gap": _delete_middle,
    "deleted: middle, renumbered": _delete_middle_renumbered,
    "deleted: three in the middle": _delete_range,
    "deleted: first, idx gap": _delete_first,
    "deleted: first, renumbered": _delete_first_renumbered,
    "inserted: forged entry, sealed": _insert_forged,
    "inserted: copy of an old entry": _insert_copy,
    "inserted: copy appended at the tail": _append_copy,
    "reordered: two swapped": _reorder,
    "reordered: neighbours swapped": _reorder_adjacent,
    "reordered: first two swapped": _reorder_first,
    "truncated: last entry": _truncate(1),
    "truncated: last three": _truncate(3),
    "truncated: back to the previous checkpoint": _truncate_to_checkpoint,
    "truncated: everything": _truncate_all,
    "truncated and regrown": _truncate_and_regrow,
}


# -- detected by `broker audit verify` --------------------------------------------------------


def test_clean_log_verifies(log: AuditDb, audit_verify: Any) -> None:
    """An untouched log verifies: exit 0 and OK with every entry and checkpoint."""
    outcome = audit_verify()
    assert outcome.exit_code == 0, outcome.output
    assert f"OK: {log.size()} entries" in outcome.output
    assert f"{len(log.checkpoints())} checkpoints kloppen" in outcome.output
    assert outcome.kind is None


@pytest.mark.parametrize("case", TAMPERING)
def test_tampering_is_detected_at_the_first_bad_index(case: str, log: AuditDb, audit_verify: Any) -> None:
    """After the guards are bypassed, verify exits non-zero naming the kind and the first bad index."""
    rows, kind, index = TAMPERING[case](log.rows(), log)
    log.rewrite(rows)
    outcome = audit_verify()
    assert outcome.exit_code == 1, outcome.output
    assert "OK:" not in outcome.output
    assert (outcome.kind, outcome.index) == (kind, index), outcome.output


@postgres_only
@pytest.mark.parametrize("case", ["deleted: middle, idx gap", "edited: a field changed", "truncated: last three",
                                  "edited: parties column"])
def test_tampering_with_triggers_disabled_is_detected(case: str, log: AuditDb, audit_verify: Any) -> None:
    """A superuser's ALTER TABLE ... DISABLE TRIGGER ALL gets past the guards, not past verify."""
    rows, kind, index = TAMPERING[case](log.rows(), log)
    log.rewrite(rows, method="disable")
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind, outcome.index) == (1, kind, index), outcome.output


def _other(rows: list[Row], column: str, row: Row) -> Any:
    """Another value of `column` that the log holds."""
    return next(r[column] for r in rows if r[column] not in (None, row[column]))


# One rewrite per search column, each a value such a column could hold: a column added to
# SEARCH_COLUMNS fails the test below until it has one.
COLUMN_REWRITES: dict[str, Callable[[Row, list[Row]], Any]] = {
    "trace_id": lambda row, rows: _other(rows, "trace_id", row),
    "name": lambda row, rows: _other(rows, "name", row),
    "processing_activity_id": lambda row, rows: _other(rows, "processing_activity_id", row),
    "data_subject_id": lambda row, rows: _other(rows, "data_subject_id", row),
    "actor_type": lambda row, rows: "system",
    "actor_id": lambda row, rows: _other(rows, "actor_id", row),
    "actor_party": lambda row, rows: "swv-passend-wijs",
    "parties": lambda row, rows: row["parties"] + "swv-passend-wijs,",
    "convenant_id": lambda row, rows: "een-ander-convenant",
    "start_time": lambda row, rows: row["start_time"] + dt.timedelta(microseconds=1),
    "prev_hash": lambda row, rows: flip_byte(row["prev_hash"], 0),
}


@pytest.mark.parametrize("column", SEARCH_COLUMNS)
def test_rewritten_search_column_is_detected(column: str, log: AuditDb, audit_verify: Any) -> None:
    """A search column rewritten alone past the guards is found as edited at its entry, naming the column."""
    rows = log.rows()
    m = middle(log)
    value = COLUMN_REWRITES[column](rows[m], rows)
    assert value != rows[m][column]
    table = AuditEntryRow.__table__
    with log.bypass() as conn:
        conn.execute(update(table).where(table.c.idx == m).values({column: value}))
    assert log.rows()[m][column] == value and log.rows()[m]["canonical"] == rows[m]["canonical"]
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind, outcome.index) == (1, "edited", m), outcome.output
    assert f"the {column} column of entry {m} " in outcome.output


def test_column_rewritten_in_the_last_entry_is_detected(log: AuditDb, audit_verify: Any) -> None:
    """The last entry's columns are checked too, not only those followed by another entry."""
    last = log.size() - 1
    table = AuditEntryRow.__table__
    with log.bypass() as conn:
        conn.execute(update(table).where(table.c.idx == last).values(parties=",swv-passend-wijs,"))
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind, outcome.index) == (1, "edited", last), outcome.output
    assert "the parties column" in outcome.output


def test_first_rewritten_column_is_named(log: AuditDb, audit_verify: Any) -> None:
    """With columns of two entries rewritten, verify names the lower index."""
    m = middle(log)
    table = AuditEntryRow.__table__
    with log.bypass() as conn:
        conn.execute(update(table).where(table.c.idx == m + 2).values(name="vervalst"))
        conn.execute(update(table).where(table.c.idx == m).values(convenant_id="ander"))
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind, outcome.index) == (1, "edited", m), outcome.output
    assert "the convenant_id column" in outcome.output


@pytest.fixture
def legacy_log(app: Any, log: AuditDb) -> AuditDb:
    """The log as a broker sealed it before entries named their parties and convenant: the same
    entries without those two fields, resealed, under one checkpoint signed by the broker's key."""
    from broker.auditing import step as auditing

    rows = []
    for row in log.rows():
        record = json.loads(row["canonical"])
        del record["parties"], record["convenant_id"]
        rows.append({**row, "canonical": encode_canonical(record)})
    rows = reseal_from(rows, 0)
    with app.app_context():
        signer = auditing.checkpoint_signer()
        root = MerkleTree(row["leaf_hash"] for row in rows).root()
        note = sign_note(format_checkpoint(signer.origin, len(rows), root), signer.origin, signer.private_key)
    log.rewrite(rows)
    checkpoints = AuditCheckpoint.__table__
    with log.bypass() as conn:
        conn.execute(checkpoints.delete())
        conn.execute(insert(checkpoints), [{"tree_size": len(rows), "root_hash": root, "note": note,
                                            "signed_at": dt.datetime.now(dt.UTC)}])
    return log


def test_entries_sealed_before_parties_were_recorded_still_verify(legacy_log: AuditDb, audit_verify: Any) -> None:
    """An older log without parties in its entries verifies, and says which columns it could not check."""
    outcome = audit_verify()
    assert outcome.exit_code == 0, outcome.output
    assert f"OK: {legacy_log.size()} entries" in outcome.output
    assert f"{legacy_log.size()} entries zijn verzegeld voordat de entry zelf partijen" in outcome.output


def test_older_entries_keep_every_other_column_checked(legacy_log: AuditDb, audit_verify: Any) -> None:
    """In an older entry a rewritten name column is still found (its parties cannot be)."""
    m = legacy_log.size() // 2
    table = AuditEntryRow.__table__
    with legacy_log.bypass() as conn:
        conn.execute(update(table).where(table.c.idx == m).values(name="vervalst"))
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind, outcome.index) == (1, "edited", m), outcome.output
    assert "the name column" in outcome.output


def test_forged_row_that_links_passes_the_trigger_but_not_verify(log: AuditDb, audit_verify: Any) -> None:
    """An INSERT with the right idx and prev_hash but made-up bytes is caught as an edited entry."""
    last = log.rows()[-1]
    size = log.size()
    forged = {**last, "idx": size, "prev_hash": last["chain_hash"],
              "canonical": last["canonical"].replace(b'"Ok"', b'"Error"'),
              "leaf_hash": secrets.token_bytes(32), "chain_hash": secrets.token_bytes(32)}
    log.execute(insert(AuditEntryRow.__table__), [forged])  # the guards let it through
    assert log.size() == size + 1
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind, outcome.index) == (1, "edited", size), outcome.output


@pytest.mark.parametrize("case", ["body edited", "signature edited", "another key"])
def test_forged_checkpoint_is_detected(case: str, log: AuditDb, audit_verify: Any) -> None:
    """A checkpoint note that is not validly signed by the broker's key fails verification."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoint import sign_note

    checkpoint = log.checkpoints()[-2]
    note: str = checkpoint["note"]
    body, _, signature = note.partition("\n\n")
    forged = {
        "body edited": note.replace(f"\n{checkpoint['tree_size']}\n", f"\n{checkpoint['tree_size'] - 1}\n"),
        "signature edited": body + "\n\n" + signature[:-6] + ("A" if signature[-6] != "A" else "B") + signature[-5:],
        "another key": sign_note(body + "\n", body.split("\n")[0], Ed25519PrivateKey.generate()),
    }[case]
    assert forged != note
    with log.bypass() as conn:
        conn.execute(text("UPDATE audit_checkpoints SET note = :note WHERE tree_size = :size"),
                     {"note": forged, "size": checkpoint["tree_size"]})
    outcome = audit_verify()
    assert outcome.exit_code == 1, outcome.output
    assert outcome.kind == "bad_signature", outcome.output


@postgres_only
def test_verify_closes_its_cursor_when_it_stops_early(log: AuditDb, audit_verify: Any) -> None:
    """`broker audit verify` closes its streaming cursor even when it stops before the last row."""
    checkpoint = log.checkpoints()[-1]
    with log.bypass() as conn:
        conn.execute(text("UPDATE audit_checkpoints SET note = :note WHERE tree_size = :size"),
                     {"note": checkpoint["note"].replace("\n", "\n\n", 1), "size": checkpoint["tree_size"]})
    outcome = audit_verify()
    assert (outcome.exit_code, outcome.kind) == (1, "bad_signature"), outcome.output
    assert outcome.leaks == ()


# -- refused by the database ---------------------------------------------------------------------


def refused(db: AuditDb, statement: Any, params: Any = None, match: str = "") -> str:
    """Run `statement` with the guards in place; assert the database refuses it and nothing changed."""
    before = (db.rows(), db.checkpoints(), db.nodes())
    with pytest.raises(DBAPIError) as caught:
        db.execute(statement, params)
    message = str(caught.value.orig)
    assert match.lower() in message.lower(), message
    assert (db.rows(), db.checkpoints(), db.nodes()) == before
    return message


MUTATIONS = {
    "UPDATE one entry": "UPDATE audit_entries SET name = 'vervalst' WHERE idx = 1",
    "UPDATE canonical bytes": "UPDATE audit_entries SET canonical = prev_hash WHERE idx = 2",
    "UPDATE every entry": "UPDATE audit_entries SET actor_id = 'x'",
    "UPDATE the idx column": "UPDATE audit_entries SET idx = idx + 1000",
    "DELETE one entry": "DELETE FROM audit_entries WHERE idx = 1",
    "DELETE the last entry": "DELETE FROM audit_entries WHERE idx = (SELECT MAX(idx) FROM audit_entries)",
    "DELETE everything": "DELETE FROM audit_entries",
    "UPDATE a Merkle node": "UPDATE audit_nodes SET hash = hash || hash WHERE level = 1 AND idx = 0",
    "DELETE Merkle nodes": "DELETE FROM audit_nodes",
    "UPDATE a checkpoint": "UPDATE audit_checkpoints SET note = 'x'",
    "DELETE checkpoints": "DELETE FROM audit_checkpoints",
    "UPDATE a register activity": "UPDATE register_activities SET version = '99'",
    "DELETE register activities": "DELETE FROM register_activities",
}


@pytest.mark.parametrize("statement", MUTATIONS.values(), ids=list(MUTATIONS))
def test_updates_and_deletes_are_refused(statement: str, log: AuditDb, audit_verify: Any) -> None:
    """The append-only triggers refuse UPDATE and DELETE on every audit table; the log stays intact."""
    refused(log, statement, match="append-only")
    assert audit_verify().exit_code == 0


def _copy_of(row: Row, **changes: Any) -> Row:
    return {**row, **changes}


@pytest.mark.parametrize("target", ["first", "last"])
def test_insert_or_replace_is_refused(target: str, log: AuditDb) -> None:
    """INSERT OR REPLACE / ON CONFLICT DO UPDATE over an existing idx never rewrites an entry."""
    rows = log.rows()
    row = rows[0] if target == "first" else rows[-1]
    forged = _copy_of(row, canonical=row["canonical"].replace(b'"Ok"', b'"Error"'))
    table = AuditEntryRow.__table__
    if log.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert

        refused(log, insert(table).prefix_with("OR REPLACE"), [forged])
        refused(log, text(f"REPLACE INTO audit_entries SELECT * FROM audit_entries WHERE idx = {row['idx']}"))
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
    upsert = dialect_insert(table).values(forged)
    refused(log, upsert.on_conflict_do_update(index_elements=["idx"], set_={"canonical": forged["canonical"]}))
    refused(log, upsert.on_conflict_do_nothing(index_elements=["idx"]))


@sqlite_only
@pytest.mark.parametrize(
    "statement",
    [
        "INSERT OR REPLACE INTO audit_nodes (level, idx, hash) VALUES (1, 0, x'00')",
        "INSERT OR REPLACE INTO audit_checkpoints (tree_size, root_hash, note, signed_at) "
        "SELECT tree_size, x'00', note, signed_at FROM audit_checkpoints LIMIT 1",
        "INSERT OR REPLACE INTO register_activities (uri, scope, activity, version, digest, text, "
        "registered_at) SELECT uri, scope, activity, version, 'sha256:0', '{}', registered_at "
        "FROM register_activities LIMIT 1",
        "INSERT INTO audit_nodes (level, idx, hash) VALUES (1, 0, x'00') "
        "ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash",
    ],
    ids=["nodes", "checkpoints", "register", "nodes upsert"],
)
def test_replace_in_the_other_audit_tables_is_refused(statement: str, log: AuditDb) -> None:
    """With the app's recursive_triggers, REPLACE's implicit DELETE fires the append-only trigger."""
    refused(log, statement, match="append-only")


@sqlite_only
@pytest.mark.parametrize("table", ["audit_nodes", "audit_checkpoints", "register_activities"])
def test_replace_is_refused_without_recursive_triggers(table: str, log: AuditDb) -> None:
    """Even a connection that does not set recursive_triggers cannot REPLACE an audit row."""
    statement = {
        "audit_nodes": "INSERT OR REPLACE INTO audit_nodes (level, idx, hash) VALUES (1, 0, x'00')",
        "audit_checkpoints": "INSERT OR REPLACE INTO audit_checkpoints (tree_size, root_hash, note, "
        "signed_at) SELECT tree_size, x'00', note, signed_at FROM audit_checkpoints LIMIT 1",
        "register_activities": "INSERT OR REPLACE INTO register_activities (uri, scope, activity, "
        "version, digest, text, registered_at) SELECT uri, scope, activity, version, 'sha256:0', "
        "'{}', registered_at FROM register_activities LIMIT 1",
    }[table]
    path = make_url(str(log.engine.url)).database
    before = (log.checkpoints(), log.nodes())
    connection = sqlite3.connect(str(path))
    try:
        assert connection.execute("PRAGMA recursive_triggers").fetchone() == (0,)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute(statement)
    finally:
        connection.rollback()
        connection.close()
    assert (log.checkpoints(), log.nodes()) == before


def _next_row(db: AuditDb, **changes: Any) -> Row:
    """A row shaped like the last entry, placed right after it unless `changes` say otherwise."""
    rows = db.rows()
    last = rows[-1]
    return {**seal_row(last, len(rows), last["chain_hash"]), **changes}


BROKEN_LINKS: dict[str, Callable[[list[Row]], dict[str, Any]]] = {
    "idx leaves a gap": lambda rows: {"idx": len(rows) + 1},
    "idx far ahead": lambda rows: {"idx": 10**9},
    "idx reused": lambda rows: {"idx": len(rows) - 1},
    "idx negative": lambda rows: {"idx": -1},
    "prev_hash random": lambda rows: {"prev_hash": secrets.token_bytes(32)},
    "prev_hash of an older entry (fork)": lambda rows: {"prev_hash": rows[-2]["chain_hash"]},
    "prev_hash genesis": lambda rows: {"prev_hash": bytes(32)},
}


@pytest.mark.parametrize("case", BROKEN_LINKS)
def test_insert_must_extend_the_chain(case: str, log: AuditDb) -> None:
    """An INSERT that is not the next idx or does not link to the last chain hash is refused."""
    row = _next_row(log, **BROKEN_LINKS[case](log.rows()))
    refused(log, insert(AuditEntryRow.__table__), [row])


def test_batch_insert_with_one_broken_link_is_refused_whole(log: AuditDb) -> None:
    """In a multi-row INSERT, one row that does not link makes the database refuse all of them."""
    first = _next_row(log)
    second = {**seal_row(first, first["idx"] + 1, first["chain_hash"]), "prev_hash": secrets.token_bytes(32)}
    refused(log, insert(AuditEntryRow.__table__), [first, second])


def test_insert_that_extends_the_chain_is_accepted(log: AuditDb, audit_verify: Any) -> None:
    """The guards do let a correctly sealed next entry in (the control for the refusals above)."""
    log.execute(insert(AuditEntryRow.__table__), [_next_row(log)])
    assert audit_verify().exit_code == 0


@postgres_only
@pytest.mark.parametrize("table", AUDIT_GUARDED)
@pytest.mark.parametrize("cascade", ["", " CASCADE"])
def test_truncate_is_refused(table: str, cascade: str, log: AuditDb) -> None:
    """TRUNCATE on any audit table is refused by its statement trigger (PostgreSQL)."""
    refused(log, f"TRUNCATE {table}{cascade}", match="append-only: TRUNCATE refused")


# -- the app's own role on PostgreSQL -----------------------------------------------------------


@pytest.fixture
def app_role(log: AuditDb) -> Iterator[Any]:
    """An engine connected as a fresh LOGIN role that is a member of broker_app (PostgreSQL)."""
    name = f"app_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(16)
    with log.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE broker_app")
    url = make_url(log.engine.url.render_as_string(hide_password=False))
    engine = make_engine(url.set(username=name, password=password))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == name
            assert conn.execute(text("SELECT pg_has_role('broker_app', 'member')")).scalar_one()
        yield engine
    finally:
        engine.dispose()
        with log.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")


ROLE_REFUSALS = {
    "ALTER TABLE DISABLE TRIGGER ALL": "ALTER TABLE audit_entries DISABLE TRIGGER ALL",
    "ALTER TABLE DISABLE TRIGGER one": "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only",
    "DROP TRIGGER append_only": "DROP TRIGGER audit_entries_append_only ON audit_entries",
    "DROP TRIGGER extend_chain": "DROP TRIGGER audit_entries_extend_chain ON audit_entries",
    "DROP TRIGGER no_truncate": "DROP TRIGGER audit_entries_no_truncate ON audit_entries",
    "CREATE TRIGGER": "CREATE TRIGGER sneaky BEFORE INSERT ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION broker_refuse_change()",
    "replace the trigger function": "CREATE OR REPLACE FUNCTION broker_audit_extend_chain() "
    "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "DROP FUNCTION": "DROP FUNCTION broker_refuse_change() CASCADE",
    "UPDATE": "UPDATE audit_entries SET name = 'vervalst' WHERE idx = 1",
    "DELETE": "DELETE FROM audit_entries WHERE idx = 1",
    "TRUNCATE": "TRUNCATE audit_entries",
    "UPDATE nodes": "UPDATE audit_nodes SET hash = hash WHERE level = 1",
    "DELETE nodes": "DELETE FROM audit_nodes",
    "TRUNCATE nodes": "TRUNCATE audit_nodes",
    "UPDATE checkpoints": "UPDATE audit_checkpoints SET note = note",
    "DELETE checkpoints": "DELETE FROM audit_checkpoints",
    "TRUNCATE checkpoints": "TRUNCATE audit_checkpoints",
    "UPDATE register": "UPDATE register_activities SET version = '99'",
    "DELETE register": "DELETE FROM register_activities",
    "SET session_replication_role": "SET session_replication_role = replica",
    "DROP TABLE": "DROP TABLE audit_entries",
    "ALTER TABLE RENAME": "ALTER TABLE audit_entries RENAME TO audit_entries_old",
    "ALTER TABLE OWNER": "ALTER TABLE audit_entries OWNER TO CURRENT_USER",
}


@postgres_only
@pytest.mark.parametrize("statement", ROLE_REFUSALS.values(), ids=list(ROLE_REFUSALS))
def test_app_role_lacks_the_rights(statement: str, app_role: Any, log: AuditDb) -> None:
    """As the app's role every trigger bypass, UPDATE, DELETE and TRUNCATE fails on privilege (42501)."""
    before = (log.rows(), log.checkpoints(), log.nodes())
    with app_role.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.exec_driver_sql(statement)
    error = caught.value.orig
    assert getattr(error, "sqlstate", None) == "42501", error
    message = str(error)
    assert "permission denied" in message or "must be owner" in message, message
    assert "append-only" not in message  # refused by the grants, before any trigger could run
    assert (log.rows(), log.checkpoints(), log.nodes()) == before


@postgres_only
def test_app_role_can_append_and_read_but_not_break_the_chain(app_role: Any, log: AuditDb,
                                                             audit_verify: Any) -> None:
    """The app's role may read and append a linking entry; a non-linking INSERT still fails."""
    with app_role.begin() as conn:
        conn.execute(insert(AuditEntryRow.__table__), [_next_row(log)])
    bad = _next_row(log, prev_hash=secrets.token_bytes(32))
    with app_role.connect() as conn, pytest.raises(DBAPIError, match="does not extend the chain"):
        conn.execute(insert(AuditEntryRow.__table__), [bad])
    assert audit_verify().exit_code == 0
