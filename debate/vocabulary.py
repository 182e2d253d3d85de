"""The stored vocabularies, one definition each: statuses, roles, kinds and modes.

Pure: no I/O, no torch, no SQLAlchemy. Each is a StrEnum, so a member is the very string
that is stored (`DebateStatus.DONE == "done"`, it binds, prints and serializes to JSON as
"done"); the schema keeps its plain string columns and rows read back as plain strings
compare equal to the members. Code names the member, never the bare string; tests may
check stored values with literals.
"""

from __future__ import annotations

from enum import StrEnum


class DebateStatus(StrEnum):
    """debates.status: pending -> running -> (waiting_human ->) done | failed."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_HUMAN = "waiting_human"  # a person's turn is next (web Debate tab)
    DONE = "done"
    FAILED = "failed"


# still to be run by a worker (a running debate's lease may have expired)
ACTIVE_DEBATE_STATUSES = (DebateStatus.PENDING, DebateStatus.RUNNING)


class TurnStatus(StrEnum):
    """turns.status, and the status of an agent's TurnResult."""

    OK = "ok"
    TRUNCATED = "truncated"  # cut at a word limit (choices and questions; speeches stay raw)
    FAILED = "failed"
    # an agent's answer only, never stored: the turn is a person's, still to come
    WAITING = "waiting"


class AssignmentStatus(StrEnum):
    """assignments.status: a judge's claimed debate, open until the final judgment."""

    OPEN = "open"
    SUBMITTED = "submitted"


class JudgmentKind(StrEnum):
    """judgments.kind."""

    FINAL = "final"  # after the whole transcript
    STEPPED = "stepped"  # after one round (after_round), while judging round by round
    OFFLINE = "offline"  # imported: a judge who read a finished transcript


class CampaignMode(StrEnum):
    """campaigns.mode: a judge reads the whole debate at once, or round by round."""

    WHOLE = "whole"
    STEPPED = "stepped"


class UserRole(StrEnum):
    """users.role: what a person may do in the web app (an admin may do everything)."""

    JUDGE = "judge"
    DEBATER = "debater"
    ADMIN = "admin"


# who may judge in a campaign (and see the Judge tab)
JUDGING_ROLES = (UserRole.JUDGE, UserRole.ADMIN)


class SeatRole(StrEnum):
    """seats.role and turns.role: who speaks in a debate."""

    A = "A"
    B = "B"
    CONSULTANT = "consultant"
    JUDGE = "judge"


# the seats a debater sits in (the judge's seat asks questions in interactive protocols)
SPEAKING_SEATS = (SeatRole.A, SeatRole.B, SeatRole.CONSULTANT)

# How a speaker is named to judges and debaters: never an agent's or a person's name.
SPEAKER_LABELS: dict[str, str] = {
    SeatRole.A: "Debater A",
    SeatRole.B: "Debater B",
    SeatRole.CONSULTANT: "Consultant",
    SeatRole.JUDGE: "Judge",
}
