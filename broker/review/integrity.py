"""The integrity banner: the latest signed checkpoint and the last full verification.

A full verification reads every entry, so it runs only when an officer asks for it. Its result is
kept in a small JSON file next to the instance (one per database), outside the database it
judges: every worker process shows the same result, and a page load costs one file read and one
indexed query for the checkpoint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from broker.app import runtime
from broker.app.timefmt import AMSTERDAM
from broker.auditing import step as auditing
from broker.auditing.store import latest_checkpoint, verify_stored_log

PROBLEM_LABELS = {
    "edited": "entry gewijzigd",
    "deleted": "entry verwijderd",
    "inserted": "entry ingevoegd",
    "reordered": "volgorde gewijzigd",
    "truncated": "logboek ingekort",
    "checkpoint_mismatch": "klopt niet met een getekend checkpoint",
    "bad_signature": "ongeldige handtekening op een checkpoint",
}


@dataclass(frozen=True)
class CheckpointSummary:
    tree_size: int
    root_hash: str
    signed_at: dt.datetime  # Europe/Amsterdam


def checkpoint_summary(session: Session) -> CheckpointSummary | None:
    """The latest signed checkpoint, by one indexed query."""
    checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        return None
    signed = checkpoint.signed_at
    signed = signed.replace(tzinfo=dt.UTC) if signed.tzinfo is None else signed
    return CheckpointSummary(checkpoint.tree_size, checkpoint.root_hash.hex(), signed.astimezone(AMSTERDAM))


def _state_file() -> Path:
    configured = current_app.config.get("REVIEW_VERIFY_FILE")
    if configured:
        return Path(configured)
    # Two brokers may share an instance folder with different databases (see the README).
    database = hashlib.sha256(current_app.config["DATABASE_URL"].encode()).hexdigest()[:16]
    return Path(current_app.instance_path) / f"audit-verify-{database}.json"


def last_verification() -> dict[str, Any] | None:
    """The result of the last full verification, or None if none ran (or its file is unreadable)."""
    try:
        state = json.loads(_state_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    try:
        state["checked_at"] = dt.datetime.fromisoformat(state["checked_at"]).astimezone(AMSTERDAM)
    except (KeyError, TypeError, ValueError):
        return None
    return state


def _save(state: dict[str, Any]) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-verify-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(temporary, path)  # atomic: a reader sees the old or the new result, never half


def run_verification(session: Session, username: str) -> dict[str, Any]:
    """Verify the whole log as `broker audit verify` does, keep and return the result."""
    result = verify_stored_log(session, auditing.checkpoint_signer().verifier_key)
    problem = result.problem
    state: dict[str, Any] = {
        "ok": result.ok,
        "entries": result.entries,
        "root": result.root.hex(),
        "checkpoints": result.checkpoints,
        "problem": None if problem is None else {
            "index": problem.index, "kind": str(problem.kind), "detail": problem.detail,
            "label": PROBLEM_LABELS.get(str(problem.kind), str(problem.kind)), "column": problem.column,
        },
        "unrecorded": result.unrecorded,
        "checked_at": runtime.now().isoformat(),
        "checked_by": username,
    }
    _save(state)
    return state
