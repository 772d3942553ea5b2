"""incidents: a duplicate-radius grid cell, indexed with the receive time

Duplicate detection asks for incidents received in the last minutes near a call. With a
(lat, lon) index every incident ever received in the call's latitude band was read, a
number that grows with the history; with (cell, received_at) a batch of calls reads just
the recent incidents in their cells, in one statement.

Revision ID: 0006
Revises: 0005
"""

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As incidents.service.location_cell at this revision (migrations keep their own copy).
_CELL_DEG = 300.0 / 111_195.0


def _cell(lon: float, lat: float) -> int:
    return math.floor((lat + 90.0) / _CELL_DEG) * 200_000 + math.floor((lon + 180.0) / _CELL_DEG)


def upgrade() -> None:
    op.add_column("incidents", sa.Column("cell", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, lon, lat FROM incidents")).all()
    if rows:
        conn.execute(
            sa.text("UPDATE incidents SET cell = :cell WHERE id = :id"),
            [{"id": r[0], "cell": _cell(r[1], r[2])} for r in rows],
        )
    op.drop_index("ix_incidents_lat_lon", table_name="incidents")
    op.create_index("ix_incidents_cell_received_at", "incidents", ["cell", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_cell_received_at", table_name="incidents")
    op.create_index("ix_incidents_lat_lon", "incidents", ["lat", "lon"])
    op.drop_column("incidents", "cell")
