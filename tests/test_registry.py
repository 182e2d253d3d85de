"""The one plug-in mechanism (debate.registry) and the import rule it makes possible.

Every registry (agent types, data sets, backends, CLI commands, demo sections) resolves
each of its names to what that name says; listing names imports nothing; an unknown name
is one line listing the known ones; settings and backends do not import each other; and
no module of the packages, the tests or the benchmarks imports a first-party module inside
a function (the packages, and in tests/ and benchmarks/ also the helper modules and
scripts those folders import by name, like tiny_model or generation), except the CLI's
lazy command loading (debate/cli/) and the registry itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

import click
import pytest

from debate.agents.registry import AGENT_TYPES, AgentType, BuildContext, build_agent
from debate.backends.base import Backend
from debate.backends.settings import BACKENDS, BackendSettings
from debate.cli import COMMANDS, cli
from debate.datasets import LOADERS, Loader, get_loader
from debate.demo import SECTIONS, run_sections
from debate.errors import ConfigError, UserError
from debate.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("debate", "judges", "web", "migrations")
# Folders of scripts and helpers that import their own modules by name (pytest and the
# benchmarks put tests/ and benchmarks/ on sys.path): those names are first-party too.
SCRIPT_DIRS = ("tests", "benchmarks")
# The CLI's lazy command loading: a command module imports its heavy parts in the
# command's body, so `debate --help` (which loads every command module) stays quick.
LAZY_LOADING = ("debate/cli/", "debate/registry.py")


def test_names_are_listed_without_importing_and_resolved_on_first_use() -> None:
    reg: Registry[object] = Registry("widget", {"b": "no_such_module_xyz:thing",
                                                "a": "debate.registry:Registry"})
    assert reg.names() == ["b", "a"] and list(reg) == ["b", "a"] and len(reg) == 2
    assert "a" in reg and "c" not in reg
    assert reg.target("b", "w") == "no_such_module_xyz:thing"  # listed, never imported
    assert reg.get("a", "w") is Registry
    with pytest.raises(ModuleNotFoundError):
        reg.get("b", "w")


def test_an_unknown_name_is_one_line_naming_the_field_and_the_known_names() -> None:
    reg: Registry[object] = Registry("widget", {"b": "m:x", "a": "m:y"})
    for call in (reg.get, reg.target):
        with pytest.raises(ConfigError) as err:
            call("c", "thing.kind")
        assert str(err.value) == "thing.kind: unknown widget 'c'; known: b, a"
    assert isinstance(err.value, UserError)  # the CLI prints it on one line, exit 2


@pytest.mark.parametrize("target", ["module", "module:", ":attr", "m:not an attr", "m:a.b"])
def test_a_target_that_is_not_module_colon_attr_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="is not 'module:attr'"):
        Registry("widget", {"x": target})


def test_every_agent_type_resolves_to_its_own_type() -> None:
    assert AGENT_TYPES.names() == ["human", "model", "planted", "scripted"]
    for name, agent_type in AGENT_TYPES.load_all().items():
        assert isinstance(agent_type, AgentType) and agent_type.name == name


def test_an_unknown_agent_type_names_the_field_and_the_known_types(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_agent({"type": "wizard"}, "debater", BuildContext(tmp_path))
    assert str(err.value) == ("debater.type: unknown agent type 'wizard'; "
                              "known: human, model, planted, scripted")


def test_every_data_set_resolves_to_its_own_loader() -> None:
    assert LOADERS.names() == sorted(LOADERS.names())
    assert {"jsonl", "sample", "quality", "gpqa", "mmlu", "truthfulqa", "boolq", "arc",
            "nyu_stories", "planted"} == set(LOADERS.names())
    for name, loader in LOADERS.load_all().items():
        assert isinstance(loader, Loader) and loader.name == name and loader.description
    with pytest.raises(ConfigError, match=r"^dataset\.name: unknown data set 'qualty'; known: arc,"):
        get_loader("qualty")


def test_every_backend_resolves_and_the_settings_accept_exactly_those_names() -> None:
    (choices,) = [typing.get_args(BackendSettings.model_fields["backend"].annotation)]
    assert set(choices) == set(BACKENDS.names()) == {"transformers", "openai"}
    for cls in BACKENDS.load_all().values():
        assert issubclass(cls, Backend)


def test_every_command_resolves_to_a_click_command_of_its_name() -> None:
    for name, command in COMMANDS.load_all().items():
        assert isinstance(command, click.Command)
        assert cli.get_command(click.Context(cli), name) is command
    assert cli.get_command(click.Context(cli), "nope") is None


def test_the_demo_sections_are_in_order_and_each_is_a_section() -> None:
    assert SECTIONS.names() == ["scripted", "models", "pixels", "tournament"]
    for name, section in SECTIONS.load_all().items():
        assert callable(section), name


def test_an_unknown_demo_section_is_refused_before_any_section_runs() -> None:
    # the store and console are never touched: "scripted" would need them
    with pytest.raises(ConfigError, match=r"^--section: unknown demo section 'nope'; known: "):
        run_sections(None, None, ["scripted", "nope"], where="--section")  # type: ignore[arg-type]


def _imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=120)
    return set(out.stdout.split())


def test_settings_import_no_backend_and_listing_imports_no_plugin() -> None:
    mods = _imported_after(
        "from debate.backends.settings import BACKENDS, BackendSettings\n"
        "from debate.agents.registry import AGENT_TYPES\n"
        "from debate.datasets import LOADERS\n"
        "from debate.demo import SECTIONS\n"
        "from debate.cli import COMMANDS\n"
        "names = [AGENT_TYPES.names(), LOADERS.names(), BACKENDS.names(), SECTIONS.names(),\n"
        "         COMMANDS.names()]")
    lazy = {"debate.backends.transformers_backend", "debate.backends.openai_backend",
            "debate.agents.model", "debate.agents.scripted", "debate.datasets.quality",
            "debate.demo.scripted", "debate.demo.pixels", "debate.cli.run", "torch"}
    assert not lazy & mods, sorted(lazy & mods)
    assert not {m for m in mods if m.split(".")[0] in ("judges", "web")}


def test_the_backends_import_the_settings_but_not_each_other() -> None:
    for module in ("transformers_backend", "openai_backend"):
        mods = _imported_after(f"import debate.backends.{module}")
        other = {"transformers_backend", "openai_backend"} - {module}
        assert "debate.backends.settings" in mods
        assert f"debate.backends.{other.pop()}" not in mods


def _first_party(node: ast.AST, first_party: frozenset[str]) -> list[str]:
    """The first-party modules an import statement or import_module("...") call names
    ("<file>" for a module loaded from its path)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = ["." if node.level else node.module or ""]
    elif (isinstance(node, ast.Call)
          and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
          in ("import_module", "__import__")):
        arg = node.args[0] if node.args else None
        names = [arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                 else "<computed>"]
    elif (isinstance(node, ast.Call)
          and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
          in ("spec_from_file_location", "run_path")):
        names = ["<file>"]  # a module loaded from its path (a benchmark script, say)
    else:
        return []
    return [n for n in names
            if n in (".", "<computed>", "<file>") or n.split(".")[0] in first_party]


def function_level_imports(root: Path) -> list[str]:
    """`file:line: module` for each first-party import inside a function body, in the
    packages, the tests and the benchmarks (all but the lazy loading)."""
    local = {path.stem for folder in SCRIPT_DIRS for path in (root / folder).glob("*.py")}
    first_party = frozenset(FIRST_PARTY) | local
    found: set[tuple[str, int, str]] = set()
    for folder in FIRST_PARTY + SCRIPT_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(LAZY_LOADING):
                continue
            tree = ast.parse(path.read_text(), rel)
            for fn in ast.walk(tree):
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for node in ast.walk(fn):
                        found |= {(rel, node.lineno, m) for m in _first_party(node, first_party)}
    return [f"{rel}:{line}: {m}" for rel, line, m in sorted(found)]


def test_no_first_party_import_inside_a_function_outside_the_lazy_loading() -> None:
    found = function_level_imports(ROOT)
    assert not found, "first-party imports inside functions:\n" + "\n".join(found)


def test_the_import_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    pkg = tmp_path / "judges"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "import importlib\nimport os\n\n"
        "def f():\n    import json\n    from debate.store import db\n    return db\n\n"
        "def g(name):\n    return importlib.import_module(name)\n\n"
        "class C:\n    def m(self):\n        from . import sibling\n"
        "        return importlib.import_module('web.app')\n")
    assert function_level_imports(tmp_path) == [
        "judges/bad.py:6: debate.store", "judges/bad.py:10: <computed>",
        "judges/bad.py:14: .", "judges/bad.py:15: web.app"]


def test_the_import_check_covers_tests_and_benchmarks_and_exempts_only_the_lazy_loading(
        tmp_path: Path) -> None:
    files = {
        "tests/helper.py": "import json\n",
        "tests/test_x.py": ("import helper\n\n"
                            "def test_a():\n    import some_third_party\n"
                            "    from helper import build\n    return build\n\n"
                            "def load(util, path):\n"
                            "    return util.spec_from_file_location('b', path)\n"),
        "benchmarks/bench_util.py": "X = 1\n",
        "benchmarks/bench.py": ("import sys\n\n"
                                "def main():\n    from helper import build\n"
                                "    from bench_util import X\n    import debate.run\n"),
        "debate/cli/cmd.py": "def c():\n    from debate.run import run\n",
        "debate/registry.py": ("import importlib\n\n"
                               "def get(n):\n    return importlib.import_module(n)\n"),
        "debate/cli_helpers.py": "def c():\n    from debate.run import run\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert function_level_imports(tmp_path) == [
        "benchmarks/bench.py:4: helper", "benchmarks/bench.py:5: bench_util",
        "benchmarks/bench.py:6: debate.run", "debate/cli_helpers.py:2: debate.run",
        "tests/test_x.py:5: helper", "tests/test_x.py:9: <file>"]
