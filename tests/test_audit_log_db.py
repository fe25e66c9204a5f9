"""The audit log as the exchange path writes it: Logboek entries per data subject in the step's
own transaction, fail-closed writes, signed checkpoints that never contradict each other, and
receipts a party verifies offline."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fixtures.audit import AuditDb
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from audit.checkpoint import open_note, parse_verifier_key
from audit.entry import format_time
from audit.merkle import MerkleTree, list_range_nodes
from audit.proof import hash_leaf, verify_consistency, verify_inclusion
from audit.receipt import ReceiptError, verify_receipt

LOGBOEK_FIELDS = {
    "trace_id", "span_id", "parent_span_id", "name", "start_time", "end_time", "status",
    "processing_activity_id", "data_subject_id", "data_subject_id_type", "foreign_operation",
    "actor", "parties", "convenant_id", "attributes", "index", "prev_hash",
}
SUBJECT_TYPE = "convenant-pseudoniem"
DELIVERIES = "/api/v1/deliveries"


# -- helpers ---------------------------------------------------------------------------------------


def register_uris(client: Any) -> set[str]:
    response = client.get("/api/v1/register")
    assert response.status_code == 200
    return {activity["id"] for activity in response.json["activities"]}


def verifier_key(client: Any) -> str:
    response = client.get("/api/v1/audit/key")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return str(response.get_data(as_text=True).strip())


def pseudonyms(db: AuditDb, submission_id: str) -> list[str]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT pseudonym FROM records WHERE submission_id = :id ORDER BY seq"), {"id": submission_id}
        ).all()
    return [row[0] for row in rows]


def step_entries(db: AuditDb, since: int) -> list[dict[str, Any]]:
    return db.records()[since:]


def assert_no_bsn(db: AuditDb, bsns: list[str]) -> None:
    """No BSN occurs in any entry's bytes or in any search column of the audit table."""
    for row in db.rows():
        flat = b" ".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
        for bsn in bsns:
            assert bsn.encode() not in flat, (bsn, row["idx"])


def submit(party: Party, gemeenten: list[str], first: int = 0) -> Any:
    response = party.submit([make_record(first + n, gemeente=g) for n, g in enumerate(gemeenten)])
    assert response.status_code == 201, response.json
    return response


# -- what is logged -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gemeenten",
    [["Duiven"], ["Duiven", "Zevenaar", "Westervoort"], ["Duiven", "Arnhem", "Lingewaard", "Renkum", "Rheden"]],
    ids=["1 pupil", "3 pupils, 1 recipient", "5 pupils, 3 recipients"],
)
def test_submission_logs_one_entry_per_subject_under_one_trace(
    gemeenten: list[str], rbl: Party, audit_db: AuditDb, client: Any
) -> None:
    """A submission of N pupils writes a summary, N record entries and N delivery entries, one trace."""
    assert rbl.headers  # the token's own entry comes first
    before = audit_db.size()
    body = submit(rbl, gemeenten).json
    entries = step_entries(audit_db, before)
    names = Counter(e["name"] for e in entries)
    n = len(gemeenten)
    assert names == {"submission.accepted": 1, "record.received": n, "delivery.created": n}
    assert len(entries) == 1 + 2 * n

    uris = register_uris(client)
    assert {e["trace_id"] for e in entries} == {entries[0]["trace_id"]}
    summary = entries[0]
    assert summary["name"] == "submission.accepted" and summary["parent_span_id"] is None
    assert summary["data_subject_id"] is None and summary["data_subject_id_type"] is None
    assert summary["attributes"]["submission_id"] == body["submission_id"]
    assert len({e["span_id"] for e in entries}) == len(entries)
    for entry in entries:
        assert set(entry) == LOGBOEK_FIELDS
        assert len(entry["trace_id"]) == 32 and len(entry["span_id"]) == 16
        assert entry["status"] == "Ok"
        assert entry["start_time"] <= entry["end_time"]
        assert entry["processing_activity_id"] in uris
        assert entry["actor"] == {"type": "client", "id": rbl.client_id, "party": rbl.party_id}
        assert entry["foreign_operation"] is None
        if entry is not summary:
            assert entry["parent_span_id"] == summary["span_id"]
            assert entry["data_subject_id_type"] == SUBJECT_TYPE

    stored = pseudonyms(audit_db, body["submission_id"])
    received = [e["data_subject_id"] for e in entries if e["name"] == "record.received"]
    assert received == stored and len(set(stored)) == n
    for delivery in body["deliveries"]:
        created = [e for e in entries if e["name"] == "delivery.created"
                   and e["attributes"]["delivery_id"] == delivery["delivery_id"]]
        assert len(created) == delivery["records"]
        assert {e["attributes"]["recipient"] for e in created} == {delivery["recipient"]}
        # The entry itself says who took part, so the column that decides who sees it is checkable.
        assert {tuple(e["parties"]) for e in created} == {(rbl.party_id, delivery["recipient"])}
        assert {e["data_subject_id"] for e in created} <= set(stored)
    assert {e["convenant_id"] for e in entries} == {CONVENANT}
    assert all(e["parties"] == [rbl.party_id] for e in entries if e["name"] != "delivery.created")
    bsns = [make_bsn(k) for k in range(n)]
    assert not set(bsns) & set(stored)
    assert_no_bsn(audit_db, bsns)


def test_search_columns_copy_the_canonical_entry(rbl: Party, liemers: Party, audit_db: AuditDb) -> None:
    """The columns stored beside the canonical bytes say what the bytes say (nothing more)."""
    body = submit(rbl, ["Duiven", "Zevenaar"]).json
    liemers.get(f"{DELIVERIES}/{body['deliveries'][0]['delivery_id']}")
    for row in audit_db.rows():
        entry = json.loads(row["canonical"])
        assert row["idx"] == entry["index"]
        assert (row["trace_id"], row["name"], row["processing_activity_id"], row["data_subject_id"]) == (
            entry["trace_id"], entry["name"], entry["processing_activity_id"], entry["data_subject_id"])
        assert (row["actor_type"], row["actor_id"], row["actor_party"]) == (
            entry["actor"]["type"], entry["actor"]["id"], entry["actor"]["party"])
        assert (row["parties"], row["convenant_id"]) == ("," + ",".join(entry["parties"]) + ",", entry["convenant_id"])
        assert format_time(row["start_time"]) == entry["start_time"]
        assert row["prev_hash"].hex() == entry["prev_hash"]
        assert row["leaf_hash"] == hash_leaf(row["canonical"])
        if entry["actor"]["party"]:
            assert entry["parties"][0] == entry["actor"]["party"]


def test_delivery_fetch_and_ack_are_logged(rbl: Party, liemers: Party, audit_db: AuditDb, client: Any) -> None:
    """Fetching writes one entry per pupil delivered; acknowledging writes one entry; both by the recipient."""
    body = submit(rbl, ["Duiven", "Zevenaar", "Westervoort"]).json
    [delivery] = body["deliveries"]
    assert liemers.headers
    uris = register_uris(client)

    before = audit_db.size()
    fetched = liemers.get(f"{DELIVERIES}/{delivery['delivery_id']}")
    assert fetched.status_code == 200
    entries = step_entries(audit_db, before)
    assert [e["name"] for e in entries] == ["delivery.fetched"] * 3
    assert {e["data_subject_id"] for e in entries} == set(pseudonyms(audit_db, body["submission_id"]))
    assert {e["trace_id"] for e in entries} == {entries[0]["trace_id"]}
    for entry in entries:
        assert entry["actor"] == {"type": "client", "id": liemers.client_id, "party": liemers.party_id}
        assert entry["data_subject_id_type"] == SUBJECT_TYPE
        assert entry["processing_activity_id"] in uris
        assert entry["attributes"]["delivery_id"] == delivery["delivery_id"]

    before = audit_db.size()
    assert liemers.post(f"{DELIVERIES}/{delivery['delivery_id']}/ack").status_code == 200
    [ack] = step_entries(audit_db, before)
    assert ack["name"] == "delivery.acked" and ack["parent_span_id"] is None
    assert ack["data_subject_id"] is None
    assert ack["attributes"] == {"delivery_id": delivery["delivery_id"], "first_ack": True}
    assert ack["actor"]["party"] == liemers.party_id and ack["processing_activity_id"] in uris
    assert_no_bsn(audit_db, [make_bsn(k) for k in range(3)])


def test_token_issued_is_logged(rbl: Party, audit_db: AuditDb, client: Any) -> None:
    """Every issued access token writes a token.issued entry for the client, without the token."""
    before = audit_db.size()
    response = rbl.request_token()
    assert response.status_code == 200
    [entry] = step_entries(audit_db, before)
    assert entry["name"] == "token.issued" and entry["status"] == "Ok"
    assert entry["actor"] == {"type": "client", "id": rbl.client_id, "party": rbl.party_id}
    assert entry["processing_activity_id"] in register_uris(client)
    assert response.json["access_token"].encode() not in audit_db.rows()[-1]["canonical"]


REJECTIONS = {
    "invalid BSN (422)": ({"kind": "case", "records": [make_record(1, bsn="123456789")]}, 422),
    "unknown body field (400)": ({"kind": "case", "records": [make_record(1)], "extra": 1}, 400),
    "empty list (400)": ({"kind": "case", "records": []}, 400),
    "unknown kind (400)": ({"kind": "roster", "records": [make_record(1)]}, 400),
}


@pytest.mark.parametrize("case", REJECTIONS)
def test_rejected_submission_is_logged(case: str, rbl: Party, audit_db: AuditDb, count_rows: Any) -> None:
    """A refused submission writes one submission.rejected entry (status Error), not its data."""
    body, status = REJECTIONS[case]
    assert rbl.headers
    before, counts = audit_db.size(), count_rows()
    response = rbl.post(f"/api/v1/convenants/{CONVENANT}/submissions", json=body)
    assert response.status_code == status, response.json
    [entry] = step_entries(audit_db, before)
    assert entry["name"] == "submission.rejected" and entry["status"] == "Error"
    assert entry["data_subject_id"] is None and entry["parent_span_id"] is None
    assert entry["attributes"]["http_status"] == status
    assert entry["actor"]["party"] == rbl.party_id
    assert count_rows() == counts
    canonical = audit_db.rows()[-1]["canonical"]
    for record in body["records"]:
        assert record["bsn"].encode() not in canonical
        assert record["achternaam"].encode() not in canonical


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize("step", ["submission", "fetch", "token"])
def test_traceparent_becomes_the_foreign_operation(step: str, rbl: Party, liemers: Party, audit_db: AuditDb) -> None:
    """A W3C traceparent from the caller is recorded as foreign_operation on every entry of the step."""
    body = submit(rbl, ["Duiven", "Zevenaar"]).json
    assert liemers.headers
    header = {"traceparent": f"00-{TRACE}-{SPAN}-01"}
    before = audit_db.size()
    if step == "submission":
        party = rbl
        response = rbl.post(f"/api/v1/convenants/{CONVENANT}/submissions",
                            json={"kind": "case", "records": [make_record(7, gemeente="Duiven")]}, headers=header)
    elif step == "fetch":
        party = liemers
        response = liemers.get(f"{DELIVERIES}/{body['deliveries'][0]['delivery_id']}", headers=header)
    else:
        party = rbl
        response = rbl.http.post("/oauth/token", headers=header, data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": rbl.assertion()})
    assert response.status_code in (200, 201), response.json
    entries = step_entries(audit_db, before)
    assert entries
    for entry in entries:
        assert entry["foreign_operation"] == {"trace_id": TRACE, "span_id": SPAN, "party": party.party_id}
        assert entry["trace_id"] != TRACE  # the broker's own trace, caused by the caller's


@pytest.mark.parametrize(
    "header",
    [
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # uppercase
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE[:-1]}-{SPAN}-01",  # short trace id
        f"00_{TRACE}_{SPAN}_01",
        pytest.param(f"00-{'0' * 32}-{SPAN}-01", id="all-zero trace-id"),
        pytest.param(f"00-{TRACE}-{'0' * 16}-01", id="all-zero parent-id"),
        pytest.param(f"ff-{TRACE}-{SPAN}-01", id="version ff"),
    ],
)
def test_invalid_traceparent_is_ignored(header: str, rbl: Party, audit_db: AuditDb) -> None:
    """A missing or malformed traceparent leaves foreign_operation null and the step succeeds."""
    assert rbl.headers
    before = audit_db.size()
    response = rbl.post(f"/api/v1/convenants/{CONVENANT}/submissions",
                        json={"kind": "case", "records": [make_record(1, gemeente="Duiven")]},
                        headers={"traceparent": header} if header else {})
    assert response.status_code == 201
    assert all(e["foreign_operation"] is None for e in step_entries(audit_db, before))


# -- fail closed ----------------------------------------------------------------------------------


def refuse_audit_inserts(db: AuditDb) -> None:
    """Make the database itself refuse every new audit entry."""
    if db.dialect == "sqlite":
        db.execute("CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_entries "
                   "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END")
    else:
        db.execute("CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$")
        db.execute("CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_entries "
                   "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()")


def allow_audit_inserts(db: AuditDb) -> None:
    db.execute("DROP TRIGGER test_refuse_audit" + ("" if db.dialect == "sqlite" else " ON audit_entries"))


def delivery_state(db: AuditDb) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, fetched_at, acked_at FROM deliveries ORDER BY id"))]


def jti_count(db: AuditDb) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM assertion_jtis")).scalar_one())


STEPS = ["submission", "rejected submission", "token", "delivery fetch", "delivery ack"]


@pytest.mark.parametrize("failure", ["append_entries raises", "database refuses audit inserts"])
@pytest.mark.parametrize("step", STEPS)
def test_audit_failure_fails_the_step_closed(
    step: str, failure: str, rbl: Party, liemers: Party, audit_db: AuditDb, count_rows: Any,
    problem: Any, monkeypatch: pytest.MonkeyPatch, audit_verify: Any
) -> None:
    """When the audit write fails the step answers 503 problem+json and stores nothing at all."""
    body = submit(rbl, ["Duiven", "Zevenaar"]).json
    delivery = body["deliveries"][0]["delivery_id"]
    assert liemers.headers
    assertion = rbl.assertion()

    def run() -> Any:
        if step == "submission":
            return rbl.submit([make_record(9, gemeente="Duiven")])
        if step == "rejected submission":
            return rbl.submit([make_record(9, bsn="123456789")])
        if step == "token":
            return rbl.request_token(assertion)
        if step == "delivery fetch":
            return liemers.get(f"{DELIVERIES}/{delivery}")
        return liemers.post(f"{DELIVERIES}/{delivery}/ack")

    log, counts, deliveries, jtis = audit_db.rows(), count_rows(), delivery_state(audit_db), jti_count(audit_db)
    checkpoints = audit_db.checkpoints()
    if failure == "append_entries raises":
        def broken(*_: Any, **__: Any) -> Any:
            raise OperationalError("INSERT INTO audit_entries ...", {}, Exception("disk I/O error"))

        monkeypatch.setattr("broker.auditing.step.append_entries", broken)
    else:
        refuse_audit_inserts(audit_db)

    response = run()
    body503 = problem(response, 503)
    assert "records" not in body503 and "access_token" not in body503
    assert audit_db.rows() == log
    assert audit_db.checkpoints() == checkpoints
    assert count_rows() == counts
    assert delivery_state(audit_db) == deliveries
    assert jti_count(audit_db) == jtis

    monkeypatch.undo()
    if failure != "append_entries raises":
        allow_audit_inserts(audit_db)
    again = run()  # the same step succeeds once the log can be written (the token: same assertion)
    assert again.status_code == {"submission": 201, "rejected submission": 422}.get(step, 200), again.json
    assert audit_db.size() > len(log)
    assert audit_verify().exit_code == 0


# -- checkpoints ----------------------------------------------------------------------------------


def test_every_submission_is_covered_by_a_new_consistent_checkpoint(
    rbl: Party, audit_db: AuditDb, client: Any
) -> None:
    """After each submission the latest checkpoint signs the whole log and extends the previous one."""
    vkey = verifier_key(client)
    for n in range(4):
        rbl.request_token()  # an unsigned entry between submissions
        submit(rbl, ["Duiven", "Arnhem"][: 1 + n % 2], first=10 * n)
        checkpoints = audit_db.checkpoints()
        assert checkpoints[-1]["tree_size"] == audit_db.size()
    tree = MerkleTree(row["leaf_hash"] for row in audit_db.rows())
    sizes = [c["tree_size"] for c in checkpoints]
    assert sizes == sorted(set(sizes))
    for older, newer in zip(checkpoints, checkpoints[1:], strict=False):
        assert verify_consistency(older["tree_size"], newer["tree_size"], older["root_hash"],
                                  newer["root_hash"], tree.prove_consistency(older["tree_size"], newer["tree_size"]))
    for checkpoint in checkpoints:
        opened = open_note(checkpoint["note"], vkey)
        assert (opened.size, opened.root) == (checkpoint["tree_size"], checkpoint["root_hash"])
        assert opened.root == tree.root(checkpoint["tree_size"])


def _root_nodes(size: int) -> list[tuple[int, int]]:
    return list_range_nodes(0, size)


TAMPER_BEFORE_SIGNING = {
    # case: (what the administrator does, status of the next submission)
    "root-path node changed": 503,
    "root-path node deleted": 503,
    "latest checkpoint's root changed": 503,
    "tail entries deleted": 503,
    "leaf the root uses directly changed": 503,
    "leaf under a stored node changed": 201,
    "node off the root path changed": 201,
}


@pytest.mark.parametrize("case", TAMPER_BEFORE_SIGNING)
def test_no_checkpoint_is_signed_over_a_tampered_tree(
    case: str, rbl: Party, audit_db: AuditDb, count_rows: Any, problem: Any, client: Any, audit_verify: Any
) -> None:
    """Next submission: 503 if the stored tree contradicts the checkpoint, else verify/proofs catch it."""
    submit(rbl, ["Duiven", "Zevenaar"])
    submit(rbl, ["Duiven"], first=5)
    if audit_db.size() % 2 == 0:
        rbl.request_token()  # one more entry (token.issued): the cases below need an odd size
    size = audit_db.size()
    assert size % 2 == 1 and audit_db.checkpoints()[-1]["tree_size"] == size
    top_level, top_index = _root_nodes(size)[0]
    assert _root_nodes(size)[-1] == (0, size - 1)
    garbage = bytes(range(32))
    with audit_db.bypass() as conn:
        if case == "root-path node changed":
            conn.execute(text("UPDATE audit_nodes SET hash = :h WHERE level = :l AND idx = :i"),
                         {"h": garbage, "l": top_level, "i": top_index})
        elif case == "root-path node deleted":
            conn.execute(text("DELETE FROM audit_nodes WHERE level = :l AND idx = :i"),
                         {"l": top_level, "i": top_index})
        elif case == "latest checkpoint's root changed":
            conn.execute(text("UPDATE audit_checkpoints SET root_hash = :h WHERE tree_size = :s"),
                         {"h": garbage, "s": size})
        elif case == "tail entries deleted":
            conn.execute(text("DELETE FROM audit_entries WHERE idx >= :i"), {"i": size - 2})
        elif case == "leaf the root uses directly changed":
            conn.execute(text("UPDATE audit_entries SET leaf_hash = :h WHERE idx = :i"), {"h": garbage, "i": size - 1})
        elif case == "leaf under a stored node changed":
            conn.execute(text("UPDATE audit_entries SET leaf_hash = :h WHERE idx = 0"), {"h": garbage})
        else:
            assert (1, 0) not in _root_nodes(size)
            conn.execute(text("UPDATE audit_nodes SET hash = :h WHERE level = 1 AND idx = 0"), {"h": garbage})
    tampered, counts, checkpoints = audit_db.rows(), count_rows(), audit_db.checkpoints()

    response = rbl.submit([make_record(20, gemeente="Duiven")])
    if TAMPER_BEFORE_SIGNING[case] == 503:
        problem(response, 503)
        assert (audit_db.rows(), count_rows(), audit_db.checkpoints()) == (tampered, counts, checkpoints)
        return
    assert response.status_code == 201, response.json
    # The new checkpoint is still consistent with the old one: it was computed from stored nodes.
    new = audit_db.checkpoints()[-1]
    old = checkpoints[-1]
    proof = client.get(f"/api/v1/audit/consistency?from={old['tree_size']}&to={new['tree_size']}").json
    assert verify_consistency(old["tree_size"], new["tree_size"], old["root_hash"], new["root_hash"],
                              [bytes.fromhex(p) for p in proof["proof"]])
    if case == "leaf under a stored node changed":
        outcome = audit_verify()
        assert (outcome.exit_code, outcome.kind, outcome.index) == (1, "edited", 0), outcome.output
    else:
        # A proof through the changed node no longer leads to the signed root: its checker sees it.
        served = client.get("/api/v1/audit/entries/2/proof").json
        assert not verify_inclusion(2, served["tree_size"], bytes.fromhex(served["leaf_hash"]),
                                    [bytes.fromhex(p) for p in served["proof"]], new["root_hash"])


# -- receipts -------------------------------------------------------------------------------------


@pytest.fixture
def receipt_setup(rbl: Party, client: Any, tmp_path: Path) -> dict[str, Any]:
    """Two submissions' 201 bodies, and the verifier key in a file."""
    first = submit(rbl, ["Duiven", "Arnhem"]).json
    second = submit(rbl, ["Zevenaar"], first=5).json
    key_file = tmp_path / "broker.vkey"
    key_file.write_text(verifier_key(client) + "\n")
    return {"bodies": [first, second], "key_file": key_file, "vkey": verifier_key(client)}


def test_receipts_verify_offline(receipt_setup: dict[str, Any], audit_db: AuditDb, client: Any) -> None:
    """Each 201 receipt proves its submission's summary entry is in the signed log, without the DB."""
    vkey = receipt_setup["vkey"]
    origin = parse_verifier_key(vkey).name
    rows = audit_db.rows()
    for body in receipt_setup["bodies"]:
        receipt = json.loads(json.dumps(body["receipt"]))  # as a party stores it
        entry = rows[receipt["index"]]
        record = json.loads(entry["canonical"])
        assert record["name"] == "submission.accepted"
        assert record["attributes"]["submission_id"] == body["submission_id"]
        verify_receipt(receipt, vkey)
        verify_receipt(receipt, vkey, entry=entry["canonical"], origin=origin)
        with pytest.raises(ReceiptError):
            verify_receipt(receipt, vkey, entry=rows[receipt["index"] - 1]["canonical"])
    # The first receipt's checkpoint is a prefix of the latest one (a party can check later).
    older = open_note(receipt_setup["bodies"][0]["receipt"]["checkpoint"], vkey)
    latest = open_note(client.get("/api/v1/audit/checkpoint").get_data(as_text=True), vkey)
    proof = client.get(f"/api/v1/audit/consistency?from={older.size}&to={latest.size}").json["proof"]
    assert verify_consistency(older.size, latest.size, older.root, latest.root, [bytes.fromhex(p) for p in proof])


@pytest.mark.parametrize("form", ["whole 201 body", "receipt only"])
def test_cli_verifies_a_receipt(form: str, receipt_setup: dict[str, Any], runner: Any, tmp_path: Path) -> None:
    """`broker audit verify-receipt FILE --key-file F` accepts a genuine receipt (exit 0)."""
    for number, body in enumerate(receipt_setup["bodies"]):
        path = tmp_path / f"receipt-{number}.json"
        path.write_text(json.dumps(body if form == "whole 201 body" else body["receipt"]))
        key_file = str(receipt_setup["key_file"])
        result = runner.invoke(args=["audit", "verify-receipt", str(path), "--key-file", key_file])
        assert result.exit_code == 0, result.output
        assert f"OK: entry {body['receipt']['index']}" in result.output
        result = runner.invoke(args=["audit", "verify-receipt", str(path), "--key", receipt_setup["vkey"]])
        assert result.exit_code == 0, result.output


def _flip_hex(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


def _resign_root(receipt: dict[str, Any]) -> dict[str, Any]:
    """Change the root in the checkpoint text (keeping the broker's signature line)."""
    lines = receipt["checkpoint"].split("\n")
    root = bytearray(base64.b64decode(lines[2]))
    root[0] ^= 1
    lines[2] = base64.b64encode(bytes(root)).decode()
    return {**receipt, "checkpoint": "\n".join(lines)}


def _other_key(receipt: dict[str, Any]) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoint import sign_note

    body = receipt["checkpoint"].split("\n\n")[0] + "\n"
    return {**receipt, "checkpoint": sign_note(body, body.split("\n")[0], Ed25519PrivateKey.generate())}


TAMPERED_RECEIPTS = {
    "index + 1": lambda r: {**r, "index": r["index"] + 1},
    "index - 1": lambda r: {**r, "index": r["index"] - 1},
    "index past the tree": lambda r: {**r, "index": r["tree_size"]},
    "tree_size + 1": lambda r: {**r, "tree_size": r["tree_size"] + 1},
    "leaf_hash changed": lambda r: {**r, "leaf_hash": _flip_hex(r["leaf_hash"])},
    "proof element changed": lambda r: {**r, "inclusion_proof": [_flip_hex(r["inclusion_proof"][0]),
                                                                 *r["inclusion_proof"][1:]]},
    "proof element dropped": lambda r: {**r, "inclusion_proof": r["inclusion_proof"][:-1]},
    "proof element added": lambda r: {**r, "inclusion_proof": [*r["inclusion_proof"], r["leaf_hash"]]},
    "proof reversed": lambda r: {**r, "inclusion_proof": r["inclusion_proof"][::-1]},
    "checkpoint root changed": _resign_root,
    "checkpoint signed by another key": _other_key,
    "index as a string": lambda r: {**r, "index": str(r["index"])},
}


@pytest.mark.parametrize("case", TAMPERED_RECEIPTS)
def test_tampered_receipt_fails(case: str, receipt_setup: dict[str, Any], runner: Any, tmp_path: Path) -> None:
    """A receipt changed in any part fails verify_receipt and the CLI exits 1 with ONGELDIG."""
    receipt = TAMPERED_RECEIPTS[case](receipt_setup["bodies"][0]["receipt"])
    assert receipt != receipt_setup["bodies"][0]["receipt"]
    with pytest.raises(ReceiptError):
        verify_receipt(receipt, receipt_setup["vkey"])
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(receipt))
    result = runner.invoke(args=["audit", "verify-receipt", str(path), "--key-file", str(receipt_setup["key_file"])])
    assert result.exit_code == 1, result.output
    assert "ONGELDIG" in result.output


def test_receipt_fails_against_another_brokers_key(receipt_setup: dict[str, Any], runner: Any, tmp_path: Path) -> None:
    """A genuine receipt does not verify against a different broker's verifier key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoint import verifier_key as make_vkey

    other = make_vkey(parse_verifier_key(receipt_setup["vkey"]).name, Ed25519PrivateKey.generate().public_key())
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt_setup["bodies"][1]))
    result = runner.invoke(args=["audit", "verify-receipt", str(path), "--key", other])
    assert result.exit_code == 1 and "ONGELDIG" in result.output
