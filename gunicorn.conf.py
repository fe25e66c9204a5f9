"""gunicorn's settings for `gunicorn wsgi:app`, read from this directory: the same as `broker serve`.

    gunicorn --workers 4 --bind 0.0.0.0:8000 wsgi:app

refuses an unsafe configuration (broker/app/production.py), runs the scheduler once by lease, and
collects every worker's Prometheus metrics.
"""

import os

from broker.app.serving import (  # noqa: F401 (gunicorn's hooks, by name)
    SETTINGS,
    child_exit,
    on_exit,
    on_starting,
    post_worker_init,
    worker_exit,
)

globals().update(SETTINGS)
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
