"""Post-filter weights files: a `PostFilter`'s parameters, bound to the codec they serve.

A post-filter is trained on one codec's reconstructions (`train/post_filter.py`), so its
file records that codec's fingerprint (`llic_jax.coding.codec.fingerprint` of the
weights and tables, the 8 bytes every bitstream carries) and the decoder applies it only
to streams of that codec. safetensors metadata: `format` = "llic_jax post-filter",
`width`, `blocks`, `codec_fingerprint` (hex), optionally `ensemble_gain` (below), plus
whatever the trainer adds (steps, data). Parameters may be stored in float16; loading
casts them to float32.

`ensemble_gain` g scales the self-ensemble's residual: the decoder shows
x̂ + g·(mean − x̂), where mean is `layers.post_filter.dihedral_mean` of the filter. The
mean of eight residuals is shorter than each (they partly disagree), so a gain a little
above 1 fitted on the training photos (`train.post_filter --export … --ensemble-gain
fit`) restores some of it: +0.013 to +0.014 dB on kodak24 at g = 1.15 for the
session-26 filters (docs/results-history.md "Session 27"). It is part of what a stream
flagged for the ensemble decodes to, so it lives in the filter's file; absent means 1,
the plain mean.
"""

import dataclasses
import functools
import hashlib
import math
import os
from pathlib import Path

import jax
import numpy as np
from safetensors.numpy import load_file, save_file

from llic_jax.atomic_write import write_atomically
from llic_jax.layers.post_filter import PostFilter, dihedral_mean
from llic_jax.weights import WeightsError, flatten, read_safetensors_metadata, unflatten

FORMAT = "llic_jax post-filter"
MAX_ENSEMBLE_GAIN = 4.0  # far above any useful gain: a larger one is a corrupt file
# Bundled filters sit beside the bundled models, found by the codec fingerprint they name.
ASSETS = Path(__file__).parent / "assets"
BUNDLED_SUFFIX = "-post-filter.safetensors"


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedPostFilter:
    """A trained post-filter and the fingerprint of the codec it was trained for."""

    module: PostFilter
    params: dict
    codec_fingerprint: bytes
    ensemble_gain: float = 1.0

    def __post_init__(self):
        check_ensemble_gain(self.ensemble_gain)
        gain = self.ensemble_gain

        def apply(params, x):
            return self.module.apply({"params": params}, x)

        def apply_ensemble(params, x):
            mean = dihedral_mean(functools.partial(apply, params), x)
            # A gain of 1 is the mean itself, computed as before gains existed, so
            # streams of gain-less filters decode to the same bits.
            return mean if gain == 1.0 else x + gain * (mean - x)

        object.__setattr__(self, "_apply", jax.jit(apply))
        object.__setattr__(self, "_apply_ensemble", jax.jit(apply_ensemble))

    def __call__(self, x_hat: jax.Array, ensemble: bool = False) -> jax.Array:
        """The filtered image, float [B, H, W, 3] (even H and W) → the same shape.

        `ensemble`: the mean of the filter over the image's eight orientations
        (`layers.post_filter.dihedral_mean`), its residual scaled by `ensemble_gain`: a
        little closer to the original, at eight times the cost.
        """
        return (self._apply_ensemble if ensemble else self._apply)(self.params, x_hat)

    def digest(self) -> str:
        """A hex digest of the architecture and parameters (what an eval journal keys on)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{self.module.width},{self.module.blocks}".encode())
        if self.ensemble_gain != 1.0:  # gain-less filters keep the digests they had
            h.update(f"ensemble_gain={self.ensemble_gain!r}".encode())
        for name, value in sorted(flatten(self.params).items()):
            h.update(name.encode() + np.asarray(value, np.float32).tobytes())
        return h.hexdigest()


def save_post_filter(
    path: str | os.PathLike,
    module: PostFilter,
    params,
    codec_fingerprint: bytes,
    extra: dict[str, str] | None = None,
    param_dtype: str = "float32",
    ensemble_gain: float = 1.0,
) -> None:
    """Writes `params` of `module` to `path` atomically, bound to `codec_fingerprint`."""
    check_ensemble_gain(ensemble_gain)
    tensors = {
        name: np.ascontiguousarray(np.asarray(value).astype(param_dtype))
        for name, value in flatten(jax.device_get(params)).items()
    }
    metadata = {
        **(extra or {}),
        "format": FORMAT,
        "width": str(module.width),
        "blocks": str(module.blocks),
        "codec_fingerprint": codec_fingerprint.hex(),
    }
    if ensemble_gain != 1.0:
        metadata["ensemble_gain"] = repr(float(ensemble_gain))
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_post_filter(path: str | os.PathLike) -> LoadedPostFilter:
    """Reads a file of `save_post_filter`.

    Raises:
      WeightsError: not a post-filter file, or tensors that do not fit its module.
    """
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a post-filter file")
    try:
        module = PostFilter(width=int(metadata["width"]), blocks=int(metadata["blocks"]))
        codec_fingerprint = bytes.fromhex(metadata["codec_fingerprint"])
        ensemble_gain = check_ensemble_gain(float(metadata.get("ensemble_gain", "1")))
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{path}: bad post-filter description ({e})") from None
    flat = load_file(str(Path(path)))
    expected = flatten(_param_shapes(module))
    if set(flat) != set(expected):
        raise WeightsError(f"{path}: tensors do not fit PostFilter(width={module.width}, "
                           f"blocks={module.blocks})")  # fmt: skip
    for name, spec in expected.items():
        if flat[name].shape != spec.shape:
            raise WeightsError(f"{path}: {name} has shape {flat[name].shape}, "
                               f"expected {spec.shape}")  # fmt: skip
    params = unflatten({k: v.astype(np.float32) for k, v in flat.items()})
    return LoadedPostFilter(module, params, codec_fingerprint, ensemble_gain)


def check_ensemble_gain(gain: float) -> float:
    """`gain` if it is a usable ensemble gain (finite, in (0, MAX_ENSEMBLE_GAIN]).

    Raises:
      ValueError: otherwise.
    """
    if not (math.isfinite(gain) and 0.0 < gain <= MAX_ENSEMBLE_GAIN):
        raise ValueError(f"ensemble gain {gain} is not in (0, {MAX_ENSEMBLE_GAIN:g}]")
    return gain


def _param_shapes(module: PostFilter):
    x = jax.ShapeDtypeStruct((1, 8, 8, 3), np.float32)
    return jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), x)["params"]


@functools.lru_cache(maxsize=8)
def bundled_post_filter(codec_fingerprint: bytes) -> LoadedPostFilter | None:
    """The bundled post-filter trained for the codec of this fingerprint, or None."""
    for path in sorted(ASSETS.glob("*" + BUNDLED_SUFFIX)):
        if (
            read_safetensors_metadata(path).get("codec_fingerprint")
            == codec_fingerprint.hex()
        ):
            return load_post_filter(path)
    return None
