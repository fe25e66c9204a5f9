"""The `broker` command (`python -m broker`): the app's commands, plus `serve`.

It sits above the app factory: it makes the app (`create_app`), whose `init_app`s register the
commands, and serves it with gunicorn (broker/app/serving.py). Nothing in the app imports it.
"""

from __future__ import annotations

import os
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from broker import create_app
from broker.app import serving


def _create_app() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False, load_dotenv=False)
def main() -> None:
    """Operate the convenant broker."""


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")), show_default="$PORT or 8000")
@click.option("--workers", type=int, default=None, help="Processes (default: 1 on SQLite, 2 per core otherwise).")
@click.option("--threads", type=int, default=1, show_default=True, help="Threads per worker.")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Also run due matches, reminders, breach deadlines, the outbox and retention (once, by lease).")
def serve_command(host: str, port: int, workers: int | None, threads: int, scheduler: bool) -> None:
    """Serve the broker with gunicorn; refuse an unsafe configuration (see broker/app/production.py)."""
    from gunicorn.app.base import BaseApplication

    app = _create_app()
    workers = workers or serving.default_workers(app.config["DATABASE_URL"])
    if not scheduler:
        os.environ["BROKER_SCHEDULER"] = "0"

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in serving.SETTINGS.items():
                self.cfg.set(name, value)
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("on_starting", serving.on_starting)
            self.cfg.set("post_worker_init", serving.post_worker_init)
            self.cfg.set("worker_exit", serving.worker_exit)
            self.cfg.set("child_exit", serving.child_exit)
            self.cfg.set("on_exit", serving.on_exit)

        broker_app = app  # for serving.on_starting: checked, not made a second time

        def load(self) -> Flask:
            return app

    click.echo(
        f"Broker on http://{host}:{port} with {workers} worker(s)  (OpenAPI: http://{host}:{port}/openapi.json, "
        f"health: /healthz, /readyz, metrics: /metrics)"
    )
    Server().run()


main.add_command(serve_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
