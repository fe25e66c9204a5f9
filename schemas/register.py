"""The register of processing activities (AVG art. 30), rendered from the definition files."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.convenant import Convenant, ConvenantError

BROKER_FILE = Path(__file__).parent / "broker.toml"
BROKER_SCOPE = "broker"
# The broker's steps that every convenant must place under one of its activities.
CONVENANT_STEPS = ("case", "quarterly_list")


@dataclass(frozen=True)
class Activity:
    """One version of one processing activity; its URI names exactly this text."""

    scope: str
    id: str
    version: str
    text: Mapping[str, Any]
    handles: frozenset[str]

    @property
    def uri(self) -> str:
        return activity_uri(self.scope, self.id, self.version)

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.text, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.uri,
            "scope": self.scope,
            "activity": self.id,
            "version": self.version,
            "digest": self.digest,
            **self.text,
        }


def activity_uri(scope: str, activity: str, version: str) -> str:
    return f"urn:convenant-broker:verwerkingsregister:{scope}:{activity}:v{version}"


def _activities(scope: str, entries: Iterable[Mapping[str, Any]], extra: Mapping[str, Any]) -> list[Activity]:
    result = []
    for entry in entries:
        text = {k: v for k, v in entry.items() if k not in ("id", "version", "handles")}
        result.append(
            Activity(
                scope=scope,
                id=entry["id"],
                version=str(entry["version"]),
                text={**extra, **text},
                handles=frozenset(entry.get("handles", ())),
            )
        )
    return result


def _convenant_context(convenant: Convenant) -> dict[str, Any]:
    """What every activity of a convenant states besides its own text (art. 30 lid 1)."""
    raw = convenant.raw
    return {
        "convenant": convenant.id,
        "convenant_version": convenant.version,
        "controllers": [{"id": p.id, "name": p.name} for p in convenant.parties],
        "legal_basis": raw.get("legal_basis", {}).get("article"),
        "data_categories": {
            c.id: [{"item": i.item, "fields": list(i.fields), "reason": i.reason} for i in c.items]
            for c in convenant.categories.values()
        },
    }


def build_register(convenants: Iterable[Convenant], broker_file: Path = BROKER_FILE) -> list[Activity]:
    """Return every activity of the broker and of each convenant."""
    with broker_file.open("rb") as f:
        broker = tomllib.load(f)
    activities = _activities(BROKER_SCOPE, broker.get("processing_activities", ()), {"controller": broker["title"]})
    for convenant in convenants:
        own = _activities(convenant.id, convenant.raw.get("processing_activities", ()), _convenant_context(convenant))
        missing = [step for step in CONVENANT_STEPS if not any(step in a.handles for a in own)]
        if missing:
            raise ConvenantError(f"convenant {convenant.id!r}: no processing activity handles {missing}")
        activities += own
    return activities


class Register:
    """Find the activity under which a step is done."""

    def __init__(self, activities: Iterable[Activity]) -> None:
        self.activities = list(activities)
        self._by_step = {(a.scope, step): a for a in self.activities for step in a.handles}

    def activity(self, scope: str, step: str) -> Activity:
        try:
            return self._by_step[(scope, step)]
        except KeyError:
            raise LookupError(f"no processing activity of {scope!r} handles {step!r}") from None

    def uri(self, scope: str, step: str) -> str:
        return self.activity(scope, step).uri
