"""incidents: one (lat, lon) index for duplicate detection instead of lat alone

Duplicate detection asks for open incidents in a small box around each call; with lat
alone SQLite preferred the status index and read every open incident per call.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_incidents_lat", table_name="incidents")
    op.create_index("ix_incidents_lat_lon", "incidents", ["lat", "lon"])


def downgrade() -> None:
    op.drop_index("ix_incidents_lat_lon", table_name="incidents")
    op.create_index("ix_incidents_lat", "incidents", ["lat"])
