"""Alembic environment: runs on the connection `safecity.core.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import safecity.analytics.models
import safecity.core.models
import safecity.dispatch.models
import safecity.geo.models
import safecity.incidents.models
import safecity.registry.models
import safecity.video.models  # noqa: F401  (registers every table on Base.metadata)
from safecity.core.db import Base, include_in_migrations

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = engine_from_config(
            config.get_section(config.config_ini_section) or {},
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with engine.connect() as conn:
            _run(conn)
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        include_object=include_in_migrations,
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # ALTER TABLE on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
