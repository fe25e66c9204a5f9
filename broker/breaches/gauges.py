"""The breach gauges of /metrics: open breaches per state and the seconds left to their deadlines.

Read from the database at every scrape, so they agree across workers and instances.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.breaches.state import AFFECTED, derive_state
from broker.models import Breach, BreachParty


class BreachCollector(Collector):
    """Open breaches per state, and the seconds left to each open deadline (negative: overdue)."""

    def __init__(self, session: Session, now: dt.datetime) -> None:
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        open_count = GaugeMetricFamily("broker_breaches_open", "Breaches not yet closed, by state.", labels=["state"])
        notify = GaugeMetricFamily(
            "broker_breach_notify_deadline_seconds",
            "Seconds until the 24-hour notification deadline of an open breach not yet acknowledged by all.",
            labels=["breach", "convenant"],
        )
        ap = GaugeMetricFamily(
            "broker_breach_ap_deadline_seconds",
            "Seconds until the 72-hour AP deadline of an open breach still missing a controller's decision.",
            labels=["breach", "convenant"],
        )
        breaches = self.session.scalars(select(Breach).where(Breach.closed_at.is_(None))).all()
        parties: dict[str, list[BreachParty]] = {}
        if breaches:
            rows = self.session.scalars(select(BreachParty).where(BreachParty.breach_id.in_([b.id for b in breaches])))
            for party in rows:
                parties.setdefault(party.breach_id, []).append(party)
        states: dict[str, int] = {}
        for breach in breaches:
            members = parties.get(breach.id, [])
            state = derive_state(breach, members, self.now)
            states[state] = states.get(state, 0) + 1
            label = [str(breach.number), breach.convenant_id]
            if any(p.role == AFFECTED and p.acknowledged_at is None for p in members):
                notify.add_metric(label, (breach.notify_deadline - self.now).total_seconds())
            if any(p.ap_decided_at is None for p in members):
                ap.add_metric(label, (breach.ap_deadline - self.now).total_seconds())
        for state, count in sorted(states.items()):
            open_count.add_metric([state], count)
        yield from (open_count, notify, ap)
