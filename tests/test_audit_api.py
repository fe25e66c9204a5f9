"""The audit log's public API: signed checkpoints and the verifier key, inclusion and consistency
proofs that verify against the signed roots (and fail once corrupted), and problem+json errors."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from fixtures.audit import AuditDb
from fixtures.parties import Party
from fixtures.records import make_record

from audit.checkpoint import Checkpoint, open_note, parse_verifier_key
from audit.merkle import MerkleTree
from audit.proof import EMPTY_ROOT, hash_leaf, verify_consistency, verify_inclusion

AUDIT = "/api/v1/audit"
PROBLEM_JSON = "application/problem+json"


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def flip(value: bytes, at: int = 0) -> bytes:
    return value[:at] + bytes([value[at] ^ 0x80]) + value[at + 1 :]


@pytest.fixture
def signed(rbl: Party, client: Any, audit_db: AuditDb) -> dict[str, Any]:
    """A small log with several checkpoints, as a party sees it through the API.

    Returns the verifier key, every checkpoint the API published (opened), and the leaf hashes.
    """
    vkey = client.get(f"{AUDIT}/key").get_data(as_text=True).strip()
    published = [open_note(client.get(f"{AUDIT}/checkpoint").get_data(as_text=True), vkey)]
    for n, gemeenten in enumerate([["Duiven"], ["Duiven", "Arnhem"], ["Zevenaar"], ["Rheden", "Renkum", "Duiven"]]):
        rbl.request_token()
        response = rbl.submit([make_record(10 * n + k, gemeente=g) for k, g in enumerate(gemeenten)])
        assert response.status_code == 201, response.json
        published.append(open_note(client.get(f"{AUDIT}/checkpoint").get_data(as_text=True), vkey))
    leaves = [row["leaf_hash"] for row in audit_db.rows()]
    assert published[-1].size == len(leaves)
    return {"vkey": vkey, "checkpoints": published, "leaves": leaves, "tree": MerkleTree(leaves)}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    return dict(body)


# -- checkpoint and key -------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "text/plain", "*/*", "text/plain, application/json;q=0.5"])
def test_checkpoint_note_verifies_against_the_key(accept: str | None, signed: dict[str, Any],
                                                  client: Any) -> None:
    """The text checkpoint is a C2SP note signed by the published key, over the log's real root."""
    headers = {"Accept": accept} if accept else {}
    response = client.get(f"{AUDIT}/checkpoint", headers=headers)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    checkpoint = open_note(response.get_data(as_text=True), signed["vkey"])
    assert checkpoint.origin == parse_verifier_key(signed["vkey"]).name
    assert checkpoint.size == len(signed["leaves"])
    assert checkpoint.root == signed["tree"].root()


@pytest.mark.parametrize("accept", ["application/json", "application/json, text/plain;q=0.5"])
def test_checkpoint_json_variant(accept: str, signed: dict[str, Any], client: Any) -> None:
    """With Accept: application/json the same checkpoint comes as JSON, the note included."""
    note = client.get(f"{AUDIT}/checkpoint").get_data(as_text=True)
    response = client.get(f"{AUDIT}/checkpoint", headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"origin", "tree_size", "root_hash", "note", "signed_at"}
    assert body["note"] == note
    opened = open_note(body["note"], signed["vkey"])
    assert (body["origin"], body["tree_size"], body["root_hash"]) == (opened.origin, opened.size, opened.root.hex())
    assert dt.datetime.fromisoformat(body["signed_at"])


def test_key_text_and_json_agree(client: Any) -> None:
    """GET /key gives the C2SP verifier key as text, and as {origin, verifier_key} in JSON."""
    text = client.get(f"{AUDIT}/key")
    assert text.status_code == 200 and text.mimetype == "text/plain"
    vkey = text.get_data(as_text=True)
    assert vkey.endswith("\n") and vkey.count("\n") == 1
    parsed = parse_verifier_key(vkey.strip())
    body = client.get(f"{AUDIT}/key", headers={"Accept": "application/json"}).json
    assert body == {"origin": parsed.name, "verifier_key": vkey.strip()}


def test_published_checkpoints_match_the_stored_ones(signed: dict[str, Any], audit_db: AuditDb) -> None:
    """Every checkpoint the API published is one the database keeps, over the same root."""
    stored = {c["tree_size"]: c["root_hash"] for c in audit_db.checkpoints()}
    for checkpoint in signed["checkpoints"]:
        assert stored[checkpoint.size] == checkpoint.root == signed["tree"].root(checkpoint.size)


# -- inclusion proofs ---------------------------------------------------------------------------------


def inclusion(client: Any, index: int, tree_size: int | None = None) -> dict[str, Any]:
    query = "" if tree_size is None else f"?tree_size={tree_size}"
    response = client.get(f"{AUDIT}/entries/{index}/proof{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = dict(response.json)
    assert set(body) == {"index", "tree_size", "leaf_hash", "proof"}
    return body


def test_inclusion_proof_for_every_index(signed: dict[str, Any], client: Any, audit_db: AuditDb) -> None:
    """Every entry's proof (default: the latest checkpoint) leads to the signed root."""
    latest: Checkpoint = signed["checkpoints"][-1]
    rows = audit_db.rows()
    for index in range(latest.size):
        body = inclusion(client, index)
        assert (body["index"], body["tree_size"]) == (index, latest.size)
        leaf = bytes.fromhex(body["leaf_hash"])
        assert leaf == hash_leaf(rows[index]["canonical"])
        assert verify_inclusion(index, latest.size, leaf, unhex(body["proof"]), latest.root)


def test_inclusion_proofs_in_every_earlier_checkpoint(signed: dict[str, Any], client: Any) -> None:
    """With ?tree_size= every entry is proven in every earlier signed tree it belongs to."""
    for checkpoint in signed["checkpoints"]:
        for index in range(checkpoint.size):
            body = inclusion(client, index, checkpoint.size)
            assert body["tree_size"] == checkpoint.size
            assert verify_inclusion(index, checkpoint.size, bytes.fromhex(body["leaf_hash"]),
                                    unhex(body["proof"]), checkpoint.root)


def test_every_step_is_covered_by_a_checkpoint(signed: dict[str, Any], rbl: Party, client: Any,
                                               audit_db: AuditDb) -> None:
    """A step that is no submission (a token) is still signed at once: its proof needs no size."""
    rbl.request_token()
    size = audit_db.size()
    checkpoint = client.get(f"{AUDIT}/checkpoint", headers={"Accept": "application/json"}).json
    assert checkpoint["tree_size"] == size
    body = client.get(f"{AUDIT}/entries/{size - 1}/proof").json
    tree = MerkleTree(row["leaf_hash"] for row in audit_db.rows())
    assert verify_inclusion(size - 1, size, bytes.fromhex(body["leaf_hash"]), unhex(body["proof"]), tree.root())
    assert_problem(client.get(f"{AUDIT}/entries/{size}/proof"), 404)


CORRUPTIONS = [
    "index + 1", "index - 1", "other checkpoint's size and root", "size doubled", "size halved",
    "leaf of another entry", "leaf flipped", "proof element flipped", "proof element dropped",
    "proof element added", "proof reversed", "root of another checkpoint",
]


def corrupt_inclusion(case: str, index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes,
                      signed: dict[str, Any]) -> tuple[int, int, bytes, list[bytes], bytes] | None:
    """Return the arguments of verify_inclusion after one corruption (None: not applicable)."""
    others = [c for c in signed["checkpoints"] if c.size != size and c.size > index]
    leaves = signed["leaves"]
    if case == "index + 1":
        return index + 1, size, leaf, proof, root
    if case == "index - 1":
        return (index - 1, size, leaf, proof, root) if index else None
    if case == "other checkpoint's size and root":
        return (index, others[0].size, leaf, proof, others[0].root) if others else None
    if case == "size doubled":
        return index, size * 2, leaf, proof, root
    if case == "size halved":
        return (index, size // 2, leaf, proof, root) if index < size // 2 else None
    if case == "leaf of another entry":
        return index, size, leaves[(index + 1) % size], proof, root
    if case == "leaf flipped":
        return index, size, flip(leaf, 31), proof, root
    if case == "proof element flipped":
        return (index, size, leaf, [flip(proof[0], 7), *proof[1:]], root) if proof else None
    if case == "proof element dropped":
        return (index, size, leaf, proof[:-1], root) if proof else None
    if case == "proof element added":
        return index, size, leaf, [*proof, leaf], root
    if case == "proof reversed":
        return (index, size, leaf, proof[::-1], root) if len(set(proof)) > 1 else None
    if case == "root of another checkpoint":
        return (index, size, leaf, proof, others[0].root) if others else None
    raise AssertionError(case)


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupted_inclusion_proofs_are_rejected(case: str, signed: dict[str, Any], client: Any) -> None:
    """A served proof no longer verifies with a wrong index, a wrong size, a wrong leaf or a changed hash."""
    latest: Checkpoint = signed["checkpoints"][-1]
    tried = 0
    for index in range(latest.size):
        body = inclusion(client, index)
        leaf, proof = bytes.fromhex(body["leaf_hash"]), unhex(body["proof"])
        assert verify_inclusion(index, latest.size, leaf, proof, latest.root)
        arguments = corrupt_inclusion(case, index, latest.size, leaf, proof, latest.root, signed)
        if arguments is not None:
            tried += 1
            assert not verify_inclusion(*arguments), (case, index)
    assert tried > 0


# -- consistency proofs -------------------------------------------------------------------------------


def consistency(client: Any, old: int, new: int) -> list[bytes]:
    response = client.get(f"{AUDIT}/consistency?from={old}&to={new}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (response.json["from"], response.json["to"]) == (old, new)
    return unhex(response.json["proof"])


def test_consistency_proofs_between_all_checkpoints(signed: dict[str, Any], client: Any) -> None:
    """For every pair of published checkpoints the served proof shows the older is a prefix."""
    checkpoints: list[Checkpoint] = signed["checkpoints"]
    for older, newer in itertools.combinations_with_replacement(checkpoints, 2):
        proof = consistency(client, older.size, newer.size)
        assert verify_consistency(older.size, newer.size, older.root, newer.root, proof), (older.size, newer.size)
        if older.size == newer.size:
            assert proof == []


def test_consistency_proofs_between_all_sizes_match_the_reference(signed: dict[str, Any], client: Any) -> None:
    """Between any two sizes of the log the served proof is the RFC 9162 proof of an in-memory tree."""
    tree: MerkleTree = signed["tree"]
    for old, new in itertools.combinations(range(1, tree.size + 1, 3), 2):
        proof = consistency(client, old, new)
        assert proof == tree.prove_consistency(old, new)
        assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)


def test_corrupted_consistency_proofs_are_rejected(signed: dict[str, Any], client: Any) -> None:
    """A consistency proof fails with other sizes or roots, swapped roots, or any hash altered."""
    checkpoints: list[Checkpoint] = signed["checkpoints"]
    for older, newer in itertools.combinations(checkpoints, 2):
        m, n = older.size, newer.size
        proof = consistency(client, m, n)
        assert verify_consistency(m, n, older.root, newer.root, proof)
        for other in {m - 1, m + 1, m * 2} - {m}:
            assert not verify_consistency(other, n, older.root, newer.root, proof), (m, n, other)
        # Only sizes that change the proof's path are caught by the proof itself; otherwise the
        # sizes are bound to their roots by the signed checkpoints, as checked next.
        for other in {n * 2, n // 2} - {n}:
            assert not verify_consistency(m, other, older.root, newer.root, proof), (m, n, other)
        for third in checkpoints:
            if third.size not in (m, n) and third.size > m:
                assert not verify_consistency(m, third.size, older.root, third.root, proof), (m, n, third.size)
            if third.size not in (m, n) and 0 < third.size < n:
                assert not verify_consistency(third.size, n, third.root, newer.root, proof), (m, n, third.size)
        assert not verify_consistency(m, n, newer.root, older.root, proof)
        assert not verify_consistency(m, n, flip(older.root), newer.root, proof)
        assert not verify_consistency(m, n, older.root, flip(newer.root), proof)
        assert not verify_consistency(m, n, older.root, newer.root, [])
        assert not verify_consistency(m, n, older.root, newer.root, [*proof, newer.root])
        assert not verify_consistency(m, n, older.root, newer.root, proof[:-1])
        for position in range(len(proof)):
            bad = list(proof)
            bad[position] = flip(bad[position], 13)
            assert not verify_consistency(m, n, older.root, newer.root, bad), (m, n, position)


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "tree_size=abc", "tree_size=-1", "tree_size=1.5", "tree_size=", "tree_size=0x10",
    ],
)
def test_bad_inclusion_query_is_400(query: str, signed: dict[str, Any], client: Any) -> None:
    """A tree_size that is not a non-negative integer is a 400 problem."""
    assert_problem(client.get(f"{AUDIT}/entries/1/proof?{query}"), 400)


@pytest.mark.parametrize("query", ["from=1&to=100000", "from=1&to=99999999999999999999999"])
def test_consistency_beyond_the_log_is_404(query: str, signed: dict[str, Any], client: Any) -> None:
    """A consistency proof up to a size the log does not have yet is not found."""
    assert_problem(client.get(f"{AUDIT}/consistency?{query}"), 404)


@pytest.mark.parametrize(
    "query",
    [
        "", "from=1", "to=5", "from=abc&to=5", "from=1&to=xyz", "from=-1&to=5", "from=1&to=-5",
        "from=0&to=5", "from=6&to=5", "from=1.0&to=5", "from=&to=5",
    ],
)
def test_bad_consistency_query_is_400(query: str, signed: dict[str, Any], client: Any) -> None:
    """Missing, non-integer, negative, zero, reversed or beyond-the-log sizes are a 400 problem."""
    # A `to` beyond the log is answered 400 like the other unusable pairs (not 404 as for inclusion).
    assert_problem(client.get(f"{AUDIT}/consistency?{query}"), 400)


@pytest.mark.parametrize(
    "path",
    [
        "entries/{size}/proof",
        "entries/{beyond}/proof",
        "entries/100000000000000000000/proof",
        "entries/0/proof?tree_size={beyond}",
        "entries/0/proof?tree_size=99999999999999999999",
        "entries/0/proof?tree_size=0",
        "entries/3/proof?tree_size=3",
        "entries/-1/proof",
        "entries/abc/proof",
    ],
)
def test_out_of_range_inclusion_is_404(path: str, signed: dict[str, Any], client: Any) -> None:
    """An index outside the tree, or a tree larger than the log, is a 404 problem."""
    size = signed["checkpoints"][-1].size
    assert_problem(client.get(f"{AUDIT}/" + path.format(size=size, beyond=size + 1)), 404)


def test_empty_tree_root_is_never_published(client: Any, signed: dict[str, Any]) -> None:
    """Init signs the register entries at once, so no published checkpoint is of the empty tree."""
    assert all(c.size > 0 and c.root != EMPTY_ROOT for c in signed["checkpoints"])


# -- proofs read O(log n) rows by primary key -------------------------------------------------------


def _plans(engine: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """The query plan of every captured statement, as text."""
    plans = []
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask whether an index *can* serve
        for statement, parameters in statements:
            if engine.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                plans.append("\n".join(str(row[-1]) for row in rows))
            else:
                rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
                plans.append("\n".join(str(row[0]) for row in rows))
        conn.rollback()
    return plans


def test_proof_queries_use_the_primary_keys(signed: dict[str, Any], app: Any, audit_db: AuditDb) -> None:
    """A proof reads its O(log n) nodes by primary key: no proof query scans an audit table."""
    from sqlalchemy import event

    from broker.app.extensions import db
    from broker.auditing.store import consistency_proof, inclusion_proof

    size = signed["checkpoints"][-1].size
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(audit_db.engine, "before_cursor_execute", capture)
    try:
        with app.app_context():
            assert inclusion_proof(db.session, 3, size)
            assert consistency_proof(db.session, 5, size)
            db.session.rollback()
    finally:
        event.remove(audit_db.engine, "before_cursor_execute", capture)
    node_queries = [s for s in statements if "audit_nodes" in s[0] or "audit_entries" in s[0]]
    assert node_queries
    for (statement, _), plan in zip(node_queries, _plans(audit_db.engine, node_queries), strict=True):
        assert "SCAN audit_" not in plan and "Seq Scan on audit_" not in plan, (statement, plan)
