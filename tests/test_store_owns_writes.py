"""The store owns every write: no module outside debate/store/ writes rows itself.

The check reads the source of debate/, judges/ and web/ (outside debate/store/) with `ast`
and fails naming FILE:LINE for each of:

- a call of SQLAlchemy's insert / update / delete constructs (imported from sqlalchemy),
  or of a table's .insert() / .update() / .delete();
- an ORM row made outside the store (a mapped class of debate.store.models called);
- a session or connection's add / add_all / flush / merge / delete / bulk_* /
  exec_driver_sql, where the session is one the function opened (`with store.session()
  as s`, `with writing(store) as s`, `with engine.begin() as conn`, `.connection()`) or
  was handed (a parameter annotated Session or Connection);
- SQL text that writes (INSERT, UPDATE, DELETE, setval, DDL) passed to text() or
  exec_driver_sql;
- an attribute set on a row loaded through such a session (`row = s.get(...)`,
  `row = s.scalar(...)`, `for row in s.scalars(...)`) or returned by a function of the
  scanned code annotated to return a mapped class (`-> Assignment`); then
  `row.status = ...`.

The tests below first show the checker catches each shape, so it cannot pass by
finding nothing.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from debate.store.models import Base

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("debate", "judges", "web")
STORE = ROOT / "debate" / "store"

MODEL_NAMES = frozenset(m.class_.__name__ for m in Base.registry.mappers)
WRITE_CONSTRUCTS = frozenset({"insert", "update", "delete"})
SESSION_WRITES = frozenset({
    "add", "add_all", "flush", "merge", "delete", "bulk_save_objects",
    "bulk_insert_mappings", "bulk_update_mappings", "exec_driver_sql",
})
SESSION_OPENERS = frozenset({"session", "write_session", "begin", "connect", "writing", "Session"})
SESSION_TYPES = frozenset({"Session", "Connection", "AsyncSession"})
ROW_LOADERS = frozenset({"get", "scalar", "scalars", "get_one", "merge"})
WRITE_SQL = re.compile(
    r"\b(insert|update|delete|upsert|setval|create|drop|alter|truncate|replace)\b", re.I)


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _root_name(node: ast.expr) -> str | None:
    """The variable a chain like `s.scalars(...).first()` starts from."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            break
    return node.id if isinstance(node, ast.Name) else None


def _loaded_through(node: ast.expr, sessions: set[str]) -> bool:
    """True for `s.get(...)`, `s.scalar(...)`, `s.scalars(...).first()` and the like."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ROW_LOADERS and _root_name(node.func.value) in sessions:
            return True
        node = node.func.value
    return False


def _string_of(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values
                       if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return ""


def row_functions(tree: ast.Module) -> set[str]:
    """Functions annotated to return a mapped class (`def f(...) -> Assignment`)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            returned = ast.unparse(node.returns).strip("'\"").split(".")[-1]
            if returned in MODEL_NAMES:
                out.add(node.name)
    return out


class _Finder(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, row_functions: set[str]) -> None:
        self.row_functions = row_functions
        self.found: list[tuple[int, str]] = []
        self.constructs: set[str] = set()  # local names of sqlalchemy insert/update/delete
        self.models: set[str] = set()      # local names of mapped classes
        self.model_modules: set[str] = set()  # local names of debate.store.models
        self.sql_text: set[str] = {"text"}
        self.sqlalchemy_modules: set[str] = set()  # `import sqlalchemy as sa`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    if node.module.startswith("sqlalchemy") and alias.name in WRITE_CONSTRUCTS:
                        self.constructs.add(local)
                    if node.module == "debate.store.models" and alias.name in MODEL_NAMES:
                        self.models.add(local)
                    if node.module == "debate.store" and alias.name == "models":
                        self.model_modules.add(local)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "sqlalchemy":
                        self.sqlalchemy_modules.add(alias.asname or alias.name)
                    if alias.name == "debate.store.models" and alias.asname:
                        self.model_modules.add(alias.asname)
        self.sessions: list[set[str]] = [set()]
        self.rows: list[set[str]] = [set()]

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append((node.lineno, what))

    # --- scopes: sessions and loaded rows are tracked per function
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        sessions = set(self.sessions[-1])
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            ann = arg.annotation
            name = ann.value if isinstance(ann, ast.Constant) else ast.unparse(ann) if ann else ""
            if str(name).split(".")[-1].split("[")[0].strip() in SESSION_TYPES:
                sessions.add(arg.arg)
        self.sessions.append(sessions)
        self.rows.append(set(self.rows[-1]))
        self.generic_visit(node)
        self.sessions.pop()
        self.rows.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _opens_session(self, expr: ast.expr) -> bool:
        return isinstance(expr, ast.Call) and _call_name(expr.func) in SESSION_OPENERS

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            if self._opens_session(item.context_expr) and isinstance(item.optional_vars, ast.Name):
                self.sessions[-1].add(item.optional_vars.id)
        self.generic_visit(node)

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        if not isinstance(target, ast.Name):
            return
        if isinstance(value, ast.Call) and _call_name(value.func) == "connection" \
                and _root_name(value.func) in self.sessions[-1]:
            self.sessions[-1].add(target.id)
        if _loaded_through(value, self.sessions[-1]) or (
                isinstance(value, ast.Call) and _call_name(value.func) in self.row_functions):
            self.rows[-1].add(target.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._bind(target, node.value)
            self._check_row_attribute(target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)
            self._check_row_attribute(node.target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_row_attribute(node.target)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        if isinstance(node.target, ast.Name) and _loaded_through(node.iter, self.sessions[-1]):
            self.rows[-1].add(node.target.id)
        self.generic_visit(node)

    def _check_row_attribute(self, target: ast.expr) -> None:
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                and target.value.id in self.rows[-1]:
            self.flag(target, f"sets {target.value.id}.{target.attr} on a stored row")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.constructs:
            self.flag(node, f"sqlalchemy {func.id}()")
        if isinstance(func, ast.Name) and func.id in self.models:
            self.flag(node, f"makes a {func.id} row")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in self.model_modules and func.attr in MODEL_NAMES:
            self.flag(node, f"makes a {func.attr} row")
        if isinstance(func, ast.Attribute):
            if func.attr in WRITE_CONSTRUCTS and isinstance(func.value, ast.Attribute) \
                    and func.value.attr == "__table__":
                self.flag(node, f"__table__.{func.attr}()")
            if func.attr in WRITE_CONSTRUCTS and isinstance(func.value, ast.Name) \
                    and func.value.id in self.sqlalchemy_modules:
                self.flag(node, f"sqlalchemy {func.attr}()")
            if func.attr in SESSION_WRITES and _root_name(func.value) in self.sessions[-1]:
                self.flag(node, f"{_root_name(func.value)}.{func.attr}()")
        name = _call_name(func)
        if name in self.sql_text | {"exec_driver_sql"} and node.args:
            sql = _string_of(node.args[0])
            if WRITE_SQL.search(sql):
                self.flag(node, f"SQL that writes: {sql[:40]!r}")
        self.generic_visit(node)


def writes_in(source: str, row_returning: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, what) for every write the checker finds in one module's source;
    `row_returning`: functions elsewhere that return a stored row."""
    tree = ast.parse(source)
    finder = _Finder(tree, row_functions(tree) | row_returning)
    finder.visit(tree)
    return sorted(finder.found)


def scanned_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if STORE not in path.parents:
                files.append(path)
    return files


def test_no_module_outside_the_store_writes():
    sources = {path: path.read_text(encoding="utf-8") for path in scanned_files()}
    returning = frozenset().union(*(row_functions(ast.parse(s)) for s in sources.values()))
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path, source in sources.items()
        for line, what in writes_in(source, returning)
    ]
    assert not found, ("rows written outside debate/store/ (move each write into a named "
                       "store function):\n" + "\n".join(found))


def test_the_store_imports_no_feature_above_it():
    """debate/store/ loads without judges, web, the engine or any model library."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import debate.store
        for m in pkgutil.iter_modules(debate.store.__path__):
            importlib.import_module("debate.store." + m.name)
        above = ("judges", "web", "torch", "transformers", "gradio", "debate.backends",
                 "debate.engine", "debate.cli")
        print(sorted(k for k in sys.modules if k in above or k.startswith(
            tuple(a + "." for a in above))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_scan_covers_the_feature_modules():
    files = {str(p.relative_to(ROOT)) for p in scanned_files()}
    for expected in ("debate/accounts.py", "judges/queue/claiming.py", "web/app.py",
                     "debate/importers/nyu.py", "debate/pixels/store.py"):
        assert expected in files
    assert not any(f.startswith("debate/store/") for f in files)


# ---------------------------------------------------------------- the checker catches


def _lines(source: str) -> list[int]:
    return [line for line, _ in writes_in(textwrap.dedent(source))]


def test_checker_finds_sqlalchemy_write_constructs():
    assert _lines("""
        from sqlalchemy import delete, insert as ins, select, update
        def f(store):
            with store.session() as s:
                s.execute(ins(T), rows)
                s.execute(update(T).values(a=1))
                s.execute(delete(T))
                s.execute(select(T))
                T.__table__.insert()
        import sqlalchemy as sa
        sa.update(T)
    """) == [5, 6, 7, 9, 11]


def test_checker_finds_session_writes_and_new_rows():
    assert _lines("""
        from sqlalchemy.orm import Session
        from debate.store.models import User, Campaign
        from debate.store import models
        def f(store, seen: set):
            with writing(store) as own:
                own.add(User(name="x"))
                own.flush()
            seen.add(1)
        def g(session: "Session"):
            session.add_all([])
            session.merge(x)
            session.delete(x)
            row = models.Campaign(name="c")
        def h(engine):
            with engine.begin() as conn:
                conn.exec_driver_sql("SELECT 1")
    """) == [7, 7, 8, 11, 12, 13, 14, 17]


def test_checker_finds_writing_sql_text_and_row_attributes():
    assert _lines("""
        from sqlalchemy import text
        def f(store):
            with store.session() as s:
                s.execute(text(f"SELECT setval('x', 1)"))
                s.execute(text("SELECT 1"))
                row = s.get(User, 1)
                row.disabled = True
                first = s.scalars(q).first()
                first.count += 1
                for r in s.scalars(q):
                    r.status = "done"
                info = make_info()
                info.name = "fine: not a stored row"
        def owned(session) -> "Assignment":
            return session.get(Assignment, 1)
        def g(store):
            with store.session() as s:
                a = owned(s)
                a.rounds_shown += 1
    """) == [5, 8, 10, 12, 20]
