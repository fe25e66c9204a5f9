"""Prometheus metrics at /metrics: requests, latencies, submissions, audit appends, open breaches.

Counters and histograms live in the process that serves the request. Under `broker serve` every
gunicorn worker writes them to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess
mode, set up by the serve command before any metric exists), and a scrape sums them over workers.
The breach gauges (broker/breaches/gauges.py) are read from the database at scrape time,
so they agree across workers and instances and never wait for a job.

No label holds personal data or anything a caller typed: routes are URL rules
(`/api/v1/deliveries/<delivery_id>`), not paths; methods, kinds and outcomes come from closed sets
(the submission kind from its audit entry, which records only the broker's own kinds).
"""

from __future__ import annotations

import collections
import datetime as dt
import hmac
import os
import time
from collections.abc import Callable, Sequence

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from audit.entry import AuditEntry
from broker.app.errors import Unauthorized

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "broker_http_requests", "HTTP requests answered, by method, route and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "broker_http_request_duration_seconds",
    "Time from request to response, by method and route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SUBMISSIONS = Counter(
    "broker_submissions", "Submissions, by convenant, kind and outcome (accepted, rejected).",
    ["convenant", "kind", "outcome"],
)
SUBMITTED_RECORDS = Counter(
    "broker_submitted_records", "Records in accepted submissions, by convenant and kind.", ["convenant", "kind"]
)
AUDIT_APPENDS = Counter("broker_audit_appends", "Audit log entries appended (committed), by entry name.", ["name"])
AUDIT_REFUSALS = Counter(
    "broker_audit_refusals", "Steps refused because their audit entries could not be written, by cause.", ["cause"]
)

bp = Blueprint("metrics", __name__)

# Gauges read at scrape time from the database, given by the capability they belong to.
Gauges = Callable[[Session, dt.datetime], Collector]


SUBMISSION_OUTCOMES = {"submission.accepted": "accepted", "submission.rejected": "rejected"}
# An HTTP method werkzeug accepts but no route knows would otherwise become a label of its own.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def committed(entries: Sequence[AuditEntry]) -> None:
    """Count a committed step: its audit entries by name, and the submission it accepted or refused."""
    names = collections.Counter(entry.name for entry in entries)
    for name, count in names.items():
        AUDIT_APPENDS.labels(name).inc(count)
    if not SUBMISSION_OUTCOMES.keys() & names.keys():
        return
    for entry in entries:
        outcome = SUBMISSION_OUTCOMES.get(entry.name)
        if outcome is None:
            continue
        attributes = entry.attributes
        convenant, kind = entry.convenant_id or "", str(attributes.get("kind") or "unknown")
        SUBMISSIONS.labels(convenant, kind, outcome).inc()
        if outcome == "accepted":
            SUBMITTED_RECORDS.labels(convenant, kind).inc(int(attributes.get("records") or 0))


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _check_token() -> None:
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("Stuur het metrics-token als Bearer-token.")


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus exposition of this broker (all workers), plus the breach gauges from the database."""
    from broker.app import runtime
    from broker.app.extensions import db

    _check_token()
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    registry = CollectorRegistry()
    for gauges in current_app.extensions["broker.metrics_gauges"]:
        registry.register(gauges(db.session, runtime.now()))
    body += generate_latest(registry)
    db.session.rollback()
    return Response(body, mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def init_app(app: Flask, gauges: Sequence[Gauges] = ()) -> None:
    """Count every request; serve /metrics with the `gauges` read from the database at each scrape."""
    app.extensions["broker.metrics_gauges"] = tuple(gauges)

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None and request.endpoint != "metrics.metrics":
            route = _route()
            method = request.method if request.method in METHODS else "other"
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
            REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response

    app.register_blueprint(bp)


def prepare_multiprocess(directory: str) -> None:
    """Before gunicorn forks: give every worker's metrics files one clean, shared directory."""
    from prometheus_client import values

    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
    os.environ[MULTIPROC_ENV] = directory
    # Every metric here has labels, so its values are made at `.labels()`, in a worker: from now on
    # they are file-backed, whenever this module was imported.
    values.ValueClass = values.get_value_class()


def worker_exit(pid: int) -> None:
    """gunicorn's child_exit: a dead worker's live gauges no longer count (counters stay summed)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
