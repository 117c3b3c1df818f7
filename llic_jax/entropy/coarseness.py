"""Coarser latent quantisation: lower rates from the same weights (a stream's coarseness).

A model codes each latent as the integer `round(y − μ)` under a Gaussian whose scale σ is
snapped to the 64-level log table (gaussian.py): the quantisation step is 1, the one it
was trained for. At *coarseness* k ≥ 1 the step is Δ = r**k, with r = 256/0.11 ** (1/63)
≈ 1.131 the ratio between neighbouring table scales:

  * symbol `s = round((y − μ) / Δ)`, reconstruction `ŷ = Δ·s + μ`;
  * coded under the Gaussian of scale σ/Δ, whose table index is the model's minus k
    (clamped at 0, the table's floor 0.11, which training's scale bound also uses), so
    the coding tables, the range coder and every model stay as they are.

Dividing by a power of the table's ratio is what makes "minus k" exact. The rate falls
with k and the distortion rises roughly as Δ² (a uniform quantiser's error), so a
search over the RD cost `bpp + λ·MSE` at coarseness k uses `λ / Δ²` for the weights'
own λ (`coarser_lmbda`).

Measured with the bundled quality-2 model on six Kodak photos (estimated bpp, no other
encoder option; docs/results-history.md, "Session 38"): Δ = 1.25 / 1.5 / 1.75 / 2 take
0.212 bpp, 27.88 dB to 0.176 / 0.150 / 0.131 / 0.117 bpp at 27.43 / 26.95 / 26.48 /
26.00 dB; against AVIF on the same photos the points up to Δ = 1.75 stand as close as
quality 2's own point or closer (−0.59 / −0.60 / −0.71 against −0.72 dB), where
Δ = 2 falls behind (−0.87 dB). This is the quantisation-step way to a variable rate
(e.g. Choi et al., "Variable rate deep image compression with a conditional
autoencoder", ICCV 2019, which also trains for it; here the weights are not).
"""

from __future__ import annotations

import math

import numpy as np

from llic_jax.entropy.gaussian import SCALE_TABLE

__all__ = [
    "MAX_COARSENESS",
    "check_coarseness",
    "coarser_index",
    "coarser_lmbda",
    "latent_step",
]

MAX_COARSENESS = 15  # Δ ≈ 6.3: far below any useful rate; the header stores 0…15
_LOG_RATIO = math.log(256.0 / 0.11) / (len(SCALE_TABLE) - 1)


def check_coarseness(coarseness: int) -> int:
    """`coarseness` as an int, or ValueError if it is not one of 0…MAX_COARSENESS."""
    if not (
        isinstance(coarseness, (int, np.integer))
        and not isinstance(coarseness, bool)
        and 0 <= coarseness <= MAX_COARSENESS
    ):
        raise ValueError(f"coarseness must be an integer 0..{MAX_COARSENESS}, "
                         f"got {coarseness!r}")  # fmt: skip
    return int(coarseness)


def latent_step(coarseness: int) -> np.float32:
    """The quantisation step Δ = r**k as float32: encoder and decoder use this value."""
    return np.float32(math.exp(check_coarseness(coarseness) * _LOG_RATIO))


def coarser_index(index, coarseness: int):
    """Scale-table indexes at coarseness k: `index − k`, clamped at 0 (numpy or jax)."""
    k = check_coarseness(coarseness)
    if k == 0:
        return index
    return (index - k).clip(0)


def coarser_lmbda(lmbda: float, coarseness: int) -> float:
    """λ for RD searches at coarseness k: the weights' λ over Δ² (module docstring)."""
    return lmbda / float(latent_step(coarseness)) ** 2
