"""Serving with gunicorn: the settings and hooks that `broker serve` and gunicorn.conf.py share.

- `on_starting` (master, before any worker): refuse an unsafe configuration (broker/app/production.py)
  and give the workers one directory for their Prometheus metrics.
- `post_worker_init` (each worker, after the fork): start the scheduler thread. Only the holder
  of the database lease runs the jobs (broker/jobs/scheduler.py), so several workers are harmless.
  Never in the master: a thread that holds a lock (SQLite's, say) while gunicorn forks leaves
  that lock held forever in the worker.
- `worker_exit`: the scheduler stops and gives its lease up, so a restart need not wait for it.
- `child_exit`: a dead worker's metrics stop counting as live; `on_exit` removes their directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from sqlalchemy import make_url

# A 100,000-record list takes ~20 s to validate, seal and audit; longer than this, a worker is stuck.
WORKER_TIMEOUT = 120
SETTINGS: dict[str, Any] = {
    "worker_class": "gthread",
    "timeout": WORKER_TIMEOUT,
    "graceful_timeout": 30,
    "keepalive": 5,
    # Request line and headers stay small; bodies are limited by MAX_CONTENT_LENGTH in the app.
    "limit_request_line": 8190,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
    "accesslog": None,  # the app logs every request itself, as JSON, without query strings
    "control_socket_disable": True,  # one per host would collide between instances; not used
}


def default_workers(database_url: str) -> int:
    """One for SQLite (it serialises writers anyway), two per core for PostgreSQL."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return 1
    return max(2, 2 * (os.cpu_count() or 1))


def _app() -> Any:
    from broker import create_app

    return create_app()


def on_starting(server: Any) -> None:
    from broker.app import metrics, production

    # `broker serve` made its app already; plain gunicorn has none yet in the master.
    app = getattr(server.app, "broker_app", None) or _app()
    try:
        production.check(app, server.cfg.workers)
    except production.ConfigurationError as e:
        print(e, file=sys.stderr)
        sys.exit(3)  # gunicorn's own exit code for "configuration error" is 3 as well
    directory = os.environ.get(metrics.MULTIPROC_ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="broker-metrics-")
        server.broker_metrics_dir = directory  # ours: removed on exit
    metrics.prepare_multiprocess(directory)


def on_exit(server: Any) -> None:
    directory = getattr(server, "broker_metrics_dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def post_worker_init(worker: Any) -> None:
    if os.environ.get("BROKER_SCHEDULER", "1") in ("0", "false", "no"):
        return
    from broker.jobs.scheduler import Scheduler

    worker.broker_scheduler = Scheduler(_app)
    worker.broker_scheduler.start()


def worker_exit(_server: Any, worker: Any) -> None:
    """In the worker, on its way out: stop the scheduler, which gives up the lease if it held it."""
    scheduler = getattr(worker, "broker_scheduler", None)
    if scheduler is not None:
        scheduler.stop()
        scheduler.join(timeout=10)


def child_exit(_server: Any, worker: Any) -> None:
    from broker.app import metrics

    metrics.worker_exit(worker.pid)
