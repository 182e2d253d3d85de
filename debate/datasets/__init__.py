"""Question sources by name. A config's `dataset:` entry is {"name": NAME, "path": ..., ...}.

Each loader takes its validated settings and returns a list of Question. Loaders register
themselves with `register_loader`; `load_questions` applies the common slice options
(shuffle with seed, offset, limit) after the loader's own filters.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from debate.errors import ConfigError
from debate.questions import Question, read_questions_jsonl, sample_questions
from debate.validation import describe_validation_error


class DatasetSettings(BaseModel):
    """Options every loader takes; loaders subclass this to add their own."""

    model_config = ConfigDict(extra="forbid")
    name: str
    path: str | None = None
    limit: int | None = None
    offset: int = 0
    shuffle: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Loader:
    name: str
    settings_model: type[DatasetSettings]
    load: Callable[[Any, Path], list[Question]]
    description: str


_LOADERS: dict[str, Loader] = {}
# Modules that register further loaders (imported lazily, on first listing or lookup).
_EXTRA_MODULES: list[str] = ["debate.datasets.sources"]
_extras_loaded = False


def register_loader(
    name: str,
    settings_model: type[DatasetSettings],
    load: Callable[[Any, Path], list[Question]],
    description: str,
) -> None:
    _LOADERS[name] = Loader(name, settings_model, load, description)


def _load_extras() -> None:
    global _extras_loaded
    if _extras_loaded:
        return
    _extras_loaded = True
    for mod in _EXTRA_MODULES:
        importlib.import_module(mod)


def loaders() -> dict[str, Loader]:
    _load_extras()
    return dict(sorted(_LOADERS.items()))


def get_loader(name: str, where: str = "dataset.name") -> Loader:
    known = loaders()
    if name not in known:
        raise ConfigError(f"{where}: unknown data set {name!r}; known: {', '.join(known)}")
    return known[name]


def validate_dataset_settings(cfg: dict[str, Any], where: str = "dataset") -> DatasetSettings:
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ConfigError(f"{where}.name: missing")
    loader = get_loader(str(cfg["name"]), f"{where}.name")
    try:
        return loader.settings_model.model_validate(cfg)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, loader.settings_model, where)) from None


def load_questions(settings: DatasetSettings, base_dir: Path = Path(".")) -> list[Question]:
    """Load, filter and slice. Raises DatasetError (file:line: field) or ConfigError."""
    loader = get_loader(settings.name)
    questions = loader.load(settings, base_dir)
    if settings.shuffle:
        questions = list(questions)
        random.Random(settings.seed).shuffle(questions)
    end = None if settings.limit is None else settings.offset + settings.limit
    return list(questions[settings.offset : end])


def resolve_path(path: str | None, base_dir: Path, where: str = "dataset.path") -> Path:
    if not path:
        raise ConfigError(f"{where}: missing")
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def _load_jsonl(settings: DatasetSettings, base_dir: Path) -> list[Question]:
    return read_questions_jsonl(resolve_path(settings.path, base_dir))


def _load_sample(settings: DatasetSettings, base_dir: Path) -> list[Question]:
    return sample_questions()


register_loader("jsonl", DatasetSettings, _load_jsonl, "the project's JSONL question format")
register_loader("sample", DatasetSettings, _load_sample, "the small data set bundled for demos")
