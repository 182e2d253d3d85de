"""experiments.config_dir: the folder of the config file an experiment was run from

Relative paths in a config (a local model, a script, templates, a data set) are read from
the config's folder. The web app and `debate judge` rebuild agents from the stored config
without the file at hand, so the folder is stored with the experiment.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-29 22:45:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("config_dir", sa.String(length=4000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("config_dir")
