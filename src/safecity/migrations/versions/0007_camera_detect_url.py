"""cameras: an optional stream for analysis (the camera's sub-stream)

IP cameras send a main stream (1080p, for viewing and evidence) and a sub-stream (640x360
or so). Decoding 1080p at 25 fps costs about 2 ms a picture on one core, six times the
sub-stream, and the detector shrinks the picture to 416 pixels anyway: the analysis
reads the sub-stream when one is given.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cameras", sa.Column("detect_url", sa.String(length=512), nullable=True))


def downgrade() -> None:
    op.drop_column("cameras", "detect_url")
