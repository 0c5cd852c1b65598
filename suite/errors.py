"""One error type for bad user input across the suite: printed as one line, exit code 2.

`parse` is the single door from untyped input (JSON, CLI strings, dicts) into the typed schema:
any pydantic ValidationError becomes one line naming the parameter path and what is allowed.
"""
from __future__ import annotations

from typing import TypeVar

import pydantic

from baselines import ModelConfigError
from tasks import TaskConfigError


class ConfigError(ValueError):
    """A suite parameter is unknown or impossible; the message is one line naming it."""


#: every error that means "the input is wrong", wherever it was raised
INPUT_ERRORS = (ConfigError, TaskConfigError, ModelConfigError)

M = TypeVar("M", bound=pydantic.BaseModel)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "constrained-")):
            out += f".{part}" if out else part
    return out


def one_line(err: pydantic.ValidationError, where: str = "") -> str:
    """The first error of a validation as 'path: what is wrong (got value)'."""
    e = err.errors(include_url=False)[0]
    path = _path(tuple(e.get("loc", ())))
    name = ".".join(p for p in (where, path) if p) or "input"
    msg = e.get("msg", "invalid").removeprefix("Value error, ")
    if e.get("type") == "extra_forbidden":
        allowed = getattr(err, "_allowed", None)
        msg = "unknown key" + (f"; allowed: {allowed}" if allowed else "")
    elif e.get("type") == "missing":
        msg = "missing (required)"
    got = e.get("input")
    text = f"{name}: {msg}"
    if e.get("type") not in ("missing",) and not isinstance(got, (dict, list)) and "got" not in msg:
        text += f" (got {got!r})"
    more = err.error_count() - 1
    if more:
        text += f" [+{more} more]"
    return " ".join(text.split())


def parse(model: type[M], data, where: str = "") -> M:
    """Validate untyped data into `model`, or raise ConfigError with one line."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        e._allowed = ", ".join(sorted(_field_names(model, e)))
        raise ConfigError(one_line(e, where)) from None


def _field_names(model: type[pydantic.BaseModel], err: pydantic.ValidationError) -> list[str]:
    """The keys allowed where the first error sits (for 'unknown key; allowed: ...')."""
    loc = err.errors(include_url=False)[0].get("loc", ())
    cls = model
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        field = cls.model_fields.get(part) if hasattr(cls, "model_fields") else None
        cls = _inner_model(field.annotation) if field else None
    return list(cls.model_fields) if cls is not None and hasattr(cls, "model_fields") else []


def _inner_model(annotation):
    import typing
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
