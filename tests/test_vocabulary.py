"""One source of truth for the stored vocabularies, the clock and the error formatter.

The enums' values are what every existing store holds, so they are pinned here; a StrEnum
member must behave as that string wherever it goes (SQL, JSON, f-strings, dict keys), which
is why the schema did not change; and the code must name the member, not the string: an
`ast` scan finds a bare vocabulary literal compared with, assigned to or passed as a
status, role, kind or mode.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from debate import vocabulary
from debate.store.models import (
    Assignment,
    Campaign,
    Debate,
    Experiment,
    Judgment,
    Turn,
    as_utc,
    utcnow,
)
from debate.store.models import Question as QuestionRow
from debate.users import ROLES
from debate.vocabulary import (
    SPEAKER_LABELS,
    AssignmentStatus,
    CampaignMode,
    DebateStatus,
    JudgmentKind,
    SeatRole,
    TurnStatus,
    UserRole,
)
from judges.queue import MODES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("debate", "judges", "web")
VOCABULARY_FILE = Path("debate/vocabulary.py")

STATUS_WORDS = {s.value for e in (DebateStatus, TurnStatus, AssignmentStatus) for s in e}
# what a bare string may not be where a value of this name is compared, assigned or passed
VOCABULARY_OF = {
    "status": STATUS_WORDS,
    "role": {r.value for e in (SeatRole, UserRole) for r in e},
    "kind": {k.value for k in JudgmentKind},
    "mode": {m.value for m in CampaignMode},
}
# the same words in someone else's vocabulary (file, word): why each is not ours
FOREIGN = {
    ("debate/importers/nyu_rooms.py", "stepped"): "the NYU rooms' own offline-judging mode",
}


def test_values_are_the_stored_strings():
    """Renaming a value would orphan every row that holds the old one."""
    assert [s.value for s in DebateStatus] == ["pending", "running", "waiting_human", "done",
                                               "failed"]
    assert [s.value for s in TurnStatus] == ["ok", "truncated", "failed", "waiting"]
    assert [s.value for s in AssignmentStatus] == ["open", "submitted"]
    assert [k.value for k in JudgmentKind] == ["final", "stepped", "offline"]
    assert [m.value for m in CampaignMode] == ["whole", "stepped"]
    assert [r.value for r in UserRole] == ["judge", "debater", "admin"]
    assert [r.value for r in SeatRole] == ["A", "B", "consultant", "judge"]
    assert SPEAKER_LABELS == {"A": "Debater A", "B": "Debater B", "consultant": "Consultant",
                              "judge": "Judge"}
    assert set(vocabulary.ACTIVE_DEBATE_STATUSES) == {"pending", "running"}
    assert set(vocabulary.JUDGING_ROLES) == {"judge", "admin"}
    assert vocabulary.SPEAKING_SEATS == ("A", "B", "consultant")


def test_choices_shown_to_people_are_plain_strings():
    """click and gradio list these: a member there would show as its name in some versions."""
    for choices in (ROLES, MODES):
        assert choices and all(type(c) is str for c in choices)
    assert ROLES == ("judge", "debater", "admin") and MODES == ("whole", "stepped")


def test_a_member_is_its_string_everywhere():
    done = DebateStatus.DONE
    assert done == "done" and hash(done) == hash("done") and {"done": 1}[done] == 1
    assert f"{done}" == str(done) == "done" and f"{done}" == "done"
    assert json.dumps({done: [SeatRole.A, JudgmentKind.FINAL]}) == '{"done": ["A", "final"]}'
    assert "\x00".join([SeatRole.CONSULTANT, "x"]) == "consultant\x00x"
    assert f"Debater {SeatRole.B}" == "Debater B"


def test_members_are_stored_and_read_back_as_the_plain_strings(store):
    with store.write_session() as s:
        exp = Experiment(name="vocab", protocol="debate", config={}, config_hash="h")
        s.add(exp)
        s.flush()
        q = QuestionRow(experiment_id=exp.id, external_id="q", dataset="t", text="?",
                        answers=["a", "b"], correct_index=0)
        s.add(q)
        s.flush()
        d = Debate(experiment_id=exp.id, question_id=q.id, protocol="debate",
                   protocol_spec={"roles": [SeatRole.A, SeatRole.B]}, variant="v",
                   answer_order=[0, 1], seed=0)
        s.add(d)
        s.flush()
        s.add(Turn(debate_id=d.id, step=0, round=1, role=SeatRole.A, text="t"))
        s.add(Judgment(debate_id=d.id, shown_order=[0, 1], probabilities=[0.5, 0.5]))
        s.flush()
        debate_id = d.id
    with store.session() as s:
        raw = s.execute(text("SELECT status FROM debates WHERE id = :i"), {"i": debate_id}).scalar()
        assert raw == "pending" and type(raw) is str  # the column default is the member
        assert s.execute(text("SELECT status, role FROM turns")).one() == ("ok", "A")
        assert s.execute(text("SELECT kind FROM judgments")).scalar() == "final"
        row = s.get(Debate, debate_id)
        assert row.protocol_spec == {"roles": ["A", "B"]}
    with store.write_session() as s:
        s.get(Debate, debate_id).status = DebateStatus.DONE
    with store.session() as s:
        found = s.scalars(select(Debate.id).where(Debate.status == DebateStatus.DONE)).all()
        assert found == [debate_id]
        assert s.execute(text("SELECT status FROM debates")).scalar() == "done"


def test_column_defaults_are_the_vocabulary():
    defaults = {col: col.default.arg for col in (Debate.__table__.c.status,
                                                 Turn.__table__.c.status,
                                                 Assignment.__table__.c.status,
                                                 Judgment.__table__.c.kind,
                                                 Campaign.__table__.c.mode)}
    assert list(defaults.values()) == [DebateStatus.PENDING, TurnStatus.OK,
                                       AssignmentStatus.OPEN, JudgmentKind.FINAL,
                                       CampaignMode.WHOLE]


def _sources() -> list[tuple[Path, ast.Module]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel != VOCABULARY_FILE:
                out.append((rel, ast.parse(path.read_text(), str(rel))))
    return out


def _named(node: ast.AST) -> str | None:
    """`status` for `status`, `x.status`, `row["status"]`; else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value if isinstance(node.slice.value, str) else None
    return None


def _words(node: ast.AST) -> list[str]:
    """The string constants of a literal, a literal tuple/list/set, or a conditional of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [w for e in node.elts for w in _words(e)]
    if isinstance(node, ast.IfExp):
        return _words(node.body) + _words(node.orelse)
    return []


def bare_vocabulary(tree: ast.Module) -> list[tuple[int, str, str]]:
    """(line, name, word) for each bare vocabulary word used as a status/role/kind/mode."""
    found = []

    def check(name: str | None, value: ast.AST, line: int) -> None:
        words = VOCABULARY_OF.get(name or "")
        if words:
            found.extend((line, name, w) for w in _words(value) if w in words)

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for a in operands:
                for b in operands:
                    if a is not b:
                        check(_named(a), b, node.lineno)
        elif isinstance(node, ast.keyword):
            check(node.arg, node.value, node.value.lineno)
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant):
                    check(k.value if isinstance(k.value, str) else None, v, v.lineno)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None:
                for t in targets:
                    check(_named(t), node.value, node.lineno)
    return sorted(found)


def test_the_scan_finds_what_it_looks_for():
    """The guard below can fail: each shape it is meant to catch is caught."""
    caught = bare_vocabulary(ast.parse(
        'a = d.status == "done"\n'
        'b = row["role"] in ("judge", "admin")\n'
        'f(status="pending")\n'
        'x = {"status": "ok"}\n'
        'd.status = "failed"\n'
        'kind = "final" if z else "stepped"\n'
        'y = campaign.mode != "whole"\n'
        'fine = d.kind == "speech" and status == DebateStatus.DONE and s == "done"\n'))
    assert [(line, w) for line, _, w in caught] == [
        (1, "done"), (2, "admin"), (2, "judge"), (3, "pending"), (4, "ok"), (5, "failed"),
        (6, "final"), (6, "stepped"), (7, "whole")]


def test_no_bare_vocabulary_literal_outside_the_vocabulary_module():
    offenders = [
        f"{rel}:{line}: {name} {word!r}"
        for rel, tree in _sources()
        for line, name, word in bare_vocabulary(tree)
        if (rel.as_posix(), word) not in FOREIGN
    ]
    assert offenders == [], "use the debate.vocabulary member:\n" + "\n".join(offenders)


def test_speaker_labels_are_defined_once():
    offenders = [f"{rel}:{node.lineno}" for rel, tree in _sources() for node in ast.walk(tree)
                 if isinstance(node, ast.Dict)
                 and any(isinstance(v, ast.Constant) and v.value == "Debater A"
                         for v in node.values)]
    assert offenders == []


def _functions_named(name: str) -> list[str]:
    return [f"{rel}:{node.lineno}" for rel, tree in _sources() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name == name]


def test_one_clock_and_one_utc_reader():
    for name in ("utcnow", "as_utc"):
        where = {place.split(":")[0] for place in _functions_named(name)}  # overloads: one file
        assert where == {"debate/store/models.py"}, where
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    naive = datetime(2026, 1, 2, 3, 4, 5)  # SQLite hands stored timestamps back naive
    assert as_utc(naive) == naive.replace(tzinfo=UTC) and as_utc(None) is None
    aware = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert as_utc(aware) is aware


@pytest.mark.parametrize("package", PACKAGES)
def test_pydantic_errors_are_formatted_in_one_place(package):
    """Only debate.validation reads a ValidationError's errors(); everyone else asks it."""
    offenders = [f"{rel}:{node.lineno}" for rel, tree in _sources()
                 if rel.parts[0] == package and rel != Path("debate/validation.py")
                 for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and node.func.attr == "errors" and not node.args]
    assert offenders == []
