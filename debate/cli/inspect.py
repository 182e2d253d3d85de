"""`debate list` and `debate show DEBATE_ID`: what is in the store, and one transcript
exactly as a judge would see it.

The transcript view holds no ground truth: no correct answer, no honest/deceptive label,
no experiment or agent names, no judgments. Every piece of stored text is printed through
rich Text objects (never parsed as markup) after debate.quotes cleans it for a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, make_url, select
from sqlalchemy.exc import ArgumentError

from debate.cli.options import db_option
from debate.errors import UserError
from debate.quotes import (
    PLAIN_CLOSE,
    PLAIN_OPEN,
    PLAIN_UNVERIFIED,
    PLAIN_VERIFIED,
    clean_plain,
    segments_plain,
)
from debate.store.db import Store, open_store, resolve_url
from debate.store.models import Debate, Experiment, Judgment, Turn
from debate.store.views import load_facts
from debate.view import BlindView, blind_view
from debate.vocabulary import DebateStatus

STATUSES = tuple(DebateStatus)
ANSWER_LABELS = "ABCDEFGH"


def open_existing_store(db_url: str | None) -> Store:
    """Read-only commands neither create nor migrate a database."""
    url = resolve_url(db_url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"--db: cannot use database URL {url!r}") from None
    database = parsed.database
    is_file_db = parsed.drivername.startswith("sqlite") and database not in (None, "", ":memory:")
    if is_file_db and not Path(database).is_file():
        raise UserError(
            f"--db: no database file at {database}; run `debate demo` or "
            "`debate run CONFIG.yaml` first"
        )
    return open_store(url, migrate=False)


# ---------------------------------------------------------------- debate list


@dataclass
class ExperimentCounts:
    id: int
    name: str
    protocol: str
    source: str
    created_at: datetime | None
    debates: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    judgments: int = 0

    @property
    def total_debates(self) -> int:
        return sum(self.debates.values())


def experiment_counts(store: Store) -> list[ExperimentCounts]:
    """Every experiment with its debates by status, its turns and its judgments."""
    with store.session() as session:
        rows = {
            e.id: ExperimentCounts(e.id, e.name, e.protocol, e.source, e.created_at)
            for e in session.scalars(select(Experiment).order_by(Experiment.id))
        }
        for exp_id, status, n in session.execute(
            select(Debate.experiment_id, Debate.status, func.count())
            .group_by(Debate.experiment_id, Debate.status)
        ):
            rows[exp_id].debates[status] = n
        for exp_id, n in session.execute(
            select(Debate.experiment_id, func.count(Turn.id))
            .join(Turn, Turn.debate_id == Debate.id)
            .group_by(Debate.experiment_id)
        ):
            rows[exp_id].turns = n
        for exp_id, n in session.execute(
            select(Debate.experiment_id, func.count(Judgment.id))
            .join(Judgment, Judgment.debate_id == Debate.id)
            .group_by(Debate.experiment_id)
        ):
            rows[exp_id].judgments = n
    return list(rows.values())


def experiments_table(counts: list[ExperimentCounts], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("experiment", overflow="fold")
    table.add_column("protocol", overflow="fold")
    table.add_column("debates by status")
    table.add_column("turns", justify="right", no_wrap=True)
    table.add_column("judgments", justify="right", no_wrap=True)
    for c in counts:
        by_status = ", ".join(
            f"{c.debates[s]} {s}" for s in (*STATUSES, *sorted(set(c.debates) - set(STATUSES)))
            if c.debates.get(s)
        )
        table.add_row(
            Text(str(c.id)),
            Text(clean_plain(c.name)),
            Text(clean_plain(c.protocol)),
            Text(f"{c.total_debates}: {by_status}" if by_status else "0"),
            Text(str(c.turns)),
            Text(str(c.judgments)),
        )
    return table


@click.command("list")
@db_option
def list_experiments(db_url: str | None) -> None:
    """List experiments with their debates (by status), turns and judgments."""
    store = open_existing_store(db_url)
    try:
        counts = experiment_counts(store)
    finally:
        store.dispose()
    console = Console(highlight=False)
    if not counts:
        console.print(Text(f"no experiments in {store.url}; run `debate demo` or "
                           "`debate run CONFIG.yaml`"))
        return
    console.print(experiments_table(counts))


# ---------------------------------------------------------------- debate show


@dataclass(frozen=True)
class JudgeTranscript:
    """A debate as its judge sees it (debate.view's blind view), and the status line."""

    view: BlindView
    status: str


def judge_transcript(store: Store, debate_id: int) -> JudgeTranscript:
    with store.session() as session:
        facts = load_facts(session, [debate_id]).get(debate_id)
    if facts is None:
        raise UserError(f"DEBATE_ID: no debate {debate_id} in {store.url}")
    return JudgeTranscript(blind_view(facts), facts.status)


def transcript_lines(t: JudgeTranscript) -> list[Text]:
    """The transcript as lines of rich Text (plain text underneath: no markup parsed)."""
    v = t.view
    lines: list[Text] = []
    head = Text(f"Debate {v.debate_id}", style="bold")
    rounds = f"{v.rounds} round{'' if v.rounds == 1 else 's'}"
    head.append(f"  ·  {clean_plain(v.protocol)}  ·  {rounds}  ·  {t.status}", style="dim")
    lines.append(head)
    lines.append(Text(""))
    lines.append(Text("Question: ", style="bold") + Text(clean_plain(v.question)))
    for label, answer in zip(ANSWER_LABELS, v.answers):
        lines.append(Text(f"  {label}: ", style="bold") + Text(clean_plain(answer)))
    for speaker, position in v.claims:
        side = (
            f"answer {ANSWER_LABELS[position]}"
            if position is not None
            else "the answer it picks at the start"
        )
        lines.append(Text(f"{speaker} argues for {side}.", style="italic"))
    if v.source is not None:
        lines.append(Text(""))
        title = f" ({clean_plain(v.source_title)})" if v.source_title else ""
        lines.append(Text(f"Source text{title}:", style="bold"))
        lines.append(Text(clean_plain(v.source)))
    if not v.turns:
        lines.append(Text(""))
        if v.family in ("naive", "expert"):
            lines.append(Text("No arguments: the judge decides from what is shown above.",
                              style="italic"))
        else:
            lines.append(Text("No turns yet.", style="italic"))
        return lines
    current = None
    for turn in v.turns:
        if turn.round != current:
            current = turn.round
            lines.append(Text(""))
            lines.append(Text("Opening" if turn.round == 0 else f"Round {turn.round}",
                              style="bold underline"))
        what = {"question": " (question)", "choice": " (choice of side)"}.get(turn.kind, "")
        line = Text(f"{turn.speaker}{what}: ", style="bold")
        line.append_text(_styled_quotes(segments_plain(turn.segments)))
        lines.append(line)
    lines.append(Text(""))
    lines.append(Text(
        f"{PLAIN_OPEN}{PLAIN_VERIFIED} \u201c\u2026\u201d{PLAIN_CLOSE} verified quote (the hidden "
        f"text's own words)   {PLAIN_OPEN}{PLAIN_UNVERIFIED} \u201c\u2026\u201d{PLAIN_CLOSE} "
        "unverified quote",
        style="dim",
    ))
    return lines


def _styled_quotes(rendered: str) -> Text:
    """Colour the ⟦✓ …⟧ / ⟦✗ …⟧ spans that segments_plain produced (neither the debater's text
    nor a verified span of the source can contain these brackets: they are removed)."""
    text = Text()
    pos = 0
    while True:
        start = rendered.find(PLAIN_OPEN, pos)
        if start < 0:
            text.append(rendered[pos:])
            return text
        end = rendered.find(PLAIN_CLOSE, start)
        text.append(rendered[pos:start])
        span = rendered[start : end + 1]
        verified = span.startswith(PLAIN_OPEN + PLAIN_VERIFIED)
        text.append(span, style="green" if verified else "red")
        pos = end + 1


@click.command()
@click.argument("debate_id", type=int)
@db_option
def show(debate_id: int, db_url: str | None) -> None:
    """Print debate DEBATE_ID exactly as its judge sees it (quotes marked verified or not).

    Shows the question, the answers in the order the judge sees them, and the turns by
    speaker; never the correct answer, which side is honest, or who the debaters are.
    """
    store = open_existing_store(db_url)
    try:
        transcript = judge_transcript(store, debate_id)
    finally:
        store.dispose()
    console = Console(highlight=False)
    for line in transcript_lines(transcript):
        console.print(line)
