"""Shared fixtures: real SQLite files and a real PostgreSQL server.

PostgreSQL tests use the server named by DEBATE_TEST_PG_URL (an admin URL; .ci/run starts
one). Each test gets a fresh database on it. Without the variable those tests are skipped
with a reason, except under CI (CI=true), where a missing server is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tiny_model import build_tiny_model
from web_world import ARGS, CHROMIUM

from debate.demo.scripted import run as run_scripted_demo
from debate.pixels.data import digits_split
from debate.pixels.judge import TrainSettings, save_judge, train_judge
from debate.store import open_store

PG_ENV = "DEBATE_TEST_PG_URL"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NYU_SAMPLE = SHARED / "data" / "nyu-debate-2023-sample"


def pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI") == "true":
        raise RuntimeError(f"{PG_ENV} is not set under CI; .ci/run must start PostgreSQL")
    return url


def make_pg_database() -> tuple[str, callable]:
    admin = pg_admin_url()
    if not admin:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (an admin URL; .ci/run starts a server)")
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return url, drop


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def pg_url():
    url, drop = make_pg_database()
    yield url
    drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path):
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url, drop = make_pg_database()
        yield url
        drop()


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def sqlite_store(sqlite_url):
    s = open_store(sqlite_url)
    yield s
    s.dispose()


@pytest.fixture
def nyu_sample() -> Path:
    if not (NYU_SAMPLE / "debates").is_dir():
        pytest.skip(f"the shared NYU sample is not present at {NYU_SAMPLE}")
    return NYU_SAMPLE


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-weight model + trained tokenizer with a chat template, saved with
    save_pretrained (built offline once per session; see tests/tiny_model.py)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def pixel_judges(tmp_path_factory) -> dict[int, Path]:
    """Small sparse judges for k = 2 and k = 4 on the digits (trained in seconds), by k."""
    import torch

    torch.set_num_threads(1)
    train, test = digits_split()
    out = tmp_path_factory.mktemp("pixel-judges")
    paths = {}
    for k in (2, 4):
        judge, metrics = train_judge(
            train, test, TrainSettings(k=k, hidden=32, steps=300, batch=128, eval_masks=2)
        )
        paths[k] = save_judge(judge, metrics, out / f"judge-k{k}.pt", train.shape)
    return paths


@pytest.fixture
def demo_store(store):
    """The `store` fixture (SQLite, then PostgreSQL) after the demo's scripted section ran
    on it: four experiments on the bundled sample data set."""
    import io

    from rich.console import Console

    run_scripted_demo(store, Console(file=io.StringIO(), width=120))
    return store


START_PG = Path(__file__).resolve().parents[1] / ".ci" / "start-postgres"


class OwnPostgres:
    """A PostgreSQL server of the test's own (.ci/start-postgres), which it may stop and
    start again on the same port."""

    def __init__(self) -> None:
        out = subprocess.run([str(START_PG)], capture_output=True, text=True, check=True,
                             timeout=120).stdout
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.dir, self.url = fields["DIR"], fields["URL"]

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([str(START_PG), "stop", self.dir, mode], check=True, timeout=120)

    def start(self) -> None:
        subprocess.run([str(START_PG), "start", self.dir], check=True, timeout=120)

    def close(self) -> None:
        subprocess.run([str(START_PG), "stop", self.dir, "immediate"], check=False,
                       capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_pg():
    """A fresh PostgreSQL server for this test alone (tests that restart the server)."""
    if shutil.which("pg_ctl") is None or shutil.which("initdb") is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("pg_ctl/initdb are not on PATH under CI")
        pytest.skip("restarting PostgreSQL needs pg_ctl and initdb on PATH")
    server = OwnPostgres()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()
