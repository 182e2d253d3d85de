"""Writes of judgments (a judge's probabilities over the answers) and survey feedback.

Model judges (`judges/records.py`, `judges/rule.py`), the NYU importer and the pixel
store write judgments here, in their own transactions; a person's judgment from the
web queue is written with its assignment by `store.judging.record_submission`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from debate.store.models import Feedback, Judgment


def insert_judgments(session: Session, rows: list[dict[str, Any]]) -> None:
    """Many judgments rows in one statement (dicts of Judgment attributes; `meta` is the
    metadata column). Ids are not returned."""
    if rows:
        session.execute(insert(Judgment), rows)


def insert_judgment(session: Session, **fields: Any) -> int:
    """One judgments row (Judgment attributes as keywords); returns its id."""
    row = Judgment(**fields)
    session.add(row)
    session.flush()
    return row.id


def insert_feedback(session: Session, **fields: Any) -> int:
    """One feedback row (Feedback attributes as keywords); returns its id."""
    row = Feedback(**fields)
    session.add(row)
    session.flush()
    return row.id
