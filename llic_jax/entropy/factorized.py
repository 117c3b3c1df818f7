"""Deep factorized prior: a per-channel monotone MLP models the cumulative of each channel.

Semantics follow CompressAI's `EntropyBottleneck` and tensorflow-compression's
`NoisyDeepFactorized`: per channel, `logits_cdf(x) = f(x)` is a chain of layers
`x ← softplus(H) x + b` with `x ← x + tanh(a) ⊙ tanh(x)` after every hidden layer, so `f`
is increasing; the probability of the unit bin around `x` is
`sigmoid(f(x + ½)) − sigmoid(f(x − ½))`.

Our choice (as tfc's ms2020, `offset_heuristic=False`): `z` is quantised to plain integers,
with no median offset. Hence no `quantiles` parameter and no auxiliary loss or second
optimizer: the tails used for the coding tables are found after training by bisection on
the monotone `f` (`tail_locations`).

References:
  Ballé et al., "Variational image compression with a scale hyperprior", ICLR 2018,
  appendix 6.1 (the univariate density model).
  CompressAI `entropy_models.EntropyBottleneck`; tfc `distributions.DeepFactorized`.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.entropy.gaussian import LIKELIHOOD_BOUND
from llic_jax.ops import lower_bound

__all__ = ["DeepFactorized"]


def _centred_uniform(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -0.5, 0.5)


class DeepFactorized(nn.Module):
    """Per-channel learned density for the hyper-latent `z` (channels last).

    Attributes:
      channels: number of channels C (the last axis of the inputs).
      filters: hidden widths of the per-channel MLP; (3, 3, 3) as tfc v1.3 and the
        issue ask (CompressAI defaults to (3, 3, 3, 3)).
      init_scale: the initial density is roughly uniform over ±init_scale (tfc: 10).
    """

    channels: int
    filters: Sequence[int] = (3, 3, 3)
    init_scale: float = 10.0

    def setup(self):
        widths = (1, *self.filters, 1)
        scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
        matrices, biases, factors = [], [], []
        for i, (f_in, f_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            init = float(np.log(np.expm1(1.0 / scale / f_out)))
            matrices.append(
                self.param(
                    f"matrix{i}",
                    nn.initializers.constant(init),
                    (self.channels, f_out, f_in),
                )
            )
            biases.append(
                self.param(
                    f"bias{i}",
                    _centred_uniform,
                    (self.channels, f_out),
                )
            )
            if i < len(self.filters):
                factors.append(
                    self.param(
                        f"factor{i}", nn.initializers.zeros, (self.channels, f_out)
                    )
                )

        self.matrices, self.biases, self.factors = matrices, biases, factors

    def logits_cdf(self, x: jax.Array) -> jax.Array:
        """The increasing function f with CDF(x) = sigmoid(f(x)); x is [..., C]."""
        lead = x.shape[:-1]
        h = x.reshape(-1, self.channels, 1)
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            h = jnp.einsum("cof,ncf->nco", jax.nn.softplus(matrix), h) + bias
            if i < len(self.factors):
                h = h + jnp.tanh(self.factors[i]) * jnp.tanh(h)
        return h.reshape(*lead, self.channels)

    def likelihood(self, x: jax.Array) -> jax.Array:
        """Probability of the unit bin centred on `x` (noisy or integer), lower-bounded."""
        lower = self.logits_cdf(x - 0.5)
        upper = self.logits_cdf(x + 0.5)
        # Subtract on whichever tail of the sigmoid is not saturated.
        sign = jax.lax.stop_gradient(-jnp.sign(lower + upper))
        p = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
        return lower_bound(p, LIKELIHOOD_BOUND)

    def bits(self, x: jax.Array) -> jax.Array:
        """Elementwise −log2 p of `x` ([..., C])."""
        return -jnp.log2(self.likelihood(x))

    def tail_locations(
        self, tail_mass: float, iterations: int = 64
    ) -> tuple[jax.Array, ...]:
        """Per-channel x where the CDF equals tail_mass/2 and 1 − tail_mass/2.

        Found by bisection on the monotone `logits_cdf`; replaces CompressAI's
        `quantiles` + auxiliary loss.

        Returns:
          (lower, upper), each float32 [C].
        """
        target = float(np.log(tail_mass / 2 / (1 - tail_mass / 2)))

        def solve(level):
            lo = jnp.full((self.channels,), -(2.0**16))
            hi = jnp.full((self.channels,), 2.0**16)

            def step(_, bounds):
                lo, hi = bounds
                mid = 0.5 * (lo + hi)
                below = self.logits_cdf(mid[None])[0] < level
                return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

            bounds = (lo, hi)
            for _ in range(
                iterations
            ):  # a Python loop: Linen methods can't enter lax loops
                bounds = step(None, bounds)
            return 0.5 * (bounds[0] + bounds[1])

        return solve(target), solve(-target)
