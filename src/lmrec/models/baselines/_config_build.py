"""Building a baseline's pydantic config and turning validation failures into ``ConfigError``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lmrec.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


def build_config(cls: type[C], config: C | Mapping[str, Any] | None, **overrides: Any) -> C:
    """Return a validated ``cls`` from a config object or dict plus keyword overrides.

    Args:
        cls: The config class.
        config: An existing config, a plain dict of fields, or ``None`` for the defaults.
        **overrides: Field values that replace those of ``config``.

    Raises:
        ConfigError: When a field is unknown or its value is invalid; the message names the
            field and the value.
    """
    if config is None:
        fields: dict[str, Any] = {}
    elif isinstance(config, BaseModel):
        if not isinstance(config, cls):
            raise ConfigError(f"expected a {cls.__name__}, got a {type(config).__name__}")
        fields = config.model_dump()
    else:
        fields = dict(config)
    fields.update(overrides)
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<config>"
        value = first.get("input")
        raise ConfigError(f"{cls.__name__}.{where}: {first['msg']} (got {value!r})") from None
