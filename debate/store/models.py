"""The schema: SQLAlchemy 2.0 typed ORM. Every change here needs an Alembic revision.

Answer indices stored anywhere (seats, correct_index, judgment probabilities) are in the
question's own answer order; `debates.answer_order` says how they were shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from debate.questions import question_content_key
from debate.vocabulary import AssignmentStatus, CampaignMode, DebateStatus, JudgmentKind, TurnStatus


def utcnow() -> datetime:
    """The one clock of stored timestamps: timezone-aware, UTC (the columns are
    DateTime(timezone=True))."""
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime: SQLite returns them naive (everything
    is stored in UTC), PostgreSQL aware."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Partial indexes: most turns and judgments are a model's (user_id NULL).
_HAS_USER = text("user_id IS NOT NULL")


def _content_key_default(context: Any) -> str:
    """questions.content_key from the row being inserted (ORM or Core, one or many rows)."""
    row = context.get_current_parameters()
    return question_content_key(row["text"], row["answers"], row.get("document_id"))


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 (read by SQLAlchemy)


class Experiment(Base):
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    protocol: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(50), default="run")  # run | import | pixels
    # the folder of the config file it was run from: relative paths in `config` are read
    # from there (None: imported, or stored before revision 0005)
    config_dir: Mapped[str | None] = mapped_column(String(4000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Document(Base):
    """A hidden source text, stored once however many questions use it."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)


class Question(Base):
    """A question of one experiment. `content_key` is the question's identity across the
    whole store (text, answers, source document; debate.questions.question_content_key):
    blinding uses it, so the same question in two experiments or imports is one question."""

    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("experiment_id", "external_id"),
                      Index("ix_questions_content_key", "content_key"))
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    answers: Mapped[list[Any]] = mapped_column(JSON)
    correct_index: Mapped[int] = mapped_column(Integer)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    content_key: Mapped[str] = mapped_column(String(64), default=_content_key_default)

    document: Mapped[Document | None] = relationship()


class Agent(Base):
    """Who or what spoke or judged: a model with its settings, a script, or a person."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50))  # scripted | model | human | model-judge ...
    model_id: Mapped[str | None] = mapped_column(String(300))
    backend: Mapped[str | None] = mapped_column(String(50))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Debate(Base):
    __tablename__ = "debates"
    __table_args__ = (
        UniqueConstraint("experiment_id", "question_id", "variant"),
        # id last: "the first debates of an experiment in a status" walks the index in order
        Index("ix_debates_experiment_status", "experiment_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(100))
    protocol_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    variant: Mapped[str] = mapped_column(String(100))  # e.g. "order=10,deceptive"
    answer_order: Mapped[list[Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    # DebateStatus: pending -> running -> (waiting_human ->) done | failed
    status: Mapped[str] = mapped_column(String(20), default=DebateStatus.PENDING)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    question: Mapped[Question] = relationship()
    seats: Mapped[list[Seat]] = relationship(back_populates="debate", order_by="Seat.role")


class Seat(Base):
    """Which agent argues which answer in a debate (answer_index None until chosen)."""

    __tablename__ = "seats"
    __table_args__ = (UniqueConstraint("debate_id", "role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    debate_id: Mapped[int] = mapped_column(ForeignKey("debates.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    answer_index: Mapped[int | None] = mapped_column(Integer)

    debate: Mapped[Debate] = relationship(back_populates="seats")
    agent: Mapped[Agent | None] = relationship()


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("debate_id", "round", "role"),
                      # "which questions did this person argue" (blinding across experiments)
                      Index("ix_turns_user", "user_id", sqlite_where=_HAS_USER,
                            postgresql_where=_HAS_USER))
    id: Mapped[int] = mapped_column(primary_key=True)
    debate_id: Mapped[int] = mapped_column(ForeignKey("debates.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20), default="speech")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=TurnStatus.OK)
    shown_sha256: Mapped[str | None] = mapped_column(String(64))
    shown: Mapped[str | None] = mapped_column(Text)
    template_version: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    candidates: Mapped[list[Any] | None] = mapped_column(JSON)  # best-of-N: [{text, score}]
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    quotes: Mapped[list[Quote]] = relationship(order_by="Quote.position")


class Quote(Base):
    __tablename__ = "quotes"
    __table_args__ = (UniqueConstraint("turn_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean)
    source_start: Mapped[int | None] = mapped_column(Integer)
    source_end: Mapped[int | None] = mapped_column(Integer)
    fuzzy_score: Mapped[float] = mapped_column(Float)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # judge | admin | debater
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class WebSession(Base):
    """A web app login: expires, and is revoked on logout, password change or disable.
    Only a digest of the browser's token is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed logins per account name or client address: growing delays, then a lock."""

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("scope", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))  # account | address
    key: Mapped[str] = mapped_column(String(200))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_allowed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Campaign(Base):
    """A human judging campaign over one experiment's debates."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    judgments_per_debate: Mapped[int] = mapped_column(Integer, default=1)
    mode: Mapped[str] = mapped_column(String(20), default=CampaignMode.WHOLE)
    reveal_truth: Mapped[bool] = mapped_column(Boolean, default=True)
    judges: Mapped[list[Any] | None] = mapped_column(JSON)  # user names; None = every judge
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # False: a judge never gets a question (by content) they were assigned, judged or
    # debated anywhere in the store; True: only this campaign's own history counts.
    allow_repeats: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("campaign_id", "debate_id", "user_id"),
        Index("ix_assignments_user_status", "user_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    debate_id: Mapped[int] = mapped_column(ForeignKey("debates.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default=AssignmentStatus.OPEN)
    rounds_shown: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Judgment(Base):
    """A probability for each answer (question's own order) plus an explanation."""

    __tablename__ = "judgments"
    __table_args__ = (Index("ix_judgments_debate", "debate_id"),
                      Index("ix_judgments_user", "user_id", sqlite_where=_HAS_USER,
                            postgresql_where=_HAS_USER))
    id: Mapped[int] = mapped_column(primary_key=True)
    debate_id: Mapped[int] = mapped_column(ForeignKey("debates.id", ondelete="CASCADE"))
    judge_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))
    kind: Mapped[str] = mapped_column(String(20), default=JudgmentKind.FINAL)
    after_round: Mapped[int | None] = mapped_column(Integer)  # None: the whole transcript
    probabilities: Mapped[list[Any] | None] = mapped_column(JSON)  # None: unparseable verdict
    shown_order: Mapped[list[Any]] = mapped_column(JSON)
    explanation: Mapped[str | None] = mapped_column(Text)
    time_taken_ms: Mapped[float | None] = mapped_column(Float)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    """Survey answers after a judgment or a debate (Likert scales, free text)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    debate_id: Mapped[int] = mapped_column(ForeignKey("debates.id", ondelete="CASCADE"))
    judgment_id: Mapped[int | None] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    respondent: Mapped[str | None] = mapped_column(String(200))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Activation(Base):
    """One captured hidden-state vector of a turn: little-endian bytes of `dtype`, `shape`.

    layer: index into the model's hidden states (0 = embeddings); position: how the vector
    was taken from the turn (generated_mean | prompt_last; see debate.backends.capture)."""

    __tablename__ = "activations"
    __table_args__ = (UniqueConstraint("turn_id", "layer", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    layer: Mapped[int] = mapped_column(Integer)
    position: Mapped[str] = mapped_column(String(30))
    dtype: Mapped[str] = mapped_column(String(20))
    shape: Mapped[list[Any]] = mapped_column(JSON)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Probe(Base):
    """A trained linear probe: ground truth in disguise, shown to analysis and admins only."""

    __tablename__ = "probes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    method: Mapped[str] = mapped_column(String(20))  # logistic | mean-diff
    labels: Mapped[str] = mapped_column(String(20))  # side | instructed
    layer: Mapped[int] = mapped_column(Integer)
    position: Mapped[str] = mapped_column(String(30))
    model_id: Mapped[str | None] = mapped_column(String(300))
    dim: Mapped[int] = mapped_column(Integer)
    # direction, intercept, scaler mean/scale, threshold (JSON lists of floats)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    training: Mapped[dict[str, Any]] = mapped_column(JSON)  # experiment, counts, data set
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # grouped cross-validation
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProbeScore(Base):
    __tablename__ = "probe_scores"
    __table_args__ = (UniqueConstraint("probe_id", "turn_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    probe_id: Mapped[int] = mapped_column(ForeignKey("probes.id", ondelete="CASCADE"))
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)  # higher: more deceptive
class Tournament(Base):
    """A set of debaters and a schedule, expanded into one experiment per game."""

    __tablename__ = "tournaments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    schedule: Mapped[str] = mapped_column(String(50))  # round_robin | swiss
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the latest config run
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TournamentGame(Base):
    """One experiment of a tournament: who argues the true and who the false answer."""

    __tablename__ = "tournament_games"
    __table_args__ = (UniqueConstraint("tournament_id", "experiment_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"))
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)  # swiss round; 0: self-play, round robin
    kind: Mapped[str] = mapped_column(String(20))  # cross | self | consultancy
    protocol: Mapped[str] = mapped_column(String(100))
    honest: Mapped[str] = mapped_column(String(200))  # debater names (the consultant twice)
    deceptive: Mapped[str] = mapped_column(String(200))
