"""bring databases stamped 0007 by the first release of 0007 up to date

Revision 0007 (tournaments) was first released right after 0001. A later release put
0002 (integrity and accounts), 0005 (experiments.config_dir) and 0006 (activations and
probes) before it and moved 0007's down_revision to 0006 in place. A database upgraded by
the first release is stamped 0007 too, so Alembic would call it current while it lacks
everything those three revisions make. This revision applies each of them where its
objects are missing, in their order, and does nothing to a database that has them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _missing(inspector: sa.Inspector) -> list[str]:
    """The revisions placed before 0007 whose objects this database lacks."""
    tables = set(inspector.get_table_names())
    missing = []
    if "web_sessions" not in tables:
        missing.append("0002")
    if "config_dir" not in {c["name"] for c in inspector.get_columns("experiments")}:
        missing.append("0005")
    if "activations" not in tables:
        missing.append("0006")
    return missing


def upgrade() -> None:
    missing = _missing(sa.inspect(op.get_bind()))
    if not missing:
        return
    script = ScriptDirectory.from_config(op.get_context().config)
    for rev in missing:  # released revisions: run as they are, never copied
        script.get_revision(rev).module.upgrade()


def downgrade() -> None:
    # 0007 as it stands now follows 0006: the schema this revision leaves is 0007's
    pass
