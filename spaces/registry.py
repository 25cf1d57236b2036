"""The space registry: shipped spaces by name, or an inline mapping from the experiment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pneumo_core.errors import ConfigError
from pneumo_core.models.weights import WeightsConfig
from spaces.space import SearchSpace

__all__ = ["SpaceContext", "build_space", "list_spaces", "register_space", "space_definition"]


@dataclass(frozen=True)
class SpaceContext:
    """What a shipped space may depend on.

    Attributes:
        weights: Where pretrained weights are looked for (``transfer`` offers ImageNet
            weights only where the file is there, unless downloads are allowed).
        image_size: The experiment's image size.
    """

    weights: WeightsConfig = field(default_factory=WeightsConfig)
    image_size: int = 128


_SPACES: dict[str, tuple[Callable[[SpaceContext], dict[str, Any]], str]] = {}


def register_space(name: str, description: str):
    """Registers a function ``(SpaceContext) -> space mapping`` under ``name``."""

    def decorator(fn: Callable[[SpaceContext], dict[str, Any]]):
        if name in _SPACES:
            raise ValueError(f"space {name!r} is already registered")
        _SPACES[name] = (fn, description)
        return fn

    return decorator


def list_spaces() -> dict[str, str]:
    """Returns registered space names and their descriptions."""
    _load_builtin()
    return {name: description for name, (_, description) in _SPACES.items()}


def space_definition(spec: str | Mapping[str, Any], context: SpaceContext) -> dict[str, Any]:
    """Returns the raw mapping of a shipped space (by name) or the inline mapping itself.

    Raises:
        ConfigError: Unknown space name; the message lists the valid ones.
    """
    if isinstance(spec, Mapping):
        return dict(spec)
    _load_builtin()
    if spec not in _SPACES:
        raise ConfigError("space", f"unknown space {spec!r}; valid: {', '.join(_SPACES)}")
    return _SPACES[spec][0](context)


def build_space(spec: str | Mapping[str, Any], context: SpaceContext) -> SearchSpace:
    """Returns the validated :class:`SearchSpace` for a name or an inline mapping."""
    return SearchSpace.from_dict(space_definition(spec, context))


def _load_builtin() -> None:
    from spaces import builtin  # noqa: F401  (registers the shipped spaces)
