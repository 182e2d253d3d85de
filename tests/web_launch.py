"""Test helper (no tests here): the Gradio app launched on a free local port, for the
tests that drive it (kept apart from web_world so that building a world needs no Gradio)."""

from __future__ import annotations

from dataclasses import dataclass

from web_world import free_port

from debate.store.db import Store
from web.app import launch_app


@dataclass
class Launched:
    url: str
    demo: object

    def close(self) -> None:
        self.demo.close()


def launch(store: Store) -> Launched:
    demo, url = launch_app(store, "127.0.0.1", free_port(), block=False, quiet=True)
    return Launched(url.rstrip("/") + "/", demo)
