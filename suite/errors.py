"""One error type for bad user input across the suite: printed as one line, exit code 2.

`parse` is the single door from untyped input (JSON, CLI strings, dicts) into the typed schema:
any pydantic ValidationError becomes one line naming the parameter path and what is allowed.
"""
from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from baselines import ModelConfigError
from tasks import TaskConfigError


class ConfigError(ValueError):
    """A suite parameter is unknown or impossible; the message is one line naming it."""


#: every error that means "the input is wrong", wherever it was raised
INPUT_ERRORS = (ConfigError, TaskConfigError, ModelConfigError, pydantic.ValidationError)


def message(err: Exception) -> str:
    """The one line printed for any input error."""
    return one_line(err) if isinstance(err, pydantic.ValidationError) else " ".join(str(err).split())

M = TypeVar("M", bound=pydantic.BaseModel)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "constrained-")):
            out += f".{part}" if out else part
    return out


def one_line(err: pydantic.ValidationError, where: str = "", model=None) -> str:
    """The first error of a validation as 'path: what is wrong (got value)'."""
    e = err.errors(include_url=False)[0]
    allowed = ", ".join(sorted(_field_names(model, err))) if model is not None else ""
    path = _path(tuple(e.get("loc", ())))
    msg = e.get("msg", "invalid").removeprefix("Value error, ")
    if not path and e.get("type") == "value_error" and ": " in msg:   # a cross-field rule names its key
        path, msg = msg.split(": ", 1)
    name = ".".join(p for p in (where, path) if p) or "input"
    if e.get("type") in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key" + (f"; allowed: {allowed}" if allowed else "")
    elif e.get("type") == "missing":
        msg = "missing (required)"
    got = e.get("input")
    text = f"{name}: {msg}"
    if e.get("type") not in ("missing", "value_error") and not isinstance(got, (dict, list)) and "got" not in msg:
        text += f" (got {got!r})"
    more = err.error_count() - 1
    if more:
        text += f" [+{more} more]"
    return " ".join(text.split())


def parse(model: type[M], data, where: str = "", strict: bool | None = None) -> M:
    """Validate untyped data into `model` (a pydantic model, dataclass or type), or raise
    ConfigError with one line. `strict` overrides the model's own setting (a bare type is lax)."""
    try:
        return pydantic.TypeAdapter(model).validate_python(data, strict=strict)
    except pydantic.ValidationError as e:
        raise ConfigError(one_line(e, where, model)) from None


def build(cls, where: str = "", **kwargs) -> Any:
    """Construct a validated dataclass from keyword arguments; errors as one ConfigError line."""
    try:
        return cls(**kwargs)
    except pydantic.ValidationError as e:
        raise ConfigError(one_line(e, where, cls)) from None


def _field_names(model: type[pydantic.BaseModel], err: pydantic.ValidationError) -> list[str]:
    """The keys allowed where the first error sits (for 'unknown key; allowed: ...')."""
    loc = err.errors(include_url=False)[0].get("loc", ())
    cls = model
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        field = _fields(cls).get(part)
        cls = _inner_model(field.annotation) if field else None
    return list(_fields(cls)) if cls is not None else []


def _fields(cls) -> dict:
    """Fields of a pydantic model or pydantic dataclass."""
    return getattr(cls, "model_fields", None) or getattr(cls, "__pydantic_fields__", None) or {}


def _inner_model(annotation):
    import typing
    if isinstance(annotation, type) and _fields(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
