"""The clean-record fast path of RecordValidator never accepts what marshmallow refuses."""

from __future__ import annotations

import copy
import datetime as dt
from contextvars import copy_context
from typing import Any

import marshmallow as ma
import pytest
from fixtures.records import make_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import load_convenants
from schemas.validation import RecordValidator, _load_clean, reference_day

CONVENANT = load_convenants()["thuiszitters-midden-gelre"]
VALIDATOR = RecordValidator(CONVENANT)
TODAY = dt.date(2026, 11, 24)
CATEGORIES = list(CONVENANT.categories)

values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=30),
    st.sampled_from(["2026-02-30", "2030-01-01", "2019-01-01", "1234ab", "Utrecht", "arnhem", "ADHD", "geen", ""]),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
paths = st.sampled_from(
    [*CONVENANT.fields, "adres.postcode", "adres.gemeente", "adres.straat", "adres.extra", "diagnose", "category"]
)
mutations = st.lists(st.tuples(st.sampled_from(["set", "drop"]), paths, values), min_size=1, max_size=4)


def _mutate(record: dict[str, Any], ops: list[tuple[str, str, Any]]) -> dict[str, Any]:
    record = copy.deepcopy(record)
    for op, path, value in ops:
        parent, _, key = path.rpartition(".")
        target = record.get(parent) if parent else record
        if not isinstance(target, dict):
            continue
        if op == "drop":
            target.pop(key, None)
        else:
            target[key] = value
    return record


def _both(schema: ma.Schema, record: dict[str, Any]) -> tuple[Any, Any]:
    def run() -> tuple[Any, Any]:
        reference_day.set(TODAY)
        fast = _load_clean(schema, record)
        try:
            slow = schema.load(record)
        except ma.ValidationError:
            slow = None
        return fast, slow

    return copy_context().run(run)


@pytest.mark.parametrize("category", CATEGORIES)
def test_clean_records_load_identically(category: str) -> None:
    """A valid record gives the same result on the fast path as through marshmallow."""
    record = make_record(3, category, "Zevenaar")
    fast, slow = _both(VALIDATOR.schemas[category], record)
    assert fast is not None
    assert fast == slow


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(category=st.sampled_from(CATEGORIES), ops=mutations)
def test_fast_path_is_never_more_lenient(category: str, ops: list[tuple[str, str, Any]]) -> None:
    """Whatever a mutated record holds, the fast path accepts it only if marshmallow does, identically."""
    record = _mutate(make_record(5, category, "Renkum"), ops)
    fast, slow = _both(VALIDATOR.schemas[category], record)
    if fast is not None:
        assert slow == fast
