"""Plug-ins by name: the one lazy registry behind agent types, data sets, backends, CLI
commands and demo sections.

A `Registry` maps a name to a "module:attr" string. Listing or checking names imports
nothing; `get` imports the module on first use and returns the attribute (Python caches
the module, so later lookups are a dictionary read). This is the project's one lazy-loading
mechanism, and the reason a function-level first-party import is never needed:

- `debate list` does not pay for torch, gradio or the data-set loaders it does not use;
- `backends/settings.py` names the transformers and OpenAI backends without importing them,
  while both backends import the settings (no import cycle);
- the demo's sections are listed in one place, in order, even the ones that live above
  `debate` (`judges.demo_tournament:run`): their strings are resolved only when the
  `debate demo` command runs them, so no module of `debate` imports `judges`.

An unknown name is a ConfigError of one line that names the field and lists the known
names: `debater.type: unknown agent type 'x'; known: human, model, planted, scripted`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from debate.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> "module:attr" strings, in the order given; `kind` names what is registered
    ("agent type", "data set", ...) in error messages."""

    def __init__(self, kind: str, entries: Mapping[str, str]) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        for name, target in entries.items():
            self.add(name, target)

    def add(self, name: str, target: str) -> None:
        """Register (or replace) `name` as "module:attr"; nothing is imported."""
        module, sep, attr = target.partition(":")
        if not module or not sep or not attr.isidentifier():
            raise ValueError(f"{self.kind} {name!r}: target {target!r} is not 'module:attr'")
        self._targets[name] = target

    def names(self) -> list[str]:
        """The registered names, in registration order (imports nothing)."""
        return list(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._targets)

    def unknown(self, name: object, where: str) -> ConfigError:
        """The one-line error for a name that is not registered."""
        return ConfigError(f"{where}: unknown {self.kind} {name!r}; "
                           f"known: {', '.join(self._targets)}")

    def target(self, name: str, where: str) -> str:
        """The "module:attr" string of `name` (imports nothing); unknown: ConfigError."""
        if name not in self._targets:
            raise self.unknown(name, where)
        return self._targets[name]

    def get(self, name: str, where: str) -> T:
        """The object registered as `name`, its module imported on first use."""
        module, _, attr = self.target(name, where).partition(":")
        return getattr(importlib.import_module(module), attr)

    def load_all(self) -> dict[str, T]:
        """Every registered object by name, in order (imports every module)."""
        return {name: self.get(name, self.kind) for name in self._targets}

