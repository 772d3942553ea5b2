"""PostGIS: a spatially indexed geometry column on jurisdictions, where PostGIS exists.

The WKB column stays the source of truth (portable to SQLite); on PostgreSQL with the
PostGIS extension available, `geom` is generated from it and GiST-indexed so SQL clients
(reports, BI tools, ad-hoc analysis) can run spatial queries on jurisdictions.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgis_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    query = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    return bind.execute(query).scalar() is not None


def upgrade() -> None:
    if not _postgis_available():
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
    op.execute(
        "ALTER TABLE jurisdictions ADD COLUMN geom public.geometry(Geometry, 4326) "
        "GENERATED ALWAYS AS (public.ST_GeomFromWKB(geometry_wkb, 4326)) STORED"
    )
    op.execute("CREATE INDEX ix_jurisdictions_geom ON jurisdictions USING gist (geom)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_jurisdictions_geom")
    op.execute("ALTER TABLE jurisdictions DROP COLUMN IF EXISTS geom")
