"""The space registry: shipped spaces by name, or an inline mapping from the experiment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pneumo_errors import UnknownNameError
from spaces.space import SearchSpace

__all__ = ["SpaceContext", "build_space", "list_spaces", "register_space", "space_definition"]


def _no_pretrained(model: str, params: Mapping[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class SpaceContext:
    """What a shipped space may depend on, handed in by whoever builds the space.

    Spaces know nothing of the models' code: the search (``search.experiment_space``)
    answers :attr:`has_pretrained` from the model registry and the weights folders.

    Attributes:
        image_size: The experiment's image size.
        has_pretrained: ``(model name, params) -> bool``: whether ImageNet weights for that
            backbone are usable here (the file is found, or downloads are allowed).
            ``transfer`` offers ImageNet weights only where this says yes. Default: never.
    """

    image_size: int = 128
    has_pretrained: Callable[[str, Mapping[str, Any]], bool] = field(default=_no_pretrained)


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
    return {name: description for name, (_, description) in _SPACES.items()}


def space_definition(spec: str | Mapping[str, Any], context: SpaceContext) -> dict[str, Any]:
    """Returns the raw mapping of a shipped space (by name) or the inline mapping itself.

    Raises:
        UnknownNameError: Unknown space name; the message lists the valid ones.
    """
    if isinstance(spec, Mapping):
        return dict(spec)
    if spec not in _SPACES:
        raise UnknownNameError("space", "space", spec, _SPACES)
    return _SPACES[spec][0](context)


def build_space(spec: str | Mapping[str, Any], context: SpaceContext) -> SearchSpace:
    """Returns the validated :class:`SearchSpace` for a name or an inline mapping."""
    return SearchSpace.from_dict(space_definition(spec, context))
