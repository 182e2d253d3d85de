"""The Alembic revisions and the ORM describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, inspect, select, text
from web_world import add_accounts, run_scripted

from debate.questions import question_content_key
from debate.store import open_store
from debate.store.db import MIGRATIONS_DIR, _alembic_config, head_revision, make_engine, upgrade
from debate.store.models import Base, Judgment
from debate.users import get_user
from judges import queue


def test_migrations_match_the_orm(db_url):
    engine = make_engine(db_url)
    assert upgrade(engine) == head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_every_orm_table_is_created_by_the_migrations(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_downgrade_to_base_and_back(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    command.downgrade(_alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert upgrade(engine) == head_revision()
    engine.dispose()


def _rows(engine, tables: list[str]) -> dict[str, list[tuple]]:
    """Every row of `tables`, in a stable order (the table's columns as they are)."""
    out = {}
    with engine.connect() as conn:
        for name in tables:
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).fetchall()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def test_upgrade_from_the_previous_revision_keeps_a_filled_database(db_url, tmp_path):
    """A database filled through the platform (experiment, debates, turns, quotes,
    accounts, a campaign with submitted judgments), taken back to the revision before
    head, upgrades to head with every row of the older tables kept as it was."""
    store = open_store(db_url)
    run_scripted(store, tmp_path, "exp", n_questions=3, rounds=2)
    add_accounts(store, ("j0", "judge"))
    campaign = queue.create_campaign(store, name="c", experiment="exp")
    user = get_user(store, "j0")
    a = queue.next_assignment(store, user, campaign.id)
    queue.submit_judgment(store, user, a.id, a.debate_id, a.rounds_shown, [60, 40], "seen it")
    store.dispose()

    head = head_revision()
    previous = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(head).down_revision
    assert previous is not None
    engine = make_engine(db_url)
    command.downgrade(_alembic_config(engine), previous)
    tables = sorted(set(inspect(engine).get_table_names()) - {"alembic_version"})
    for filled in ("experiments", "debates", "turns", "quotes", "users", "judgments"):
        assert filled in tables
    before = _rows(engine, tables)
    assert all(before[t] for t in ("debates", "turns", "judgments", "assignments"))
    assert upgrade(engine) == head
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    assert _rows(engine, tables) == before
    engine.dispose()
    reopened = open_store(db_url)  # the platform reads it again through the ORM
    assert [c.name for c in queue.list_campaigns(reopened)] == ["c"]
    with reopened.session() as session:
        assert session.scalar(select(func.count()).select_from(Judgment)) == 1
    reopened.dispose()


def _first_release_of_0007(engine) -> None:
    """The schema a database had under the first release of 0007, which followed 0001
    directly: 0001's tables, then 0007's, stamped 0007."""
    cfg = _alembic_config(engine)
    command.upgrade(cfg, "0001")
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            script.get_revision("0007").module.upgrade()
    command.stamp(cfg, "0007", purge=True)


def test_a_database_from_the_first_release_of_0007_upgrades_to_the_orm(db_url):
    """0007 was first released right after 0001; a later release put 0002, 0005 and 0006
    before it. A database stamped 0007 by the first release upgrades to head with what
    those three make added, its rows kept and its questions given content keys."""
    engine = make_engine(db_url)
    _first_release_of_0007(engine)
    tables = set(inspect(engine).get_table_names())
    assert "tournaments" in tables and "web_sessions" not in tables
    meta = MetaData()
    meta.reflect(engine, only=["documents", "experiments", "questions"])
    with engine.begin() as conn:
        conn.execute(meta.tables["documents"].insert(), [
            {"id": 1, "sha256": "d" * 64, "title": "T", "text": "A story."}])
        conn.execute(meta.tables["experiments"].insert(), [
            {"id": 1, "name": "old", "protocol": "debate", "config": {}, "config_hash": "h",
             "seed": 0, "source": "run", "created_at": datetime(2026, 11, 29, tzinfo=UTC)}])
        conn.execute(meta.tables["questions"].insert(), [
            {"id": 1, "experiment_id": 1, "external_id": "q1", "dataset": "d",
             "text": "Who?", "answers": ["x", "y"], "correct_index": 0, "document_id": 1,
             "metadata": {}}])
    assert upgrade(engine) == head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
        key = conn.execute(text("SELECT content_key FROM questions WHERE id = 1")).scalar()
        assert conn.execute(text("SELECT name FROM experiments")).scalars().all() == ["old"]
    assert key == question_content_key("Who?", ["x", "y"], 1)
    engine.dispose()
