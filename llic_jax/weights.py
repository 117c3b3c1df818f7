"""One self-describing weights file: safetensors tensors + the model's JSON config.

Layout: every leaf of `variables` is a tensor named by its path joined with "/"
(`params/g_a/layers_0/kernel`, `tables/z/lookup`); the safetensors metadata holds
`{"format": "llic-weights", "version": "2", "model": <model_config JSON>,
"fingerprint": <16 hex digits>, …}`. Loading rebuilds the model from the registry,
checks every tensor name, shape and dtype against a fresh `init`, and recomputes the
fingerprint (the one the bitstream header carries, coding/codec.py) over what it
loaded, so a file from another model, an edited tensor or a damaged file fails loudly.
Version 1 files (no fingerprint) still load. Writes go to a temporary file that is
renamed into place.
"""

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors.numpy import load_file, save_file

from llic_jax.atomic_write import write_atomically
from llic_jax.models import create_model, model_config

__all__ = [
    "WeightsError",
    "bundled_coarseness",
    "bundled_path",
    "flatten",
    "load_weights",
    "save_weights",
    "unflatten",
]

_FORMAT = "llic-weights"
_VERSION = "2"
_READABLE_VERSIONS = ("1", "2")


class WeightsError(ValueError):
    """A weights file that cannot be read, or that does not fit its model."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict of arrays → {"a/b/c": leaf}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) or hasattr(value, "items"):
            flat.update(flatten(dict(value), name + "/"))
        else:
            flat[name] = value
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of `flatten`."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def save_weights(
    path: str | os.PathLike,
    model,
    variables,
    extra: dict[str, str] | None = None,
    param_dtype: str | None = None,
) -> None:
    """Writes `variables` of `model` to `path` atomically (temp file, then rename).

    Args:
      path: destination `.safetensors` file.
      model: a module from `create_model`.
      variables: `{"params": ..., "tables": ...}` (tables optional).
      extra: more string metadata to store (training λ, steps, …).
      param_dtype: store parameters in this float dtype (e.g. "float16" to halve the
        file); loading casts back to float32. Build the tables from the cast values.
    """
    from llic_jax.coding.codec import fingerprint  # the codec imports this module

    path = Path(path)
    tensors = {}
    for name, value in flatten(dict(variables)).items():
        value = np.asarray(value)
        if param_dtype and name.startswith("params/"):
            value = value.astype(param_dtype)
        tensors[name] = np.ascontiguousarray(value)
    # Over the values `load_weights` will return (parameters back in float32).
    as_loaded = {
        name: value.astype(np.float32) if name.startswith("params/") else value
        for name, value in tensors.items()
    }
    metadata = {
        **(extra or {}),
        "format": _FORMAT,
        "version": _VERSION,
        "model": json.dumps(model_config(model)),
        "fingerprint": fingerprint(unflatten(as_loaded)).hex(),
    }
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` dict of any safetensors file (WeightsError if unreadable)."""
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 0 < header_len < 100_000_000:
                raise WeightsError(f"{path}: not a safetensors file")
            header = json.loads(f.read(header_len))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: cannot read weights ({e})") from None
    return header.get("__metadata__") or {}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata dict of a weights file (raises WeightsError if it is not one)."""
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != _FORMAT:
        raise WeightsError(f"{path}: not an llic_jax weights file")
    if metadata.get("version") not in _READABLE_VERSIONS:
        raise WeightsError(f"{path}: weights format version {metadata.get('version')!r} "
                           f"is not one this llic_jax reads {_READABLE_VERSIONS}")  # fmt: skip
    return metadata


# The bundled default models, by quality index (DESIGN.md §5: quality q ↔ λ); their
# training and RD curve are in docs/results.md. The middle one is the default.
BUNDLED = {
    2: "llic-elic-compact-q2.safetensors",
    3: "llic-elic-compact-q3.safetensors",
    4: "llic-elic-compact-q4.safetensors",
}
DEFAULT_QUALITY = 3
# Qualities below the trained ones: a bundled model's weights with its latents quantised
# coarser (entropy/coarseness.py), quality → (the bundled quality, coarseness). Quality
# 1's coarseness 3 is the one whose λ / step² (0.0035 / 1.4465² = 0.00167) lies nearest
# quality 1's λ of 0.0018 (DESIGN.md §5); it costs no bytes in the bundle.
COARSER = {1: (2, 3)}
QUALITIES = tuple(sorted({*BUNDLED, *COARSER}))


def _check_quality(quality: int | None) -> int:
    quality = DEFAULT_QUALITY if quality is None else quality
    if quality not in QUALITIES:
        raise WeightsError(
            f"no bundled model of quality {quality}; have {list(QUALITIES)}"
        )
    return quality


def bundled_path(quality: int | None = None) -> Path:
    """Path of the bundled weights for `quality` (None: the default quality).

    A quality in `COARSER` gives the weights it shares with a trained quality; its
    streams need `bundled_coarseness(quality)` as well.
    """
    quality = _check_quality(quality)
    quality = COARSER[quality][0] if quality in COARSER else quality
    return Path(__file__).parent / "assets" / BUNDLED[quality]


def bundled_coarseness(quality: int | None = None) -> int:
    """The coarseness the bundled `quality` codes with: 0 but for `COARSER` qualities."""
    quality = _check_quality(quality)
    return COARSER[quality][1] if quality in COARSER else 0


def load_weights(path: str | os.PathLike | None = None, *, quality: int | None = None):
    """Reads a weights file → (model, variables), checked against the model's init.

    Args:
      path: a file written by `save_weights`; None loads the bundled default model.
      quality: with `path=None`, which bundled model (default: the middle one). Quality
        1 loads quality 2's weights: code with `coarseness=bundled_coarseness(1)`.

    Raises:
      WeightsError: unreadable file, unknown model, or tensors that do not fit.
    """
    if path is None:
        path = bundled_path(quality)
    metadata = read_metadata(path)
    try:
        config = json.loads(metadata["model"])
        model = create_model(config["name"], **config["options"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: bad model description ({e})") from None
    try:
        flat = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(f"{path}: cannot read tensors ({e})") from None
    expected = flatten(_param_shapes(model))
    got = {k: v for k, v in flat.items() if k.startswith("params/")}
    if set(got) != set(expected):
        missing = sorted(set(expected) - set(got))[:3]
        surplus = sorted(set(got) - set(expected))[:3]
        raise WeightsError(f"{path}: parameters do not fit {config['name']} "
                           f"(missing {missing}, unexpected {surplus})")  # fmt: skip
    for name, spec in expected.items():
        if got[name].shape != spec.shape:
            raise WeightsError(
                f"{path}: {name} has shape {got[name].shape}, expected {spec.shape}"
            )
        if not np.issubdtype(got[name].dtype, np.floating):
            raise WeightsError(f"{path}: {name} has dtype {got[name].dtype}")
        # Files may store parameters in float16 (the bundled models do); compute in float32.
        flat[name] = got[name].astype(spec.dtype)
    variables = unflatten(flat)
    _check_tables(path, variables)
    if "fingerprint" in metadata:
        from llic_jax.coding.codec import fingerprint

        if fingerprint(variables).hex() != metadata["fingerprint"]:
            raise WeightsError(f"{path}: tensors do not match the file's fingerprint "
                               "(edited or damaged file)")  # fmt: skip
    elif metadata.get("version") != "1":
        raise WeightsError(f"{path}: no fingerprint in the metadata")
    return model, variables


def _check_tables(path, variables) -> None:
    """Coding tables, when present, must be complete integer arrays."""
    tables = variables.get("tables")
    if tables is None:
        return
    for stream in ("z", "y"):
        for key in ("lookup", "offset"):
            value = tables.get(stream, {}).get(key)
            if value is None:
                raise WeightsError(
                    f"{path}: coding table tables/{stream}/{key} is missing"
                )
            if not np.issubdtype(value.dtype, np.integer):
                raise WeightsError(f"{path}: coding table tables/{stream}/{key} "
                                   f"has dtype {value.dtype}, expected integers")  # fmt: skip


def _param_shapes(model):
    from llic_jax.api import init  # late import: api imports this module

    shapes = jax.eval_shape(lambda: init(model, jax.random.key(0), (64, 64)))
    return {"params": shapes["params"]}
