"""Question sources by name. A config's `dataset:` entry is {"name": NAME, "path": ..., ...}.

Each loader takes its validated settings and returns a list of Question. `LOADERS` (a
`debate.registry.Registry`) names each data set's `Loader` as "module:LOADER"; a loader's
module is imported only when its data set is named (or all are listed). `load_questions`
applies the common slice options (shuffle with seed, offset, limit) after the loader's own
filters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from debate.errors import ConfigError
from debate.questions import Question, read_questions_jsonl, sample_questions
from debate.registry import Registry
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


LOADERS: Registry[Loader] = Registry("data set", {
    "arc": "debate.datasets.arc:LOADER",
    "boolq": "debate.datasets.boolq:LOADER",
    "gpqa": "debate.datasets.gpqa:LOADER",
    "jsonl": "debate.datasets:JSONL",
    "mmlu": "debate.datasets.mmlu:LOADER",
    "nyu_stories": "debate.datasets.nyu_stories:LOADER",
    "planted": "debate.datasets.planted:LOADER",
    "quality": "debate.datasets.quality:LOADER",
    "sample": "debate.datasets:SAMPLE",
    "truthfulqa": "debate.datasets.truthfulqa:LOADER",
})


def loaders() -> dict[str, Loader]:
    """Every loader by name (imports every loader's module)."""
    return LOADERS.load_all()


def get_loader(name: str, where: str = "dataset.name") -> Loader:
    return LOADERS.get(name, where)


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


JSONL = Loader("jsonl", DatasetSettings, _load_jsonl, "the project's JSONL question format")
SAMPLE = Loader("sample", DatasetSettings, _load_sample, "the small data set bundled for demos")
