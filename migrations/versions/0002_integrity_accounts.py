"""measurement integrity and accounts: question content keys, campaign repeats and
close time, disabled users, web sessions, login throttling

Revision ID: 0002
Revises: 0001
"""
import hashlib
import json
import unicodedata
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _key_text(text) -> str:
    return " ".join(unicodedata.normalize("NFKC", str(text)).split())


def _content_key(text, answers, document_id) -> str:
    # A frozen copy of debate.questions.question_content_key (tests check they agree).
    payload = json.dumps(
        [_key_text(text), sorted(_key_text(a) for a in answers), document_id],
        ensure_ascii=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("content_key", sa.String(length=64), nullable=True))
    questions = sa.table(
        "questions", sa.column("id", sa.Integer), sa.column("text", sa.Text),
        sa.column("answers", sa.JSON), sa.column("document_id", sa.Integer),
        sa.column("content_key", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(questions.c.id, questions.c.text, questions.c.answers,
                                  questions.c.document_id)).all()
    for qid, text, answers, doc in rows:
        conn.execute(questions.update().where(questions.c.id == qid)
                     .values(content_key=_content_key(text, answers or [], doc)))
    with op.batch_alter_table("questions") as batch:
        batch.alter_column("content_key", existing_type=sa.String(length=64), nullable=False)
        batch.create_index("ix_questions_content_key", ["content_key"], unique=False)

    # the judging queue asks which questions a person judged or argued, on every claim
    has_user = sa.text("user_id IS NOT NULL")
    op.create_index("ix_judgments_user", "judgments", ["user_id"], unique=False,
                    sqlite_where=has_user, postgresql_where=has_user)
    op.create_index("ix_turns_user", "turns", ["user_id"], unique=False,
                    sqlite_where=has_user, postgresql_where=has_user)
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("allow_repeats", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("campaigns") as batch:
        batch.alter_column("allow_repeats", existing_type=sa.Boolean(), server_default=None)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("disabled", existing_type=sa.Boolean(), server_default=None)

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index("ix_web_sessions_user", "web_sessions", ["user_id"], unique=False)
    op.create_table(
        "login_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_allowed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "key"),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_index("ix_web_sessions_user", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("allow_repeats")
    op.drop_index("ix_turns_user", table_name="turns")
    op.drop_index("ix_judgments_user", table_name="judgments")
    with op.batch_alter_table("questions") as batch:
        batch.drop_index("ix_questions_content_key")
        batch.drop_column("content_key")
