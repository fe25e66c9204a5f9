"""The database engine and a request-scoped session."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # REPLACE's implicit DELETE must fire the audit log's append-only triggers.
    cursor.execute("PRAGMA recursive_triggers=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str | URL, *, connect_timeout: int = 5, statement_timeout: int = 0, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout.

    PostgreSQL gets a connect timeout and, when given, a statement timeout (seconds), so a request
    never hangs on a database that is gone; pre-ping replaces connections that died meanwhile,
    so the broker recovers by itself when the database is back.
    """
    if make_url(url).get_backend_name() == "postgresql":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", connect_timeout)
        if statement_timeout:
            connect_args.setdefault("options", f"-c statement_timeout={statement_timeout * 1000}")
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """Bind an engine to the app and hand out one session per request or CLI command."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(
            app.config["DATABASE_URL"],
            connect_timeout=app.config["DATABASE_CONNECT_TIMEOUT"],
            statement_timeout=app.config["DATABASE_STATEMENT_TIMEOUT"],
        )
        app.extensions["broker.db"] = sessionmaker(engine, expire_on_commit=False)
        app.teardown_appcontext(self._close_session)

    @property
    def engine(self) -> Engine:
        engine = current_app.extensions["broker.db"].kw["bind"]
        assert isinstance(engine, Engine)
        return engine

    @property
    def session(self) -> Session:
        if "db_session" not in g:
            g.db_session = current_app.extensions["broker.db"]()
        session: Session = g.db_session
        return session

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
