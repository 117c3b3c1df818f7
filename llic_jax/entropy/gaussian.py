"""Gaussian conditional entropy model: likelihoods, bits and the indexed scale table.

Conventions (DESIGN.md §5):
  * A latent `y` is coded as the integer symbol `round(y - mean)` under a zero-mean
    discretised Gaussian whose scale is snapped to a fixed 64-level log table.
  * Scales are lower-bounded at 0.11 (the first table entry) in training and coding.
  * Likelihoods are lower-bounded at 1e-9 before taking logs, as in CompressAI.

References:
  Ballé et al., "Variational image compression with a scale hyperprior", ICLR 2018.
  tensorflow-compression v1.3 `examples/bmshj2018.py` (SCALES_MIN 0.11, SCALES_MAX 256,
  SCALES_LEVELS 64) and CompressAI `GaussianConditional` (`scale_bound=0.11`,
  `likelihood_bound=1e-9`, `build_indexes`: the first table entry >= the scale).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.ops import lower_bound

__all__ = [
    "LIKELIHOOD_BOUND",
    "SCALE_BOUND",
    "SCALE_TABLE",
    "gaussian_bits",
    "gaussian_likelihood",
    "scale_to_index",
    "symbol_bits",
]

SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9
# float32 constants, fixed here once: encoder and decoder must snap scales identically.
SCALE_TABLE = np.exp(np.linspace(math.log(0.11), math.log(256.0), 64)).astype(np.float32)


def _standard_normal_cdf(x: jax.Array) -> jax.Array:
    return 0.5 * jax.scipy.special.erfc(-x * (2.0**-0.5))


def gaussian_likelihood(residual: jax.Array, scale: jax.Array) -> jax.Array:
    """Probability mass of the unit bin around `residual` under N(0, scale²).

    Evaluated on the left tail (`-|residual|`), where the CDF difference does not
    cancel catastrophically.

    Args:
      residual: `y - mean`, any shape (a noisy or rounded value).
      scale: broadcastable to `residual`; lower-bounded at `SCALE_BOUND` here.

    Returns:
      Likelihoods, lower-bounded at `LIKELIHOOD_BOUND`.
    """
    scale = lower_bound(scale, SCALE_BOUND)
    v = jnp.abs(residual)
    upper = _standard_normal_cdf((0.5 - v) / scale)
    lower = _standard_normal_cdf((-0.5 - v) / scale)
    return lower_bound(upper - lower, LIKELIHOOD_BOUND)


def gaussian_bits(residual: jax.Array, scale: jax.Array) -> jax.Array:
    """Elementwise information content, −log2 p, of `residual` (see `gaussian_likelihood`)."""
    return -jnp.log2(gaussian_likelihood(residual, scale))


def scale_to_index(scale: jax.Array) -> jax.Array:
    """Snaps scales to the table: the index of the first entry ≥ scale, clamped to 0…63.

    Rounding the scale *up* (CompressAI's `build_indexes`) errs on the side of a wider
    distribution, which costs less than an overconfident one when the scale is off.

    Args:
      scale: float array of predicted scales (any values; NaN maps to 63).

    Returns:
      int32 array of table indexes, same shape.
    """
    table = jnp.asarray(SCALE_TABLE)
    index = jnp.searchsorted(table, scale.astype(jnp.float32), side="left")
    return jnp.clip(index, 0, len(SCALE_TABLE) - 1).astype(jnp.int32)


def symbol_bits(symbols: jax.Array, index: jax.Array) -> jax.Array:
    """−log2 p of integer symbols under the table scales picked by `index`.

    This is the rate the range coder spends (up to CDF quantisation and escapes), used
    for the estimated bits of the eval-mode forward.
    """
    scale = jnp.asarray(SCALE_TABLE)[index]
    return gaussian_bits(symbols.astype(jnp.float32), scale)
