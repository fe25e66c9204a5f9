"""Entries, canonical JSON, the hash chain, whole-log verification and receipts."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.checkpoint import format_checkpoint, sign_note, verifier_key
from audit.columns import SEARCH_COLUMNS, UNRECORDED, search_columns
from audit.entry import (
    GENESIS_HASH,
    Actor,
    AuditEntry,
    ForeignOperation,
    canonicalize_entry,
    chain_next,
    decode_record,
    format_time,
    hash_leaf,
    new_span_id,
    new_trace_id,
    seal_entries,
)
from audit.jcs import CanonicalizationError, encode_canonical
from audit.merkle import MerkleTree
from audit.receipt import ReceiptError, make_receipt, verify_receipt
from audit.verify import ColumnRow, ProblemKind, StoredRow, verify_log

ORIGIN = "broker.example.nl/audit"
KEY = Ed25519PrivateKey.generate()
VKEY = verifier_key(ORIGIN, KEY.public_key())
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def make_entry(n: int, **overrides: Any) -> AuditEntry:
    """Return the n-th entry of a deterministic test log."""
    start = T0 + dt.timedelta(seconds=n)
    fields: dict[str, Any] = {
        "trace_id": f"{n + 1:032x}",
        "span_id": f"{n + 1:016x}",
        "name": "submission.receive",
        "start_time": format_time(start),
        "end_time": format_time(start + dt.timedelta(milliseconds=25)),
        "status": "Ok",
        "processing_activity_id": "https://register.example.nl/verwerkingen/thuiszitters",
        "actor": Actor(type="client", id=f"client-{n % 3}", party="swv-de-liemers"),
        "data_subject_id": f"ps:{n:08x}",
        "data_subject_id_type": "pseudonym",
        "parties": ("swv-de-liemers", "rbl-midden-gelre"),
        "convenant_id": "thuiszitters",
        "attributes": {"records": n % 5, "kind": "case"},
    }
    fields.update(overrides)
    return AuditEntry(**fields)


def make_log(size: int) -> list[StoredRow]:
    """Return the stored rows of a sealed log of `size` entries."""
    sealed = seal_entries([make_entry(n) for n in range(size)], 0, GENESIS_HASH)
    return [(s.index, s.canonical, s.chain_hash, s.leaf_hash) for s in sealed]


def sign_checkpoints(rows: list[StoredRow], sizes: list[int]) -> list[str]:
    """Return signed checkpoints of `rows` at the given sizes."""
    tree = MerkleTree(row[3] for row in rows)
    return [sign_note(format_checkpoint(ORIGIN, size, tree.root(size)), ORIGIN, KEY)
            for size in sizes]


LOG = make_log(40)
NOTES = sign_checkpoints(LOG, [10, 25, 40])


# -- canonical JSON ------------------------------------------------------------------------------


def test_rfc8785_example_serialises_as_published() -> None:
    """The RFC 8785 §3.2.2 example: number formatting, string escapes, literals, key order."""
    source = ('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
              ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
              ' "literals": [null, true, false]}')
    expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()
    assert encode_canonical(json.loads(source)) == expected == rfc8785.dumps(json.loads(source))


def test_keys_sort_by_utf16_code_units() -> None:
    """The RFC 8785 §3.2.3 sorting example orders keys by UTF-16, not by code point."""
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet",
             "1": "One", "\U0001f600": "Emoji", "\u0080": "Control", "\u00f6": "o Diaeresis"}
    order = [key for key, _ in json.loads(encode_canonical(value)).items()]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\u00f6\u2028\x7f", '"\u00f6\u2028\x7f"'.encode()),
        ("\x1f\t\b", b'"\\u001f\\t\\b"'),
        ({"b": 1, "a": [True, None]}, b'{"a":[true,null],"b":1}'),
        (2**53 - 1, b"9007199254740991"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
    ],
)
def test_canonical_values(value: Any, expected: bytes) -> None:
    """UTF-8 is written as is, controls are escaped, numbers are ECMAScript-formatted."""
    assert encode_canonical(value) == expected == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [2**53, float("nan"), float("inf"), "\ud800", {1: 2}, {"a": b""}])
def test_values_jcs_cannot_hold_are_refused(value: Any) -> None:
    """Unsafe integers, non-finite floats, lone surrogates and non-JSON types are refused."""
    with pytest.raises(CanonicalizationError):
        encode_canonical(value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_fast_path_equals_rfc8785(value: Any) -> None:
    """Whatever path encode_canonical takes, its bytes are rfc8785's."""
    assert encode_canonical(value) == rfc8785.dumps(value)


PARTY_IDS = st.lists(st.text(min_size=1).filter(lambda p: "," not in p), unique=True, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1), st.text(min_size=1),
       st.dictionaries(st.text(), JSON_VALUES, max_size=3), st.booleans(), PARTY_IDS,
       st.none() | st.text(min_size=1))
def test_sealed_entries_are_rfc8785(name: str, party: str, attributes: dict[str, Any],
                                    foreign: bool, parties: list[str], convenant: str | None) -> None:
    """The template seal_entries uses writes exactly rfc8785.dumps of the entry's record."""
    entry = make_entry(3, name=name, attributes=attributes, actor=Actor(type="user", id=party),
                       foreign_operation=ForeignOperation(trace_id=new_trace_id(),
                                                          span_id=new_span_id(), party=party)
                       if foreign else None, parties=tuple(parties), convenant_id=convenant)
    prev = hashlib.sha256(name.encode("utf-8", "replace")).digest()
    sealed = seal_entries([entry], 7, prev)[0]
    assert sealed.canonical == rfc8785.dumps(entry.to_record(7, prev))
    assert sealed.canonical == canonicalize_entry(entry.to_record(7, prev))
    assert AuditEntry.from_record(decode_record(sealed.canonical)) == entry


# -- entries and the chain -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"trace_id": "A" * 32}, {"trace_id": "0" * 32}, {"trace_id": "ab" * 15},
        {"span_id": "0" * 16}, {"parent_span_id": "xyz"},
        {"start_time": "2026-03-01T12:00:00Z"}, {"end_time": "2026-02-30T12:00:00.000000Z"},
        {"end_time": "2026-03-01T11:00:00.000000Z"}, {"status": "OK"}, {"name": ""},
        {"processing_activity_id": ""}, {"data_subject_id_type": None},
        {"actor": {"type": "client", "id": "x"}}, {"attributes": [1]},
        {"parties": ("rbl,swv",)}, {"parties": ("",)}, {"parties": ("rbl", "rbl")},
        {"parties": ["rbl"]}, {"parties": (None,)}, {"convenant_id": ""},
    ],
)
def test_invalid_entries_are_refused(overrides: dict[str, Any]) -> None:
    """Ids, times, status, subject pairing, actor, parties, convenant and attributes are validated."""
    with pytest.raises(ValueError):
        make_entry(1, **overrides)


@pytest.mark.parametrize(("actor_type", "party"), [("party", "p"), ("system", None), ("user", "p")])
def test_actor_types(actor_type: str, party: str | None) -> None:
    """Parties, clients, users and the system itself can act; an unknown type cannot."""
    assert make_entry(1, actor=Actor(type=actor_type, id="x", party=party)).actor.type == actor_type
    with pytest.raises(ValueError):
        Actor(type="robot", id="x")


def test_ids_and_times_are_well_formed() -> None:
    """New ids are W3C trace-context hex; times are UTC with microseconds."""
    assert len(new_trace_id()) == 32 and len(new_span_id()) == 16
    moment = dt.datetime(2026, 3, 1, 13, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_time(moment) == "2026-03-01T12:00:00.000005Z"
    with pytest.raises(ValueError):
        format_time(dt.datetime(2026, 3, 1))


@pytest.mark.parametrize("split", [0, 1, 17, 39, 40])
def test_chain_and_leaf_hashes(split: int) -> None:
    """Hashes follow their definitions, entries embed their place, and batches chain on."""
    entries = [make_entry(n) for n in range(40)]
    first = seal_entries(entries[:split], 0, GENESIS_HASH)
    rest = seal_entries(entries[split:], split, first[-1].chain_hash if first else GENESIS_HASH)
    prev = GENESIS_HASH
    for sealed, row in zip(first + rest, LOG, strict=True):
        assert (sealed.index, sealed.canonical, sealed.chain_hash, sealed.leaf_hash) == row
        assert sealed.chain_hash == hashlib.sha256(prev + sealed.canonical).digest()
        assert sealed.chain_hash == chain_next(prev, sealed.canonical)
        assert sealed.leaf_hash == hashlib.sha256(b"\x00" + sealed.canonical).digest()
        assert sealed.leaf_hash == hash_leaf(sealed.canonical)
        record = decode_record(sealed.canonical)
        assert (record["index"], record["prev_hash"]) == (sealed.index, prev.hex())
        prev = sealed.chain_hash


def test_sealing_refuses_a_bad_start() -> None:
    """Entry 0 follows the genesis hash; chain hashes are 32 bytes."""
    with pytest.raises(ValueError):
        seal_entries([make_entry(0)], 0, b"\x01" * 32)
    with pytest.raises(ValueError):
        seal_entries([make_entry(0)], 3, b"\x01" * 31)
    with pytest.raises(ValueError):
        canonicalize_entry({"index": 0})


# -- whole-log verification ----------------------------------------------------------------------


def forge(entry: AuditEntry, index: int, prev: bytes) -> StoredRow:
    """Return a row for `entry` at `index` after `prev`, with hashes consistent with its bytes."""
    canonical = canonicalize_entry(entry.to_record(index, prev))
    return index, canonical, chain_next(prev, canonical), hash_leaf(canonical)


def renumber(rows: list[StoredRow]) -> list[StoredRow]:
    """Rewrite the index column to 0..n-1, as a careful attacker would."""
    return [(n, *row[1:]) for n, row in enumerate(rows)]


def reseal_from(rows: list[StoredRow], start: int, entries: list[AuditEntry]) -> list[StoredRow]:
    """Replace everything from `start` by `entries`, sealed into a perfectly valid chain."""
    sealed = seal_entries(entries, start, rows[start - 1][2])
    return rows[:start] + [(s.index, s.canonical, s.chain_hash, s.leaf_hash) for s in sealed]


def swap(rows: list[StoredRow], a: int, b: int) -> list[StoredRow]:
    """Swap the stored contents of two rows, keeping the index column."""
    rows = list(rows)
    rows[a], rows[b] = (a, *rows[b][1:]), (b, *rows[a][1:])
    return rows


def set_column(rows: list[StoredRow], at: int, column: int, value: Any) -> list[StoredRow]:
    """Overwrite one stored column of one row."""
    rows = list(rows)
    row: list[Any] = list(rows[at])
    row[column] = value
    rows[at] = (row[0], row[1], row[2], row[3])
    return rows


def flip(value: bytes) -> bytes:
    """Return `value` with its last bit flipped."""
    return value[:-1] + bytes([value[-1] ^ 1])


TAMPERING: dict[str, tuple[Callable[[list[StoredRow]], list[StoredRow]], ProblemKind, int]] = {
    "edit in place": (lambda r: set_column(r, 17, 1, r[17][1].replace(b"receive", b"rejects")),
                      ProblemKind.EDITED, 17),
    "edit and reseal the row": (lambda r: r[:17] + [forge(make_entry(17, status="Error"), 17,
                                                          r[16][2])] + r[18:],
                                ProblemKind.EDITED, 17),
    "edit the embedded prev_hash": (lambda r: r[:17] + [forge(make_entry(17), 17, b"\x07" * 32)]
                                    + r[18:], ProblemKind.EDITED, 17),
    "edit the leaf hash column": (lambda r: set_column(r, 17, 3, flip(r[17][3])),
                                  ProblemKind.EDITED, 17),
    "edit the chain hash column": (lambda r: set_column(r, 17, 2, flip(r[17][2])),
                                   ProblemKind.EDITED, 17),
    "edit the index column of the last": (lambda r: set_column(r, 39, 0, 41),
                                          ProblemKind.EDITED, 39),
    "delete one": (lambda r: r[:17] + r[18:], ProblemKind.DELETED, 17),
    "delete one and renumber": (lambda r: renumber(r[:17] + r[18:]), ProblemKind.DELETED, 17),
    "delete three": (lambda r: r[:17] + r[20:], ProblemKind.DELETED, 17),
    "delete the first": (lambda r: r[1:], ProblemKind.DELETED, 0),
    "delete the first and renumber": (lambda r: renumber(r[1:]), ProblemKind.DELETED, 0),
    "insert a forged entry": (lambda r: renumber(r[:17] + [forge(make_entry(99), 17, r[16][2])]
                                                 + r[17:]), ProblemKind.INSERTED, 17),
    "insert an unlinked entry": (lambda r: renumber(r[:17] + [forge(make_entry(99), 17,
                                                                    b"\x01" * 32)] + r[17:]),
                                 ProblemKind.INSERTED, 17),
    "insert a copy": (lambda r: renumber(r[:17] + [r[5]] + r[17:]), ProblemKind.INSERTED, 17),
    "append a copy": (lambda r: [*r, (40, *r[39][1:])], ProblemKind.INSERTED, 40),
    "swap two": (lambda r: swap(r, 17, 18), ProblemKind.REORDERED, 17),
    "move one forward": (lambda r: renumber(r[:17] + [r[30]] + r[17:30] + r[31:]),
                         ProblemKind.REORDERED, 17),
    "move the first back": (lambda r: renumber(r[1:20] + [r[0]] + r[20:]),
                            ProblemKind.REORDERED, 0),
    "truncate the tail": (lambda r: r[:35], ProblemKind.TRUNCATED, 35),
    "delete the last": (lambda r: r[:39], ProblemKind.TRUNCATED, 39),
    "rewrite history": (lambda r: reseal_from(r, 12, [make_entry(n, status="Error")
                                                      for n in range(12, 40)]),
                        ProblemKind.CHECKPOINT_MISMATCH, 10),
    "truncate and regrow": (lambda r: reseal_from(r, 30, [make_entry(n + 100)
                                                          for n in range(15)]),
                            ProblemKind.CHECKPOINT_MISMATCH, 25),
}


def test_clean_log_verifies() -> None:
    """An untouched log verifies completely against all its checkpoints."""
    result = verify_log(iter(LOG), NOTES, VKEY)
    assert result.ok and result.problem is None
    assert (result.entries, result.checkpoints) == (40, 3)
    assert result.root == MerkleTree(row[3] for row in LOG).root()


def test_empty_log_verifies() -> None:
    """A log with no entries and no checkpoints is fine; a checkpoint makes it truncated."""
    assert verify_log([], [], VKEY).ok
    result = verify_log([], NOTES[:1], VKEY)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index) == (ProblemKind.TRUNCATED, 0)


@pytest.mark.parametrize("chunk", [1, 7, 65_536])
@pytest.mark.parametrize("case", TAMPERING)
def test_tampering_is_found_at_the_first_bad_index(case: str, chunk: int) -> None:
    """Each kind of tampering is reported as that kind, at the first index it affects."""
    tamper, kind, index = TAMPERING[case]
    result = verify_log(iter(tamper(list(LOG))), NOTES, VKEY, progress_every=chunk)
    assert result.problem is not None, case
    assert (result.problem.kind, result.problem.index) == (kind, index), result.problem.detail
    assert not result.ok


# -- search columns ------------------------------------------------------------------------------


def with_columns(rows: list[StoredRow]) -> list[ColumnRow]:
    """Return the rows with the search columns a database keeps beside them, as appended."""
    return [(*row, search_columns(json.loads(row[1]))) for row in rows]


COLUMN_LOG = with_columns(LOG)


def other_value(value: Any) -> Any:
    """Return a different value of the same kind (None becomes a string)."""
    if isinstance(value, bytes):
        return flip(value)
    return "x" if value is None else value + "x"


def set_stored(rows: list[ColumnRow], at: int, column: str, value: Any) -> list[ColumnRow]:
    """Overwrite one search column of one row, leaving its bytes and hashes."""
    rows = list(rows)
    stored = list(rows[at][4])
    stored[SEARCH_COLUMNS.index(column)] = value
    rows[at] = (*rows[at][:4], tuple(stored))
    return rows


def test_search_columns_copy_the_record() -> None:
    """Each search column is the entry's own field: who acted, who took part, what and when."""
    entry = make_entry(5, actor=Actor(type="client", id="c-1", party="rbl-midden-gelre"),
                       parties=("rbl-midden-gelre", "swv-de-liemers"), convenant_id="thuiszitters")
    prev = b"\x05" * 32
    sealed = seal_entries([entry], 9, prev)[0]
    assert dict(zip(SEARCH_COLUMNS, search_columns(decode_record(sealed.canonical)), strict=True)) == {
        "trace_id": entry.trace_id, "name": "submission.receive",
        "processing_activity_id": "https://register.example.nl/verwerkingen/thuiszitters",
        "data_subject_id": "ps:00000005", "actor_type": "client", "actor_id": "c-1",
        "actor_party": "rbl-midden-gelre", "parties": ",rbl-midden-gelre,swv-de-liemers,",
        "convenant_id": "thuiszitters", "start_time": "2026-03-01T12:00:05.000000Z", "prev_hash": prev,
    }
    bare = make_entry(5, actor=Actor(type="system", id="scheduler"), parties=(), convenant_id=None,
                      data_subject_id=None, data_subject_id_type=None)
    columns = search_columns(decode_record(seal_entries([bare], 9, prev)[0].canonical))
    assert columns[3:9] == (None, "system", "scheduler", None, ",,", None)


def test_clean_log_verifies_with_its_columns() -> None:
    """A log whose columns are what its entries say verifies, every column of every entry checked."""
    result = verify_log(iter(COLUMN_LOG), NOTES, VKEY)
    assert result.ok and (result.entries, result.checkpoints, result.unrecorded) == (40, 3, 0)


@pytest.mark.parametrize("chunk", [1, 7, 65_536])
@pytest.mark.parametrize("column", SEARCH_COLUMNS)
def test_a_rewritten_column_is_an_edited_entry(column: str, chunk: int) -> None:
    """A stored column that differs from its entry's bytes is reported as edited, naming it."""
    value = COLUMN_LOG[17][4][SEARCH_COLUMNS.index(column)]
    rows = set_stored(COLUMN_LOG, 17, column, other_value(value))
    result = verify_log(iter(rows), NOTES, VKEY, progress_every=chunk)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index, result.problem.column) == (ProblemKind.EDITED, 17, column)
    assert f"the {column} column of entry 17" in result.problem.detail


@pytest.mark.parametrize("chunk", [1, 7, 65_536])
def test_the_lower_index_is_named_between_a_column_and_the_chain(chunk: int) -> None:
    """A rewritten column before a broken chain is named first, and a broken chain before a column."""
    column_first = set_stored(COLUMN_LOG, 5, "parties", ",swv-passend-wijs,")
    result = verify_log(iter(column_first[:17] + column_first[18:]), NOTES, VKEY, progress_every=chunk)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index, result.problem.column) == (ProblemKind.EDITED, 5, "parties")
    chain_first = set_stored(COLUMN_LOG, 30, "parties", ",swv-passend-wijs,")
    result = verify_log(iter(chain_first[:17] + chain_first[18:]), NOTES, VKEY, progress_every=chunk)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index, result.problem.column) == (ProblemKind.DELETED, 17, None)


@pytest.mark.parametrize("chunk", [1, 7, 65_536])
def test_an_inserted_entry_is_not_called_edited_for_its_columns(chunk: int) -> None:
    """A forged entry slipped in with another row's columns is still an insertion."""
    forged = (*forge(make_entry(99), 17, LOG[16][2]), COLUMN_LOG[17][4])
    rows = [(n, *row[1:]) for n, row in enumerate([*COLUMN_LOG[:17], forged, *COLUMN_LOG[17:]])]
    result = verify_log(iter(rows), NOTES, VKEY, progress_every=chunk)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index) == (ProblemKind.INSERTED, 17)


def test_a_chained_row_that_is_no_entry_is_edited() -> None:
    """A row past the last checkpoint that links but holds no audit entry is reported as edited."""
    canonical = b'{"a":1,"index":40,"prev_hash":"' + LOG[39][2].hex().encode() + b'"}'
    row = (40, canonical, chain_next(LOG[39][2], canonical), hash_leaf(canonical), COLUMN_LOG[39][4])
    assert verify_log(iter(LOG + [row[:4]]), NOTES, VKEY).ok  # the chain alone cannot tell
    result = verify_log(iter([*COLUMN_LOG, row]), NOTES, VKEY)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index, result.problem.column) == (ProblemKind.EDITED, 40, None)


def legacy_log(size: int) -> list[ColumnRow]:
    """A log sealed before entries held parties and convenant_id, with such columns beside it."""
    rows: list[ColumnRow] = []
    prev = GENESIS_HASH
    for n in range(size):
        record = make_entry(n).to_record(n, prev)
        del record["parties"], record["convenant_id"]
        canonical = canonicalize_entry(record)
        stored = (*search_columns(record)[:7], ",swv-de-liemers,", None, *search_columns(record)[9:])
        rows.append((n, canonical, chain_next(prev, canonical), hash_leaf(canonical), stored))
        prev = rows[-1][2]
    return rows


def test_older_entries_verify_and_are_counted() -> None:
    """Entries without parties still verify; their parties and convenant_id columns are counted unchecked."""
    rows = legacy_log(40)
    assert search_columns(json.loads(rows[0][1]))[7:9] == (UNRECORDED, UNRECORDED)
    notes = sign_checkpoints([row[:4] for row in rows], [40])
    result = verify_log(iter(set_stored(rows, 3, "parties", ",swv-passend-wijs,")), notes, VKEY)
    assert result.ok and result.unrecorded == 40
    result = verify_log(iter(set_stored(rows, 3, "name", "vervalst")), notes, VKEY)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index, result.problem.column) == (ProblemKind.EDITED, 3, "name")


@pytest.mark.parametrize("case", ["tampered", "other key", "garbage", "other log"])
def test_bad_checkpoint_signatures(case: str) -> None:
    """A checkpoint that is not validly signed by the log's key is reported first."""
    body = NOTES[1].split("\n\n")[0] + "\n"
    note = {"tampered": NOTES[1].replace("\n25\n", "\n24\n"),
            "other key": sign_note(body, ORIGIN, Ed25519PrivateKey.generate()),
            "garbage": "not a note",
            "other log": sign_note(body.replace(ORIGIN, "other.log"), ORIGIN, KEY)}[case]
    result = verify_log(iter(LOG), [NOTES[0], note], VKEY, origin=ORIGIN)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.index) == (ProblemKind.BAD_SIGNATURE, None)


def test_progress_is_reported_per_chunk() -> None:
    """The progress callback sees the number of entries verified after each chunk."""
    seen: list[int] = []
    assert verify_log(iter(LOG), NOTES, VKEY, seen.append, progress_every=7).ok
    assert seen == [7, 14, 21, 28, 35, 40]


# -- receipts ------------------------------------------------------------------------------------

TREE = MerkleTree(row[3] for row in LOG)


def receipt_for(index: int, note: str = NOTES[2], size: int = 40) -> dict[str, Any]:
    """Return a receipt for entry `index` under the checkpoint `note` of `size` entries."""
    return make_receipt(index, LOG[index][3], note, TREE.prove_inclusion(index, size), size)


@pytest.mark.parametrize(("index", "checkpoint"), [(0, 2), (17, 2), (39, 2), (17, 1), (9, 0)])
def test_receipts_verify_offline(index: int, checkpoint: int) -> None:
    """A receipt survives JSON and verifies with only the verifier key and the entry."""
    size = (10, 25, 40)[checkpoint]
    receipt = json.loads(json.dumps(receipt_for(index, NOTES[checkpoint], size)))
    verify_receipt(receipt, VKEY, entry=LOG[index][1], origin=ORIGIN)


RECEIPT_TAMPERING: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "index": lambda r: {**r, "index": 18},
    "leaf hash": lambda r: {**r, "leaf_hash": LOG[18][3].hex()},
    "tree size": lambda r: {**r, "tree_size": 39},
    "proof hash": lambda r: {**r, "inclusion_proof": [flip(bytes.fromhex(r["inclusion_proof"][0]))
                                                      .hex(), *r["inclusion_proof"][1:]]},
    "short proof": lambda r: {**r, "inclusion_proof": r["inclusion_proof"][:-1]},
    "older checkpoint": lambda r: {**r, "checkpoint": NOTES[1]},
    "checkpoint body": lambda r: {**r, "checkpoint": r["checkpoint"].replace("\n40\n", "\n41\n")},
    "other signer": lambda r: {**r, "checkpoint": sign_note(r["checkpoint"].split("\n\n")[0] + "\n",
                                                            ORIGIN, Ed25519PrivateKey.generate())},
    "missing field": lambda r: {k: v for k, v in r.items() if k != "tree_size"},
    "uppercase hex": lambda r: {**r, "leaf_hash": r["leaf_hash"].upper()},
}


@pytest.mark.parametrize("case", RECEIPT_TAMPERING)
def test_tampered_receipts_fail(case: str) -> None:
    """Any change to a receipt makes it fail with a ReceiptError."""
    with pytest.raises(ReceiptError):
        verify_receipt(RECEIPT_TAMPERING[case](receipt_for(17)), VKEY)


@pytest.mark.parametrize(("entry", "origin"), [(LOG[18][1], ORIGIN), (LOG[17][1], "other.log")])
def test_receipt_for_another_entry_or_log_fails(entry: bytes, origin: str) -> None:
    """A receipt does not vouch for other entry bytes, nor for another log."""
    with pytest.raises(ReceiptError):
        verify_receipt(receipt_for(17), VKEY, entry=entry, origin=origin)
