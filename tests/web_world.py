"""Helpers for the web, queue and user tests (no tests here): a small judged-experiment
world in a real database, and the app launched on a free local port."""

from __future__ import annotations

import json
import os
import socket
from functools import lru_cache
from pathlib import Path

from debate.config import parse_config
from debate.run import run_experiment
from debate.store.db import Store
from debate.store.models import User
from debate.users import check_name, check_role, hash_password

PASSWORD = "correct horse battery"
HONEST_NAME = "SECRETMODEL-honest-7b"
LIAR_NAME = "SECRETMODEL-liar-7b"
# Debater text that would run if rendered as HTML or markdown: each sets window.__pwned.
XSS = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    "![img](javascript:window.__pwned=3) [click](javascript:window.__pwned=4) "
    '<a href="javascript:window.__pwned=5">a</a> <svg onload="window.__pwned=6"></svg> '
    '<span class="quote-verified" title="verified quote">&#10003;&nbsp;FORGED-VERIFIED</span> '
    "<quote>words that are not in the source FORGEDQUOTE</quote>"
)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("DEBATE_ARTIFACTS") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_questions(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "id": f"q{i}",
                "question": f"Question {i}: what colour was boat number {i}?",
                "answers": [f"Red boat {i}", f"Blue boat {i}"],
                "correct_index": i % 2,
                "source": f"Boat number {i} was painted {'red' if i % 2 == 0 else 'blue'} "
                          f"by the old fisherman in the spring of year {1900 + i}. "
                          "It sailed every morning and came home every night.",
                "source_title": f"Story {i}",
            }) + "\n")
    return path


def run_scripted(store: Store, tmp: Path, name: str, n_questions: int = 6,
                 protocol: str = "debate", rounds: int = 2, xss: bool = False,
                 both_orders: bool = True, honest: dict | None = None,
                 deceptive: dict | None = None) -> None:
    data = write_questions(tmp / f"{name}.jsonl", n_questions)
    liar_template = (
        "Round {round}: it is \"{answer}\". " + (XSS.replace("{", "{{").replace("}", "}}")
                                                  if xss else "Trust me.")
    )
    cfg = parse_config({
        "name": name,
        "dataset": {"name": "jsonl", "path": str(data)},
        "protocol": {"name": protocol, "rounds": rounds},
        "both_orders": both_orders,
        "honest_debater": honest or {"type": "scripted", "name": HONEST_NAME},
        "deceptive_debater": deceptive or {"type": "scripted", "name": LIAR_NAME,
                                           "template": liar_template},
    })
    run_experiment(store, cfg, tmp, show_progress=False)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)


def add_accounts(store: Store, *names_roles: tuple[str, str]) -> None:
    """Accounts with PASSWORD (hashed once: argon2 is slow on purpose)."""
    with store.session() as session:
        for name, role in names_roles:
            session.add(User(name=check_name(name), role=check_role(role),
                             password_hash=_password_hash()))


class RawSession:
    """A logged-in HTTP session that calls app events the way the browser does and keeps
    every byte the server sent back, for leak checks."""

    def __init__(self, url: str, user: str | None, password: str = PASSWORD):
        import httpx

        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60)
        self.received: list[str] = []
        if user is not None:
            r = self.http.post("login", data={"username": user, "password": password})
            r.raise_for_status()
        self.session_hash = os.urandom(6).hex()

    def get(self, path: str) -> str:
        r = self.http.get(path)
        r.raise_for_status()
        self.received.append(r.text)
        return r.text

    def config(self) -> dict:
        return json.loads(self.get("config"))

    def fn_index(self, api_name: str) -> int:
        for dep in self.config()["dependencies"]:
            if dep.get("api_name") == api_name:
                return dep["id"]
        raise KeyError(api_name)

    def load_fn_indices(self) -> list[int]:
        return [d["id"] for d in self.config()["dependencies"]
                if any(t[1] == "load" for t in d["targets"])]

    def call(self, fn_index: int, data: list) -> dict:
        """Run one event; returns the process_completed message (all messages are kept)."""
        r = self.http.post("gradio_api/queue/join", json={
            "data": data, "event_data": None, "fn_index": fn_index, "trigger_id": None,
            "session_hash": self.session_hash})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        with self.http.stream("GET", "gradio_api/queue/data",
                              params={"session_hash": self.session_hash}) as resp:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                self.received.append(line)
                msg = json.loads(line[5:])
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    return msg
        raise AssertionError("the event stream ended without a result")

    def all_text(self) -> str:
        return "\n".join(self.received)


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def login(page, url: str, user: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.get_by_text(f"Logged in as {user}").wait_for(timeout=30_000)
