"""Alembic environment: the database URL comes from the broker's own configuration."""

from alembic import context

from broker.app.db import make_engine
from broker.models import Base

config = context.config
url: str = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url") or ""


def run_migrations() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode changes a table by copying it into a new one and dropping the old. With
            # foreign keys on, dropping a table that rows point at fails, so (as SQLite's own
            # procedure for schema changes says) they are off while migrating and checked after.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # end the autobegun transaction, so Alembic's own commits the migration
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
    engine.dispose()


run_migrations()
