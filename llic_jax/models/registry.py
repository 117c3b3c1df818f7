"""Model registry: a name maps to a model class and its default hyper-parameters.

A registry key is hyphenated (`mbt2018-mean`, `llic-elic-compact`); a new variant is one
`register` call. The module returned by `create_model` carries its key in `model_name`,
so weights files can record how to rebuild it (`model_config`).
"""

import dataclasses
from typing import Any

import flax.linen as nn

__all__ = ["create_model", "list_models", "model_config", "register"]

_REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {}
# Fields every Linen module has that are not hyper-parameters.
_NON_CONFIG_FIELDS = frozenset({"parent", "name", "model_name"})


def register(name: str, cls: type[nn.Module], **defaults: Any) -> None:
    """Adds `name` → `cls(**defaults)` to the registry."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    if name != name.lower() or "_" in name or " " in name:
        raise ValueError(f"registry keys are lowercase and hyphenated, got {name!r}")
    _REGISTRY[name] = (cls, dict(defaults))


def list_models() -> list[str]:
    """Names accepted by `create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Builds the registered model `name`, with keyword overrides of its defaults.

    Raises:
      ValueError: unknown name, or an override that is not a field of the model.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    cls, defaults = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(cls)} - _NON_CONFIG_FIELDS
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {unknown}; options: {sorted(fields)}"
        )
    # JSON configs carry lists; modules must stay hashable (jitted functions are cached
    # per model), so sequences become tuples.
    options = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in {**defaults, **overrides}.items()
    }
    return cls(**options, model_name=name)


def model_config(model: nn.Module) -> dict[str, Any]:
    """JSON-able description `{"name": key, "options": {...}}` that rebuilds `model`."""
    options = {
        f.name: getattr(model, f.name)
        for f in dataclasses.fields(model)
        if f.name not in _NON_CONFIG_FIELDS
    }
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    return {"name": model.model_name, "options": options}
