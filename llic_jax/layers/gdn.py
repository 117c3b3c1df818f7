"""Generalized divisive normalization (GDN) and its inverse.

`y_i = x_i / sqrt(beta_i + Σ_j gamma_ij x_j²)`; the inverse multiplies instead. beta and
gamma are kept non-negative by the reparameterisation of tfc/CompressAI: a stored value
`p` maps to `lower_bound(p, sqrt(min + pedestal))² − pedestal`, with pedestal 2⁻¹⁸, which
keeps gradients well scaled near zero.

References:
  Ballé, Laparra, Simoncelli, "Density modeling of images using a generalized normalization
  transformation", ICLR 2016. CompressAI `layers/gdn.py` (beta_min 1e-6, gamma_init 0.1,
  reparam_offset 2⁻¹⁸).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from llic_jax.ops import lower_bound

__all__ = ["GDN"]

_PEDESTAL = 2.0**-18


def _nonnegative(stored: jax.Array, minimum: float) -> jax.Array:
    bound = (minimum + _PEDESTAL) ** 0.5
    return lower_bound(stored, bound) ** 2 - _PEDESTAL


class GDN(nn.Module):
    """GDN over the channel axis of NHWC inputs (`inverse=True` gives IGDN).

    Attributes:
      inverse: multiply by the norm instead of dividing (the synthesis-side IGDN).
      beta_min: lower bound of beta, keeps the denominator away from zero.
      gamma_init: initial value of gamma's diagonal.
    """

    inverse: bool = False
    beta_min: float = 1e-6
    gamma_init: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        beta_stored = self.param(
            "beta", lambda _, n: jnp.sqrt(jnp.ones((n,)) + _PEDESTAL), channels
        )
        gamma_stored = self.param(
            "gamma",
            lambda _, n: jnp.sqrt(self.gamma_init * jnp.eye(n) + _PEDESTAL),
            channels,
        )
        beta = _nonnegative(beta_stored, self.beta_min)
        gamma = _nonnegative(gamma_stored, 0.0)
        norm = jnp.einsum("...j,ij->...i", x * x, gamma) + beta
        return x * jnp.sqrt(norm) if self.inverse else x * jax.lax.rsqrt(norm)
