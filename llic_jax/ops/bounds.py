"""`lower_bound` with the gradient semantics of tensorflow-compression and CompressAI.

References:
  tensorflow_compression/python/ops/math_ops.py (`lower_bound`, gradient "identity_if_towards").
  compressai/ops/bound_ops.py (`LowerBoundFunction`: the gradient passes where `x >= bound`
  or where it is negative, i.e. where a descent step would push `x` up).
"""

import jax
import jax.numpy as jnp

__all__ = ["lower_bound"]


@jax.custom_vjp
def lower_bound(x: jax.Array, bound: jax.Array | float) -> jax.Array:
    """Returns `max(x, bound)`; below the bound the gradient still flows towards it.

    A plain `maximum` has zero gradient below the bound, so a parameter that falls
    under it (a scale, a GDN coefficient) could never recover. Here the gradient is
    passed through wherever `x >= bound`, and below the bound only when it points
    upwards (a negative gradient: gradient descent then increases `x`).

    Args:
      x: float array.
      bound: scalar or array broadcastable to `x`.

    Returns:
      `jnp.maximum(x, bound)`.
    """
    return jnp.maximum(x, bound)


def _lower_bound_fwd(x, bound):
    return jnp.maximum(x, bound), (x, bound)


def _lower_bound_bwd(residual, g):
    x, bound = residual
    passes = (x >= bound) | (g < 0)
    grad_bound = jnp.zeros_like(jnp.asarray(bound, dtype=g.dtype))
    return jnp.where(passes, g, jnp.zeros_like(g)), grad_bound


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)
