"""The schema comes from Alembic migrations, and those match the ORM models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import safecity.analytics.models
import safecity.core.models
import safecity.dispatch.models
import safecity.geo.models
import safecity.incidents.models
import safecity.registry.models
import safecity.video.models  # noqa: F401  (every table on Base.metadata)
from safecity.core.db import Base, include_in_migrations, migrate
from safecity.core.runtime import Runtime


@pytest.mark.filterwarnings("ignore:Did not recognize type 'geometry'")
def test_migrations_match_models(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": include_in_migrations,
            },
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_migrate_is_idempotent(runtime: Runtime) -> None:
    migrate(runtime.engine)
    migrate(runtime.engine)
    with runtime.engine.connect() as conn:
        rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert rev == "0007"
    assert "incidents" in inspect(runtime.engine).get_table_names()


def test_sqlite_runs_in_wal_mode(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with runtime.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
