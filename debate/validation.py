"""One way to turn a pydantic ValidationError into the one line a user reads: `field: problem`.

Every config reader (experiments, tournaments, judges, data sets, agents, DPO settings, the
training loop) reports its first invalid field through `describe_validation_error`, so the
wording is the same everywhere: `protocol.round: unknown field (known: name, rounds, ...)`,
`dataset.path: missing`, `seed: Input should be a valid integer`.
"""

from __future__ import annotations

import types
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from debate.errors import ConfigError


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (`M`, `M | None`, `list[M]`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, tuple, dict):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose fields live at `loc` inside `model` (None when it cannot be told)."""
    for part in loc:
        if model is None:
            return None
        if not isinstance(part, str):  # a list index or dict key: stay on the item model
            continue
        field = model.model_fields.get(part)
        models = _models_in(field.annotation) if field is not None else []
        model = models[0] if len(models) == 1 else None
    return model


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None,
                              where: str = "", *, option: bool = False) -> str:
    """The first error of `exc` as `field: problem`.

    `where` prefixes the field path (`dataset`, `judges.0`); `model` (the validated class)
    lets an unknown field list the fields known at its place. A model-level check has no
    field of its own and names it in its message, which is returned as it is. `option`:
    the model was filled from command-line options, so a field is named as its option
    (`min_margin` -> `--min-margin`)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    field = ".".join(p for p in (where, loc) if p)
    if option and field:
        field = "--" + field.replace("_", "-")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, tuple(err["loc"][:-1]))
        msg = "unknown field" + (f" (known: {', '.join(parent.model_fields)})" if parent else "")
    elif err["type"] == "missing":
        msg = "missing"
    elif loc and msg.startswith(f"{loc}: "):  # a field check that named its field again
        msg = msg[len(loc) + 2:]
    return f"{field}: {msg}" if field else msg


M = TypeVar("M", bound=BaseModel)


def validate_mapping(model: type[M], data: Any, source: str,
                     expected: str = "a mapping at the top level") -> M:
    """`data` validated as `model`, or a ConfigError naming `source` and the first bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected {expected}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, model)}") from None
