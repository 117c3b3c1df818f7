"""Rounding with straight-through gradients and its additive-noise proxy.

References:
  Ballé, Laparra, Simoncelli, "End-to-end optimized image compression", ICLR 2017
  (uniform noise as a differentiable stand-in for rounding when estimating the rate).
  Theis et al., "Lossy image compression with compressive autoencoders", ICLR 2017
  (straight-through rounding for the synthesis path).
"""

import jax
import jax.numpy as jnp

__all__ = ["add_uniform_noise", "ste_round"]


def ste_round(x: jax.Array) -> jax.Array:
    """Rounds to the nearest integer (half to even); the gradient passes unchanged.

    Args:
      x: any float array.

    Returns:
      `round(x)` in the forward pass, with d/dx = 1 in the backward pass.
    """
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def add_uniform_noise(x: jax.Array, rng: jax.Array) -> jax.Array:
    """Adds i.i.d. U(-1/2, 1/2) noise: the training-time proxy for rounding.

    The density of `x + u` at the integers equals the probability mass that the
    discretised prior gives to `round(x)`, which makes the rate term differentiable.

    Args:
      x: float array.
      rng: a `jax.random` key.

    Returns:
      `x + u` with `u ~ U(-1/2, 1/2)` of the same shape and dtype as `x`.
    """
    return x + jax.random.uniform(rng, x.shape, x.dtype, -0.5, 0.5)
