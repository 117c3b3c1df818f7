"""Integer coding tables, built once on the host after training and stored with weights.

Two tables per model, each `{"lookup": int32 [rows, L], "offset": int32 [rows]}` in the
range coder's row format (entropy/range_coder.py): a symbol `s` coded with row `r` is
sent as `s − offset[r]`; values outside the row (beyond the tails) are escaped by the
coder's overflow coding, so no symbol is ever unencodable.

  * "z": one row per channel of the factorized prior; rows cover the integers between
    the tail locations (CDF = tail_mass/2 and 1 − tail_mass/2).
  * "y": one row per entry of the 64-level scale table; row i is the zero-mean
    discretised Gaussian with scale SCALE_TABLE[i] over |k| ≤ ceil(σ · Φ⁻¹(1 − tail/2)).
Each row's pmf gets the remaining (tail) mass appended as the escape bin before it is
quantised to `PRECISION` bits with tfc's `pmf_to_quantized_cdf`.

TAIL_MASS and PRECISION were picked with eval/bench_range_coder.py (see its docstring).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr, ndtri

from llic_jax.entropy import range_coder
from llic_jax.entropy.gaussian import SCALE_TABLE

__all__ = ["PRECISION", "TAIL_MASS", "build", "factorized_tables", "gaussian_tables"]

PRECISION = 16
TAIL_MASS = 2.0**-16


def _rows_to_table(pmfs: list[np.ndarray], offsets: np.ndarray) -> dict[str, np.ndarray]:
    cdfs = []
    for pmf in pmfs:
        pmf = np.asarray(pmf, np.float64)
        escape = max(1.0 - pmf.sum(), 0.0)
        cdfs.append(range_coder.quantized_cdf(np.append(pmf, escape), PRECISION))
    lookup = range_coder.build_lookup(cdfs, PRECISION, overflow=True)
    return {"lookup": lookup, "offset": np.asarray(offsets, np.int32)}


def gaussian_tables(tail_mass: float = TAIL_MASS) -> dict[str, np.ndarray]:
    """Tables for the zero-mean discretised Gaussians of `SCALE_TABLE`."""
    multiplier = -float(ndtri(tail_mass / 2))
    pmfs, offsets = [], []
    for scale in SCALE_TABLE.astype(np.float64):
        center = max(int(math.ceil(scale * multiplier)), 1)
        k = np.arange(-center, center + 1, dtype=np.float64)
        pmfs.append(ndtr((k + 0.5) / scale) - ndtr((k - 0.5) / scale))
        offsets.append(-center)
    return _rows_to_table(pmfs, np.array(offsets))


def factorized_tables(
    model, params, tail_mass: float = TAIL_MASS
) -> dict[str, np.ndarray]:
    """Tables for `model.entropy_bottleneck`, one row per channel of z."""

    def tails(module):
        return module.entropy_bottleneck.tail_locations(tail_mass)

    # Eager on purpose: jitting the unrolled bisection compiles for ~10 s, eager takes ~0.2 s.
    lower, upper = model.apply({"params": params}, method=tails)
    minima = np.floor(np.asarray(lower, np.float64)).astype(np.int64)
    maxima = np.ceil(np.asarray(upper, np.float64)).astype(np.int64)
    length = int((maxima - minima).max()) + 1
    grid = minima[None, :] + np.arange(length)[:, None]  # [L, C]

    def likelihood(module, x):
        return module.entropy_bottleneck.likelihood(x)

    pmf = np.asarray(
        jax.jit(lambda p, x: model.apply({"params": p}, x, method=likelihood))(
            params, jnp.asarray(grid, jnp.float32)
        ),
        np.float64,
    )
    pmfs = [pmf[: maxima[c] - minima[c] + 1, c] for c in range(grid.shape[1])]
    return _rows_to_table(pmfs, minima)


def build(model, params) -> dict[str, dict[str, np.ndarray]]:
    """All coding tables of `model`: {"z": factorized, "y": Gaussian}."""
    return {"z": factorized_tables(model, params), "y": gaussian_tables()}
